"""One loaded PKCS#11 module per process, shared by every KeyStore that names it.

Loading happens on first use in the process that uses it: a registry inherited through
fork() belongs to the parent and is dropped, and the module is re-initialised in the child
(pkcs11-notes.md §5.7: the child otherwise silently shares the parent's SoftHSM state).

Every (re-)initialisation enables OS locking (see `cryptoki`) and bumps `generation`; sessions
and object handles from an older generation are dead, and KeyStores reconnect when they see
the number change.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pkcs11
import pkcs11.exceptions as p11

from appliance.errors import HsmUnavailable
from appliance.hsm.cryptoki import RawModule
from appliance.hsm.failures import describe
from appliance.hsm.locks import SharedExclusiveLock

_SOFTHSM_CONF = "SOFTHSM2_CONF"


class ModuleRuntime:
    """A loaded, OS-locking PKCS#11 module and the locks every caller of it shares."""

    def __init__(self, path: str, library: Any, raw: RawModule) -> None:
        self.path = path
        self.library = library
        self.raw = raw
        self.generation = 0
        self.initialized = False
        self.os_locking = True
        self.softhsm_conf: str | None = None
        # SoftHSM corrupts its object store when objects are created or destroyed concurrently,
        # even with OS locking on (notes §5.5); every keygen/create/destroy takes this lock.
        self.object_lock = threading.Lock()
        self._access = SharedExclusiveLock()

    @contextmanager
    def calls(self, *, alone: bool = False) -> Iterator[None]:
        """Hold while calling into the module; a module without OS locking gets one caller at a time.

        `alone` is for calls that create or destroy token objects: SoftHSM's file store fails
        C_GenerateKeyPair (CKR_GENERAL_ERROR, "Could not initialize the attribute") when other
        threads use the token while the new objects are being written.
        """
        with self._access.exclusive() if alone or not self.os_locking else self._access.shared():
            yield

    def reinitialize(self, *, seen_generation: int, softhsm_conf: str | None = None) -> None:
        """C_Finalize + C_Initialize, unless another thread already did so since `seen_generation`."""
        wanted_conf = _absolute(softhsm_conf) if softhsm_conf is not None else self.softhsm_conf
        with self._access.exclusive():
            if self.generation != seen_generation and self.initialized and wanted_conf == self.softhsm_conf:
                return
            self._initialize(wanted_conf)

    def _initialize(self, softhsm_conf: str | None) -> None:
        """Caller holds the exclusive side (or is the loader, before anyone else sees this runtime)."""
        self.generation += 1
        self.initialized = False
        with _softhsm_conf_exported(softhsm_conf) as effective_conf:
            try:
                self.raw.finalize()
                self.os_locking = self.raw.initialize()
            except p11.PKCS11Error as exc:
                raise HsmUnavailable(
                    f"PKCS#11 module {self.path} failed to initialise ({describe(exc)})"
                    + _softhsm_hint(self.path, effective_conf)
                ) from exc
        self.softhsm_conf = effective_conf
        self.initialized = True


class _Registry:
    """The runtimes of this process; a copy inherited through fork() belongs to the parent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = os.getpid()
        self.runtimes: dict[str, ModuleRuntime] = {}

    def runtime_for(self, path: str, softhsm_conf: str | None) -> ModuleRuntime:
        real_path = os.path.realpath(path)
        with self.lock:
            if self.pid != os.getpid():
                self.runtimes.clear()
                self.pid = os.getpid()
            runtime = self.runtimes.get(real_path)
            if runtime is None:
                runtime = _load(path, real_path, softhsm_conf)
                self.runtimes[real_path] = runtime
                return runtime
        wrong_conf = softhsm_conf is not None and _absolute(softhsm_conf) != runtime.softhsm_conf
        if wrong_conf or not runtime.initialized:
            runtime.reinitialize(seen_generation=runtime.generation, softhsm_conf=softhsm_conf)
        return runtime


_registry = _Registry()


def load_module(path: str, softhsm_conf: str | None) -> ModuleRuntime:
    """The process's runtime for `path`, loading it on first use.

    `softhsm_conf` (settings.softhsm_conf) is exported as SOFTHSM2_CONF while the module
    initialises, the only moment SoftHSM reads it. A different configuration than the one the
    module runs with re-initialises it: one SoftHSM configuration per process at a time.
    """
    return _registry.runtime_for(path, softhsm_conf)


def _load(path: str, real_path: str, softhsm_conf: str | None) -> ModuleRuntime:
    conf = _absolute(softhsm_conf) if softhsm_conf is not None else None
    with _softhsm_conf_exported(conf) as effective_conf:
        try:
            # Keyed by the resolved path: python-pkcs11 caches per string, and a second
            # C_Initialize through a symlinked name would fail with "already initialized".
            library = pkcs11.lib(real_path)
        except p11.PKCS11Error as exc:
            raise HsmUnavailable(
                f"cannot load PKCS#11 module {path} ({describe(exc)})" + _softhsm_hint(path, effective_conf)
            ) from exc
    try:
        raw = RawModule(real_path)
    except (OSError, AttributeError, p11.PKCS11Error) as exc:
        raise HsmUnavailable(f"cannot load PKCS#11 module {path} ({describe(exc)})") from exc
    runtime = ModuleRuntime(path, library, raw)
    runtime._initialize(conf)
    return runtime


@contextmanager
def _softhsm_conf_exported(softhsm_conf: str | None) -> Iterator[str | None]:
    """Export SOFTHSM2_CONF for the duration of an initialisation; yield the value in effect."""
    if softhsm_conf is None:
        yield os.environ.get(_SOFTHSM_CONF)
        return
    previous = os.environ.get(_SOFTHSM_CONF)
    os.environ[_SOFTHSM_CONF] = softhsm_conf
    try:
        yield softhsm_conf
    finally:
        if previous is None:
            os.environ.pop(_SOFTHSM_CONF, None)
        else:
            os.environ[_SOFTHSM_CONF] = previous


def _absolute(path: str) -> str:
    return str(Path(path).absolute())


def _softhsm_hint(path: str, softhsm_conf: str | None) -> str:
    if "softhsm" not in path.lower():
        return ""
    if softhsm_conf is None:
        return "; SoftHSM reads /etc/softhsm/softhsm2.conf unless SOFTHSM2_CONF or hsm.softhsm_conf is set"
    return f"; check SOFTHSM2_CONF={softhsm_conf} and that its directories.tokendir exists"
