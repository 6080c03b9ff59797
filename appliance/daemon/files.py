"""Process-level resources checked at start-up: private state files and the open-file limit."""

from __future__ import annotations

import logging
import os
import resource
import stat
from pathlib import Path

log = logging.getLogger("appliance.daemon")

# Descriptors kept for what is not a client connection: the token, the registry, the ZATCA
# client's pool, logs.
RESERVED_FILE_DESCRIPTORS = 128
# The soft limit is raised to the hard limit, but not beyond this.
WANTED_FILE_DESCRIPTORS = 65536


def make_private(directory: Path) -> None:
    """Create `directory` if needed and force it and everything below it to owner-only modes
    (0700 directories, 0600 files): an existing directory keeps whatever mode it had otherwise,
    and the registry, token files and emulator state must not be readable by other users."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _restrict(directory, 0o700)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            _restrict(Path(root) / name, 0o700)
        for name in files:
            _restrict(Path(root) / name, 0o600)


def _restrict(path: Path, mode: int) -> None:
    try:
        current = path.lstat()
        if stat.S_ISLNK(current.st_mode) or stat.S_IMODE(current.st_mode) & ~mode == 0:
            return
        path.chmod(stat.S_IMODE(current.st_mode) & mode)
    except OSError as exc:
        log.warning("cannot restrict the mode of a state file", extra={"path": str(path), "error": str(exc)})


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit; returns the soft limit in force.

    systemd's default soft limit is 1,024 (the unit sets LimitNOFILE=); outside systemd this keeps
    a shell's default from capping the connection limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_FILE_DESCRIPTORS if hard == resource.RLIM_INFINITY else min(hard, WANTED_FILE_DESCRIPTORS)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft
