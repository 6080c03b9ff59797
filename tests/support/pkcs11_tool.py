"""The administrator's view of the token, through OpenSC's pkcs11-tool (an independent judge)."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ListedPrivateKey:
    label: str
    id_hex: str
    access: str


_OBJECT_START = re.compile(r"^(Private Key|Public Key|Secret Key|Data|Certificate) Object", re.MULTILINE)


def list_private_keys(softhsm: Any) -> dict[str, ListedPrivateKey]:
    """Private keys by CKA_ID hex, with the `Access:` line that proves (non-)extractability."""
    output = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            softhsm.module,
            "--token-label",
            softhsm.label,
            "--login",
            "--pin",
            softhsm.pin,
            "--list-objects",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "SOFTHSM2_CONF": str(softhsm.conf_path)},
    ).stdout
    starts = [match.start() for match in _OBJECT_START.finditer(output)] + [len(output)]
    keys: dict[str, ListedPrivateKey] = {}
    for begin, end in itertools.pairwise(starts):
        block = output[begin:end]
        if not block.startswith("Private Key Object"):
            continue
        fields = {
            name.strip(): value.strip()
            for name, _, value in (line.partition(":") for line in block.splitlines()[1:])
            if value
        }
        keys[fields.get("ID", "").lower()] = ListedPrivateKey(
            label=fields.get("label", ""),
            id_hex=fields.get("ID", "").lower(),
            access=fields.get("Access", ""),
        )
    return keys
