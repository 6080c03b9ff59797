"""Pure pieces of issue 13's transport part: plaintext policy, log escaping, connection guard."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.cli.serve import is_loopback, plaintext_refusal
from appliance.config import ServerSettings, TlsSettings
from appliance.daemon.connections import ConnectionGuard, RateLimitedCounter
from appliance.daemon.files import make_private
from appliance.daemon.tls import server_context
from appliance.errors import ConfigError
from appliance.logs import TextFormatter

LOOPBACK = [("127.0.0.1", True), ("::1", True), ("localhost", True)]
NOT_LOOPBACK = [("0.0.0.0", False), ("192.168.1.5", False), ("pos.lan", False)]


@pytest.mark.parametrize(("host", "loopback"), LOOPBACK + NOT_LOOPBACK)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plaintext_is_refused_off_loopback_unless_allowed() -> None:
    refusal = plaintext_refusal(ServerSettings(host="192.168.1.5"))
    assert refusal is not None and "server.allow_plaintext" in refusal
    assert plaintext_refusal(ServerSettings(host="192.168.1.5", allow_plaintext=True)) is None
    assert plaintext_refusal(ServerSettings(host="127.0.0.1")) is None


def test_a_world_readable_tls_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not used")
    key.chmod(0o644)
    with pytest.raises(ConfigError, match=r"server.tls.key_file: .* readable by other users"):
        server_context(TlsSettings(certificate_file=str(tmp_path / "cert.pem"), key_file=str(key)))


def test_text_log_lines_escape_control_characters() -> None:
    record = logging.makeLogRecord(
        {
            "name": "appliance.access",
            "levelname": "INFO",
            "msg": "request",
            "path": "/a\r\nINFO forged\x1b[2J\x00",
        }
    )
    line = TextFormatter().format(record)
    assert "\n" not in line and "\x1b" not in line and "\x00" not in line
    assert "path=/a\\r\\nINFO forged\\x1b[2J\\x00" in line


def test_make_private_tightens_an_existing_tree(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "sub").mkdir(parents=True)
    (state / "sub" / "file").write_text("x")
    for path, mode in ((state, 0o755), (state / "sub", 0o775), (state / "sub" / "file", 0o644)):
        path.chmod(mode)
    make_private(state)
    assert [p.stat().st_mode & 0o777 for p in (state, state / "sub", state / "sub" / "file")] == [
        0o700,
        0o700,
        0o600,
    ]


class _Connection:
    def __init__(self, guard: ConnectionGuard, client: str) -> None:
        self.guard, self.client, self.dropped = guard, client, False

    def drop(self, reason: str) -> None:
        self.dropped = True
        self.guard.waiting.pop(self, None)  # type: ignore[call-overload]
        self.guard.release(self.client)


def test_guard_evicts_the_oldest_waiting_connection_and_caps_each_client() -> None:
    guard = ConnectionGuard(
        request_timeout=1, max_connections=3, max_per_client=2, counter=RateLimitedCounter()
    )
    first, second, third = (_Connection(guard, ip) for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"))
    for connection in (first, second, third):
        assert guard.admit(connection, connection.client)  # type: ignore[arg-type]
        guard.waiting[connection] = None  # type: ignore[index]
    newcomer = _Connection(guard, "10.0.0.4")
    assert guard.admit(newcomer, newcomer.client)  # type: ignore[arg-type]
    assert first.dropped and not second.dropped
    assert guard.admit(_Connection(guard, "10.0.0.4"), "10.0.0.4")  # type: ignore[arg-type]
    assert not guard.admit(_Connection(guard, "10.0.0.4"), "10.0.0.4")  # type: ignore[arg-type]
