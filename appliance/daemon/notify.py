"""systemd's notification protocol (sd_notify): one datagram per state change, no library.

systemd passes `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) to a `Type=notify`
service, and `WATCHDOG_USEC`/`WATCHDOG_PID` when `WatchdogSec=` is set. Outside systemd the
variables are absent and every call here is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("appliance.daemon")


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # An abstract socket is written `@name`; the kernel wants a leading NUL byte instead.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog_seconds = _watchdog_seconds(env)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    @property
    def watchdog_seconds(self) -> float | None:
        """The watchdog timeout systemd set for this process, if any."""
        return self._watchdog_seconds

    def notify(self, *assignments: str) -> bool:
        """Send e.g. `notify("READY=1", "STATUS=serving")`; False when not under systemd or it failed."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(assignments).encode())
        except OSError as exc:
            log.warning("systemd notification failed", extra={"error": exc.strerror or str(exc)})
            return False
        return True


def _watchdog_seconds(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process the watchdog is meant for; a child must not ping for it.
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000
