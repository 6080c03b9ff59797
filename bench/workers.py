"""Launching `bench.token_worker` processes and reading their answers."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import TypeVar

import msgspec

from appliance.config import HsmSettings
from bench.processes import REPOSITORY_ROOT
from bench.token_worker import PopulateResult, ProbeResult

WorkerResult = TypeVar("WorkerResult", PopulateResult, ProbeResult)


def write_ids_file(directory: Path, device_ids: list[uuid.UUID]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "worker-ids.txt"
    path.write_text("\n".join(str(device_id) for device_id in device_ids) + "\n", encoding="ascii")
    return path


def start_worker(action: str, hsm: HsmSettings, ids_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    arguments = [action, "--settings", msgspec.json.encode(hsm).decode(), "--ids-file", str(ids_file), *extra]
    return subprocess.Popen(  # noqa: S603 - this interpreter, our own module, no shell
        [sys.executable, "-m", "bench.token_worker", *arguments],
        cwd=REPOSITORY_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish_worker(kind: type[WorkerResult], worker: subprocess.Popen[bytes]) -> WorkerResult:
    stdout, stderr = worker.communicate()
    if worker.returncode != 0:
        raise RuntimeError(
            f"token worker failed ({worker.returncode}): {stderr.decode(errors='replace')[-3000:]}"
        )
    return msgspec.json.decode(stdout, type=kind)


def run_worker(
    kind: type[WorkerResult], action: str, hsm: HsmSettings, ids_file: Path, *extra: str
) -> WorkerResult:
    return finish_worker(kind, start_worker(action, hsm, ids_file, *extra))
