"""Every document the emulator receives, kept as `invoices/<uuid>.xml` with its verdict `<uuid>.json`.

So a developer can look at exactly what was sent and what ZATCA (the emulator) said about it. Files
are owner-only (0600), written atomically; a document sent again under the same uuid replaces the
earlier copy (the SQLite table keeps every submission).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import msgspec

INVOICES_DIRECTORY = "invoices"
# BR-KSA-03's UUID pattern, without a leading dot: a file name that cannot leave the directory.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def file_stem_for(request_uuid: str, document_uuid: str | None, body: bytes) -> str:
    """The request's uuid when it makes a safe file name, else the document's, else a digest."""
    for candidate in (request_uuid, document_uuid):
        if candidate and _SAFE_NAME.fullmatch(candidate):
            return candidate
    return "unnamed-" + hashlib.sha256(body).hexdigest()[:32]


class InvoiceFiles:
    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / INVOICES_DIRECTORY
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def keep(self, stem: str, xml: bytes, verdict: dict[str, Any]) -> None:
        _write_private(self.directory / f"{stem}.xml", xml)
        _write_private(self.directory / f"{stem}.json", msgspec.json.format(msgspec.json.encode(verdict)))


def _write_private(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    temporary.replace(path)
