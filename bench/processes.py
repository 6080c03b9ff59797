"""The emulator and the service as real processes on 127.0.0.1, as users start them.

Both are launched with this interpreter (`python -m appliance.cli ...`), log to files in the
run's temporary directory and are stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import msgspec
import yaml

from appliance.config import (
    AppConfig,
    HsmSettings,
    LoggingSettings,
    ServerSettings,
    StorageSettings,
    ZatcaBaseUrls,
    ZatcaSettings,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 300.0  # a token with 10,000 keys takes seconds to log in to and list
_POLL_SECONDS = 0.01
_ENVIRONMENT_PATHS = {"development": "developer-portal", "simulation": "simulation", "production": "core"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _launch(arguments: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(  # noqa: S603 - this interpreter, our own CLI, no shell
            [sys.executable, "-m", "appliance.cli", *arguments],
            cwd=REPOSITORY_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    with httpx.Client(timeout=1.0) as probe:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
                raise RuntimeError(f"{url}: the process exited with {process.returncode}:\n{tail}")
            try:
                if probe.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # The port is not open yet and each attempt fails at once; pace the attempts.
            time.sleep(_POLL_SECONDS)
    raise RuntimeError(f"{url} did not answer within {START_TIMEOUT_SECONDS} s (log: {log_path})")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
    return process.returncode


class Emulator:
    """`zatca-appliance emulator` on a free loopback port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "emulator.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        arguments = ["emulator", "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(data_dir)]
        self.process = _launch([*arguments, "--log-level", "warning"], self.log_path)
        try:
            _wait_until_answering(self.process, f"{self.base_url}/emulator/health", self.log_path)
        except BaseException:
            _stop(self.process)
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def lower_priority(self, nice: int) -> None:
        """Run the emulator at this nice value (every thread it has; later ones inherit it).
        ZATCA is remote in production; here its stand-in verifies every document on the same two
        cores (about 14 ms of CPU per invoice). Niced, it yields those cores to the service."""
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)

    def environment_url(self, environment: str) -> str:
        """`environment`: development, simulation or production."""
        return f"{self.base_url}/e-invoicing/{_ENVIRONMENT_PATHS[environment.lower()]}"

    def base_urls(self) -> ZatcaBaseUrls:
        return ZatcaBaseUrls(
            development=self.environment_url("development"),
            simulation=self.environment_url("simulation"),
            production=self.environment_url("production"),
        )

    def stop(self) -> int:
        return _stop(self.process)


@dataclass(frozen=True, slots=True)
class StartUp:
    """How long `serve` took to answer /health/ready with 200, and to log "service ready"."""

    answering_seconds: float
    ready_logged_seconds: float | None


class Service:
    """`zatca-appliance serve --config <file>` with a config written from AppConfig."""

    def __init__(self, home: Path, hsm: HsmSettings, emulator: Emulator) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.config = AppConfig(
            server=ServerSettings(host="127.0.0.1", port=free_port()),
            hsm=hsm,
            zatca=ZatcaSettings(base_urls=emulator.base_urls()),
            storage=StorageSettings(data_dir=str(home / "data")),
            # INFO and JSON are the shipped defaults: an access-log line per request is part of the cost.
            logging=LoggingSettings(level="INFO", format="json"),
        )
        self.config_path = home / "config.yaml"
        self.config_path.write_text(yaml.safe_dump(msgspec.to_builtins(self.config)), encoding="utf-8")
        self.log_path = home / "service.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.server.port}"

    @property
    def registry_path(self) -> Path:
        return self.config.storage.registry_path

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the service is not running")
        return self.process.pid

    def start(self) -> StartUp:
        if self.process is not None:
            raise RuntimeError("the service is already running")
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        launched_at = time.time()
        started = time.perf_counter()
        self.process = _launch(["serve", "--config", str(self.config_path)], self.log_path)
        try:
            # Ready to serve: the token signs and the registry answers (what systemd's READY=1 and a
            # load balancer wait for), not just the lifespan done.
            _wait_until_answering(self.process, f"{self.base_url}/health/ready", self.log_path)
        except BaseException:
            self.stop()
            raise
        answering = time.perf_counter() - started
        ready_at = _logged_at(self.log_path, log_offset, "service ready")
        return StartUp(answering, None if ready_at is None else ready_at - launched_at)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        try:
            return _stop(self.process)
        finally:
            self.process = None


def _logged_at(log_path: Path, offset: int, message: str) -> float | None:
    """The time (epoch seconds) of the first JSON log line after `offset` with this message."""
    with log_path.open("rb") as log:
        log.seek(offset)
        for raw in log:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("msg") == message:
                return datetime.fromisoformat(str(entry["ts"])).timestamp()
    return None
