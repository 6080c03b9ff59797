"""Sessions on one token for one module generation, and the key-handle cache that goes with them.

Layout (pkcs11-notes.md §5 "Session and login semantics"):
- an anchor session that logs the process in and stays open for the connection's life; the
  login is made through `cryptoki`, so closing any python-pkcs11 session never logs out;
- `worker_threads` PIN-less read/write worker sessions, each used by one thread at a time
  (a lease). Signing in different sessions runs in parallel inside the token;
- a cache CKA_ID -> key object. Object look-ups cost O(objects in token), so each key is
  looked up once per connection. A python-pkcs11 key object is bound to the session it was
  found in (its "home"); operations on it lease that session. So signatures with one key run
  one at a time, signatures with different keys (different POS devices) in parallel.

Lock order, everywhere: module access (runtime.calls) -> runtime.object_lock -> one lease.
Nobody holds two leases at once.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pkcs11.exceptions as p11

from appliance.errors import ConfigError, HsmUnavailable
from appliance.hsm.failures import describe
from appliance.hsm.runtime import ModuleRuntime
from appliance.hsm.uri import TokenUri


@dataclass(frozen=True, slots=True)
class TokenSelector:
    """The token as configured: by label, or by the attributes of a pkcs11: URI."""

    label: str | None
    uri: TokenUri | None

    def describe(self) -> str:
        if self.uri is not None:
            return f"pkcs11:{self.uri.describe()}"
        return f"'{self.label}'"


@dataclass(eq=False, slots=True)
class PooledSession:
    session: Any  # pkcs11 Session
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set (under `lock`) once the session is closed; a late lease then fails cleanly instead of
    # starting an operation on a dead handle (python-pkcs11 then also complains from __del__).
    closed: bool = False

    def ensure_open(self) -> None:
        if self.closed:
            raise p11.SessionClosed("the session was closed when its connection was dropped")


@dataclass(eq=False, slots=True)
class CachedKey:
    key: Any  # pkcs11 key object, bound to home.session
    home: PooledSession


class TokenConnection:
    """What one KeyStore holds open on its token until the module restarts or the token goes."""

    def __init__(
        self,
        *,
        runtime: ModuleRuntime,
        generation: int,
        token: Any,
        mechanisms: frozenset[int],
        anchor: PooledSession,
        workers: list[PooledSession],
    ) -> None:
        self.runtime = runtime
        self.generation = generation
        self.token = token
        self.token_label: str = token.label
        self.mechanisms = mechanisms
        self.anchor = anchor
        self.workers = workers
        # Set by whoever sees the token or its sessions fail; the next call reconnects.
        self.broken = False
        # Set after the first operation that succeeded on this connection.
        self.proven = False
        self.probe_public_key: bytes | None = None
        self._cache: dict[bytes, CachedKey] = {}
        self._cache_lock = threading.Lock()
        self._round_robin = itertools.count()

    @classmethod
    def open(
        cls, runtime: ModuleRuntime, generation: int, selector: TokenSelector, pin: str, worker_count: int
    ) -> TokenConnection:
        """Find the token, log the process in on an anchor session and open the workers.

        Caller holds runtime.calls(). PKCS#11 errors propagate; no session is left open on failure.
        """
        token = find_token(runtime.library, selector)
        mechanisms = frozenset(int(mechanism) for mechanism in token.slot.get_mechanisms())
        opened: list[Any] = []
        try:
            opened.append(token.open(rw=True))
            # Already logged in (another KeyStore in this process) is fine: login belongs to
            # the process, not the session.
            runtime.raw.login_user(opened[0].handle, pin)
            for _ in range(worker_count):
                opened.append(token.open(rw=True))
        except BaseException:
            _close_quietly(reversed(opened))
            raise
        sessions = [PooledSession(session) for session in opened]
        return cls(
            runtime=runtime,
            generation=generation,
            token=token,
            mechanisms=mechanisms,
            anchor=sessions[0],
            workers=sessions[1:],
        )

    @property
    def module_path(self) -> str:
        return self.runtime.path

    def where(self) -> str:
        """`token 'x' (module /path)`, for messages."""
        return f"token '{self.token_label}' (module {self.runtime.path})"

    @contextmanager
    def lease(self, home: PooledSession | None = None) -> Iterator[PooledSession]:
        """Exclusive use of one worker session: `home` if given, else a free one if any is free."""
        if home is not None:
            home.lock.acquire()
            chosen = home
        else:
            chosen = self._take_free_worker() or self._wait_for_worker()
        try:
            chosen.ensure_open()
            yield chosen
        finally:
            chosen.lock.release()

    def _take_free_worker(self) -> PooledSession | None:
        start = next(self._round_robin)
        for offset in range(len(self.workers)):
            candidate = self.workers[(start + offset) % len(self.workers)]
            if candidate.lock.acquire(blocking=False):
                return candidate
        return None

    def _wait_for_worker(self) -> PooledSession:
        worker = self.workers[next(self._round_robin) % len(self.workers)]
        worker.lock.acquire()
        return worker

    def cached(self, key_id: bytes) -> CachedKey | None:
        with self._cache_lock:
            return self._cache.get(key_id)

    def remember(self, key_id: bytes, key: Any, home: PooledSession) -> CachedKey:
        entry = CachedKey(key, home)
        with self._cache_lock:
            self._cache[key_id] = entry
        return entry

    def forget(self, key_id: bytes, entry: CachedKey | None = None) -> None:
        """Drop the cached key; with `entry`, only if it is still that one (a racing re-find wins)."""
        with self._cache_lock:
            if entry is None or self._cache.get(key_id) is entry:
                self._cache.pop(key_id, None)

    def ensure_healthy(self) -> None:
        """Raise HsmUnavailable (and mark the connection broken) unless the token is there and logged in.

        Needed before reporting that something is absent: SoftHSM answers a search on a token
        whose files vanished with an empty result, not an error, and a logged-out process sees
        no private objects.
        """
        self.ensure_present()
        try:
            logged_in = self.is_logged_in()
        except p11.PKCS11Error as exc:
            self.broken = True
            raise HsmUnavailable(f"{self.where()} is unavailable ({describe(exc)})") from exc
        if not logged_in:
            self.broken = True
            raise HsmUnavailable(f"{self.where()}: this process is no longer logged in (UserNotLoggedIn)")

    def ensure_present(self) -> None:
        """C_GetTokenInfo: SoftHSM fails it once the token's files are gone."""
        try:
            self.token.slot.get_token()
        except p11.PKCS11Error as exc:
            self.broken = True
            raise HsmUnavailable(f"{self.where()} is unavailable ({describe(exc)})") from exc

    def is_logged_in(self) -> bool:
        with self.anchor.lock:
            self.anchor.ensure_open()
            return self.runtime.raw.session_logged_in(self.anchor.session.handle)

    def close(self) -> None:
        """Close the workers, then the anchor. Caller holds runtime.calls() and the generation is current.

        Each session is closed under its lease: a thread still inside an operation on a broken
        connection finishes first, so no session is freed while the token works in it.
        """
        for pooled in [*self.workers, self.anchor]:
            with pooled.lock:
                pooled.closed = True
                _close_quietly([pooled.session])


def find_token(library: Any, selector: TokenSelector) -> Any:
    """The one token the selector names; NoSuchToken lists the labels that are there."""
    uri = selector.uri
    wanted_label = uri.token if uri is not None else selector.label
    matches = [
        token
        for token in library.get_tokens(token_label=wanted_label)
        if uri is None
        or uri.matches(
            label=token.label,
            manufacturer=token.manufacturer_id,
            serial=_serial(token),
            model=token.model,
        )
    ]
    if len(matches) > 1:
        raise ConfigError(
            f"{len(matches)} tokens match {selector.describe()}; name one by its serial "
            "(hsm.token_uri = pkcs11:serial=...)"
        )
    if not matches:
        present = ", ".join(repr(token.label) for token in library.get_tokens() if token.label) or "none"
        raise p11.NoSuchToken(f"no token {selector.describe()}; tokens present: {present}")
    return matches[0]


def _serial(token: Any) -> str:
    serial: bytes = token.serial
    return serial.rstrip(b"\0 ").decode("ascii", errors="replace")


def _close_quietly(sessions: Any) -> None:
    for session in sessions:
        try:
            session.close()
        except p11.PKCS11Error:
            # The session may already be gone with its token; nothing else to release.
            continue
