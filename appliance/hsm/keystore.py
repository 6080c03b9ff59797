"""KeyStore: the appliance's device keys in a PKCS#11 token, safe to call from many threads.

Every public method runs the same way (`_call`): make sure a connection for the current module
generation exists (reconnecting, and re-initialising the module if the token had vanished),
then run the operation holding shared access to the module, and turn PKCS#11 errors into the
appliance's HsmError family with the module path, the token label and the PKCS#11 error name.

Recovery: an operation that finds the token gone marks the connection broken; the next call
reconnects (new sessions, new login, empty handle cache). SoftHSM keeps a token whose files
vanished invalid until C_Initialize, so a reconnect that cannot find the token re-initialises
the module once and tries again. While the token is gone every call raises HsmUnavailable; once
it is back the next call works, with no restart. A connection that had worked and broke between
two calls is re-made within the call for operations that are safe to repeat (everything but key
generation and destruction), so a blip between requests fails none of them.

Partitions: with `hsm.partition_labels`, device keys live in those tokens, each key in the one
`partitions.partition_index` picks from its device id; the appliance's own keys stay in the main
token. Every token has its own connection (sessions, login, handle cache) and recovers on its
own; a look-up or destruction then scans one partition, not the whole fleet.

Fork: nothing is loaded at import. The module is loaded by `open` in the process that calls it,
and a KeyStore carried into a child process through fork() reconnects (and re-initialises the
module) on its first call there. Open the KeyStore after the fork (e.g. in the app lifespan).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Callable
from typing import TypeVar

import pkcs11.exceptions as p11

from appliance.config import HsmSettings
from appliance.errors import ConfigError, HsmError, HsmMechanismMissing, HsmUnavailable
from appliance.hsm import device_keys, diagnostics, partitions, secret_box
from appliance.hsm.connection import TokenConnection, TokenSelector
from appliance.hsm.failures import LOGIN_REFUSED, connection_lost, describe, mechanism_refused
from appliance.hsm.models import DeviceKeyInfo, KeyPolicy, TokenCheck
from appliance.hsm.pin import read_pin
from appliance.hsm.runtime import ModuleRuntime, load_module
from appliance.hsm.uri import parse_pkcs11_uri

T = TypeVar("T")

# Attempts at finding a connection whose module generation is still current when the call
# starts; more than this means two configurations fight over one module in this process.
_GENERATION_RACE_ATTEMPTS = 3


class KeyStore:
    """Synchronous and thread-safe. Create with `KeyStore.open(settings)`; `close()` when done."""

    def __init__(
        self, settings: HsmSettings, *, _selectors: tuple[TokenSelector, ...], _module_path: str
    ) -> None:
        self._settings = settings
        # Token 0 is the main token; the others (if any) are the partitions, in configured order.
        self._selectors = _selectors
        self._selector = _selectors[0]
        self._device_tokens = tuple(range(1, len(_selectors))) or (0,)
        self._module_path = _module_path
        self._pid = os.getpid()
        self._connections: list[TokenConnection | None] = [None] * len(_selectors)
        self._connect_lock = threading.Lock()
        self._closed = False
        # SHA-256 of a PIN the token refused: never offered again, so a wrong PIN source cannot
        # lock a real HSM by retrying on every request.
        self._refused_pin: bytes | None = None

    @classmethod
    def open(cls, settings: HsmSettings) -> KeyStore:
        """Load the module, find the token and log in; every failure is an ApplianceError naming both."""
        if settings.worker_threads < 1:
            raise ConfigError(f"hsm.worker_threads must be at least 1, not {settings.worker_threads}")
        if (settings.token_label is None) == (settings.token_uri is None):
            raise ConfigError("set exactly one of hsm.token_label and hsm.token_uri")
        uri = parse_pkcs11_uri(settings.token_uri) if settings.token_uri is not None else None
        module_path = uri.module_path if uri is not None and uri.module_path else settings.module
        read_pin(settings)  # a missing PIN source is a configuration error, reported before the token
        main = TokenSelector(settings.token_label, uri)
        if len(set(settings.partition_labels)) != len(settings.partition_labels) or (
            settings.token_label is not None and settings.token_label in settings.partition_labels
        ):
            raise ConfigError(
                "hsm.partition_labels must name distinct tokens other than the main token "
                f"(got {settings.partition_labels})"
            )
        selectors = (main, *(TokenSelector(label, None) for label in settings.partition_labels))
        store = cls(settings, _selectors=selectors, _module_path=module_path)
        # Every partition now: a missing one is a start-up error, not a failed registration later.
        for token in range(len(selectors)):
            store._ready_connection(token)
        return store

    @property
    def module_path(self) -> str:
        return self._module_path

    @property
    def token_label(self) -> str:
        connection = self._connections[0]
        if connection is not None:
            return connection.token_label
        return self._selector.label if self._selector.label is not None else self._selector.describe()

    @property
    def partition_labels(self) -> list[str]:
        """The tokens holding device keys besides the main token; empty when the main token does."""
        return list(self._settings.partition_labels)

    def _device_token(self, device_id: uuid.UUID) -> int:
        return self._device_tokens[partitions.partition_index(device_id, len(self._device_tokens))]

    @property
    def worker_threads(self) -> int:
        return self._settings.worker_threads

    def close(self) -> None:
        """Close this store's sessions; the process stays logged in while other stores keep theirs."""
        with self._connect_lock:
            self._closed = True
            connections, self._connections = self._connections, [None] * len(self._selectors)
            for connection in connections:
                if connection is not None:
                    self._discard(connection)

    def generate_device_key(self, device_id: uuid.UUID, policy: KeyPolicy, label: str | None = None) -> bytes:
        """New secp256k1 token key pair with CKA_ID = device_id.bytes; returns the SPKI DER."""
        key_label = label if label is not None else device_keys.default_label(device_id)
        return self._call(
            f"generating the {policy} key of device {device_id}",
            lambda connection: device_keys.generate(connection, device_id, KeyPolicy(policy), key_label),
            token=self._device_token(device_id),
            idempotent=False,
            alone=True,
        )

    def public_key(self, device_id: uuid.UUID) -> bytes:
        return self._call(
            f"reading the public key of device {device_id}",
            lambda connection: device_keys.public_key(connection, device_id),
            token=self._device_token(device_id),
        )

    def sign_digest(self, device_id: uuid.UUID, digest: bytes) -> bytes:
        """DER ECDSA signature over a 32-byte SHA-256 digest (hash first: CKM_ECDSA takes anything)."""
        if len(digest) != device_keys.DIGEST_LENGTH:
            raise ValueError(f"sign_digest takes a 32-byte SHA-256 digest, not {len(digest)} bytes")
        return self._call(
            f"signing with the key of device {device_id}",
            lambda connection: device_keys.sign_digest(connection, device_id, digest),
            token=self._device_token(device_id),
        )

    def export_private_key(self, device_id: uuid.UUID, expected_public_key: bytes | None = None) -> str:
        """SEC1 `EC PRIVATE KEY` PEM of an exportable key; KeyNotExportable for a sealed one."""
        return self._call(
            f"exporting the key of device {device_id}",
            lambda connection: device_keys.export_private_key(connection, device_id, expected_public_key),
            token=self._device_token(device_id),
            alone=True,  # creates and destroys a one-time wrapping key
        )

    def destroy_device_key(self, device_id: uuid.UUID) -> bool:
        """Destroy the private and public key; False when the token holds neither."""
        return self._call(
            f"destroying the key of device {device_id}",
            lambda connection: device_keys.destroy(connection, device_id),
            token=self._device_token(device_id),
            idempotent=False,
            alone=True,
        )

    def has_device_key(self, device_id: uuid.UUID) -> bool:
        return self._call(
            f"looking up the key of device {device_id}",
            lambda connection: device_keys.exists(connection, device_id),
            token=self._device_token(device_id),
        )

    def list_device_keys(self) -> list[DeviceKeyInfo]:
        """Every device key, from every token that holds device keys."""
        found = [
            info
            for token in self._device_tokens
            for info in self._call(
                f"listing device keys on token {self._selectors[token].describe()}",
                device_keys.list_keys,
                token=token,
            )
        ]
        return sorted(found, key=lambda info: (info.label, info.key_id_hex))

    def encrypt_secret(self, plaintext: bytes) -> bytes:
        return self._call("sealing a secret", lambda connection: secret_box.encrypt(connection, plaintext))

    def decrypt_secret(self, blob: bytes) -> bytes:
        return self._call("opening a sealed secret", lambda connection: secret_box.decrypt(connection, blob))

    def probe(self) -> None:
        """Sign with the appliance's probe key; HsmUnavailable when the token cannot sign."""
        try:
            self._call("probing the token", diagnostics.probe)
        except HsmUnavailable:
            raise
        except HsmError as exc:
            raise HsmUnavailable(str(exc)) from exc

    def check(self) -> TokenCheck:
        return self._call("checking the token", diagnostics.check)

    def _call(
        self,
        action: str,
        operation: Callable[[TokenConnection], T],
        *,
        token: int = 0,
        idempotent: bool = True,
        alone: bool = False,
    ) -> T:
        retried_after_reconnect = False
        for _ in range(_GENERATION_RACE_ATTEMPTS):
            connection = self._ready_connection(token)
            runtime = connection.runtime
            with runtime.calls(alone=alone):
                if connection.generation != runtime.generation or not runtime.initialized:
                    continue
                try:
                    result = operation(connection)
                except p11.PKCS11Error as exc:
                    failure = self._translate(action, connection, exc)
                    failure.__cause__ = exc
                except HsmUnavailable as exc:
                    failure = exc
                else:
                    connection.proven = True
                    return result
            # A connection that worked before and broke since (the token went and came back
            # between two calls) gets one reconnect, so a blip between requests fails none.
            # Key generation and destruction are not repeated: their first attempt may have
            # reached the token.
            if idempotent and connection.broken and connection.proven and not retried_after_reconnect:
                retried_after_reconnect = True
                continue
            raise failure
        raise HsmUnavailable(
            f"{action}: PKCS#11 module {self._module_path} kept being re-initialised (several SoftHSM "
            "configurations in one process?)"
        )

    def _translate(self, action: str, connection: TokenConnection, exc: p11.PKCS11Error) -> HsmError:
        where = connection.where()
        if connection_lost(exc):
            connection.broken = True
            return HsmUnavailable(f"{action} failed: {where} is unavailable ({describe(exc)})")
        if mechanism_refused(exc):
            return HsmMechanismMissing(f"{action} failed: {where} refused the mechanism ({describe(exc)})")
        return HsmError(f"{action} failed on {where} ({describe(exc)})")

    def _ready_connection(self, token: int = 0) -> TokenConnection:
        with self._connect_lock:
            if self._closed:
                raise HsmUnavailable(f"the key store for token {self._selector.describe()} is closed")
            if self._pid != os.getpid():
                # Sessions and handles came from the parent; dropped without closing them there.
                self._pid = os.getpid()
                self._connections = [None] * len(self._selectors)
            connection = self._connections[token]
            if (
                connection is not None
                and not connection.broken
                and connection.generation == connection.runtime.generation
            ):
                return connection
            self._connections[token] = None
            if connection is not None:
                self._discard(connection)
            # Looked up again on every reconnect: it also brings the module back to this store's
            # SoftHSM configuration if another store switched it.
            runtime = load_module(self._module_path, self._settings.softhsm_conf)
            fresh = self._connect(runtime, self._selectors[token])
            self._connections[token] = fresh
            return fresh

    def _connect(self, runtime: ModuleRuntime, selector: TokenSelector) -> TokenConnection:
        pin = read_pin(self._settings)
        pin_digest = hashlib.sha256(pin.encode("utf-8")).digest()
        if pin_digest == self._refused_pin:
            raise HsmUnavailable(
                f"token {selector.describe()} (module {self._module_path}) refused this PIN before; "
                "not trying it again, which could lock the token: correct the PIN source"
            )
        reinitialized = False
        while True:
            seen_generation = runtime.generation
            failure: p11.PKCS11Error | None = None
            with runtime.calls():
                if runtime.initialized and runtime.generation == seen_generation:
                    try:
                        return TokenConnection.open(
                            runtime, seen_generation, selector, pin, self._settings.worker_threads
                        )
                    except p11.PKCS11Error as exc:
                        failure = exc
            if failure is not None:
                if reinitialized or not connection_lost(failure):
                    raise self._connect_failure(failure, pin_digest, selector) from failure
                reinitialized = True
            elif runtime.initialized:
                continue  # another thread re-initialised the module meanwhile; use the new generation
            # SoftHSM keeps a token that vanished invalid, and does not see a token created
            # since it started, until the module is initialised again.
            runtime.reinitialize(seen_generation=seen_generation, softhsm_conf=self._settings.softhsm_conf)

    def _connect_failure(self, exc: p11.PKCS11Error, pin_digest: bytes, selector: TokenSelector) -> HsmError:
        token = f"token {selector.describe()}"
        module = f"PKCS#11 module {self._module_path}"
        if isinstance(exc, p11.NoSuchToken):
            return HsmUnavailable(f"{token} not found in {module} ({describe(exc)})")
        if isinstance(exc, LOGIN_REFUSED):
            if isinstance(exc, p11.PinIncorrect | p11.PinLocked | p11.PinExpired | p11.PinInvalid):
                self._refused_pin = pin_digest
            reason = "wrong PIN" if isinstance(exc, p11.PinIncorrect) else "login refused"
            return HsmUnavailable(f"login to {token} in {module} failed: {reason} ({describe(exc)})")
        if connection_lost(exc):
            return HsmUnavailable(f"{token} in {module} is unavailable ({describe(exc)})")
        return HsmError(f"opening {token} in {module} failed ({describe(exc)})")

    def _discard(self, connection: TokenConnection) -> None:
        """Close a connection's sessions if they still belong to the running module generation.

        After a re-initialisation the old handle numbers may name another store's new sessions,
        so those are dropped without a call.
        """
        runtime = connection.runtime
        with runtime.calls():
            if runtime.initialized and connection.generation == runtime.generation:
                connection.close()

    def __repr__(self) -> str:
        return f"<KeyStore module={self._module_path} token={self._selector.describe()}>"
