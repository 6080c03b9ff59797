"""The few Cryptoki calls python-pkcs11 does not make the way the appliance needs them.

They go through the module's own `C_GetFunctionList` table, so they reach the very module
instance python-pkcs11 loaded (dlopen returns the same instance for the same file):

- `C_Initialize` with CKF_OS_LOCKING_OK. python-pkcs11 0.10 passes NULL, which SoftHSM takes as
  "single-threaded application" and answers by turning all its mutexes into no-ops, while
  python-pkcs11 releases the GIL around every call: two threads in the token then crash the
  process (pkcs11-notes.md §5, Fix A).
- `C_Login` on a session python-pkcs11 opened without a PIN. `Token.open(user_pin=...)` leaks its
  session when the login fails, and its `Session.close()` calls `C_Logout`, which logs out every
  session of the process (notes §5 "Session and login semantics").
- `C_GetSessionInfo`, to tell "not logged in" from "no such key".
"""

from __future__ import annotations

import ctypes
import os
from typing import Any, Final

import pkcs11.exceptions as p11

CKF_OS_LOCKING_OK: Final = 0x2
CKU_USER: Final = 1
CKS_RO_USER_FUNCTIONS: Final = 1
CKS_RW_USER_FUNCTIONS: Final = 3

CKR_OK: Final = 0x0
CKR_CANT_LOCK: Final = 0xA
CKR_USER_ALREADY_LOGGED_IN: Final = 0x100
CKR_CRYPTOKI_NOT_INITIALIZED: Final = 0x190
CKR_CRYPTOKI_ALREADY_INITIALIZED: Final = 0x191

_ULONG = ctypes.c_ulong
_RV = ctypes.c_ulong


class _Version(ctypes.Structure):
    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class _InitializeArgs(ctypes.Structure):
    _fields_ = (
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", _ULONG),
        ("pReserved", ctypes.c_void_p),
    )


class _SessionInfo(ctypes.Structure):
    _fields_ = (("slotID", _ULONG), ("state", _ULONG), ("flags", _ULONG), ("ulDeviceError", _ULONG))


_PointerCall = ctypes.CFUNCTYPE(_RV, ctypes.c_void_p)
_SessionInfoCall = ctypes.CFUNCTYPE(_RV, _ULONG, ctypes.POINTER(_SessionInfo))
_LoginCall = ctypes.CFUNCTYPE(_RV, _ULONG, _ULONG, ctypes.c_char_p, _ULONG)


def _unused(name: str) -> tuple[str, type[ctypes.c_void_p]]:
    return (name, ctypes.c_void_p)


class _FunctionList(ctypes.Structure):
    """CK_FUNCTION_LIST up to C_Login; the order is fixed by the PKCS#11 standard."""

    _fields_ = (
        ("version", _Version),
        ("C_Initialize", _PointerCall),
        ("C_Finalize", _PointerCall),
        *(
            _unused(name)
            for name in (
                "C_GetInfo",
                "C_GetFunctionList",
                "C_GetSlotList",
                "C_GetSlotInfo",
                "C_GetTokenInfo",
                "C_GetMechanismList",
                "C_GetMechanismInfo",
                "C_InitToken",
                "C_InitPIN",
                "C_SetPIN",
                "C_OpenSession",
                "C_CloseSession",
                "C_CloseAllSessions",
            )
        ),
        ("C_GetSessionInfo", _SessionInfoCall),
        _unused("C_GetOperationState"),
        _unused("C_SetOperationState"),
        ("C_Login", _LoginCall),
    )


# The python-pkcs11 exception for each return value these calls can give, so callers handle
# one family of errors whichever layer made the call.
_ERRORS: Final[dict[int, type[p11.PKCS11Error]]] = {
    0x003: p11.SlotIDInvalid,
    0x005: p11.GeneralError,
    0x006: p11.FunctionFailed,
    0x030: p11.DeviceError,
    0x031: p11.DeviceMemory,
    0x032: p11.DeviceRemoved,
    0x0A0: p11.PinIncorrect,
    0x0A1: p11.PinInvalid,
    0x0A2: p11.PinLenRange,
    0x0A3: p11.PinExpired,
    0x0A4: p11.PinLocked,
    0x0B0: p11.SessionClosed,
    0x0B3: p11.SessionHandleInvalid,
    0x0E0: p11.TokenNotPresent,
    0x0E1: p11.TokenNotRecognised,
    0x100: p11.UserAlreadyLoggedIn,
    0x101: p11.UserNotLoggedIn,
    0x102: p11.UserPinNotInitialized,
    0x104: p11.AnotherUserAlreadyLoggedIn,
}
_MESSAGES: Final[dict[int, str]] = {
    CKR_CANT_LOCK: "CKR_CANT_LOCK",
    CKR_CRYPTOKI_NOT_INITIALIZED: "Initialisation error (not initialized)",
    CKR_CRYPTOKI_ALREADY_INITIALIZED: "Initialisation error (already initialized)",
}


def error_for(rv: int) -> p11.PKCS11Error:
    if rv in _ERRORS:
        return _ERRORS[rv]()
    return p11.PKCS11Error(_MESSAGES.get(rv, f"Unmapped error code {rv:#x}"))


class RawModule:
    """Direct access to one loaded module's function table."""

    def __init__(self, path: str) -> None:
        # Resolving the table (rather than the exported C_* symbols) also works for modules that
        # export nothing but C_GetFunctionList.
        self._library = ctypes.CDLL(path, mode=os.RTLD_NOW | os.RTLD_LOCAL)
        get_function_list: Any = self._library.C_GetFunctionList
        get_function_list.restype = _RV
        get_function_list.argtypes = (ctypes.POINTER(ctypes.POINTER(_FunctionList)),)
        table = ctypes.POINTER(_FunctionList)()
        rv = int(get_function_list(ctypes.byref(table)))
        if rv != CKR_OK:
            raise error_for(rv)
        self._functions: _FunctionList = table.contents

    def finalize(self) -> None:
        """C_Finalize; a module that is not initialised (e.g. after fork) is fine."""
        rv = int(self._functions.C_Finalize(None))
        if rv not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
            raise error_for(rv)

    def initialize(self) -> bool:
        """C_Initialize asking for OS locking; returns False when the module could only start unlocked.

        A module that answers CKR_CANT_LOCK is started with NULL arguments instead, and the caller
        must then keep every call to it on one thread at a time.
        """
        arguments = _InitializeArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
        rv = int(self._functions.C_Initialize(ctypes.cast(ctypes.byref(arguments), ctypes.c_void_p)))
        if rv == CKR_OK:
            return True
        if rv == CKR_CANT_LOCK:
            rv = int(self._functions.C_Initialize(None))
            if rv == CKR_OK:
                return False
        raise error_for(rv)

    def login_user(self, session_handle: int, pin: str) -> bool:
        """Log the process in on the session's token; False if it already was."""
        encoded = pin.encode("utf-8")
        rv = int(self._functions.C_Login(session_handle, CKU_USER, encoded, len(encoded)))
        if rv == CKR_USER_ALREADY_LOGGED_IN:
            return False
        if rv != CKR_OK:
            raise error_for(rv)
        return True

    def session_logged_in(self, session_handle: int) -> bool:
        info = _SessionInfo()
        rv = int(self._functions.C_GetSessionInfo(session_handle, ctypes.byref(info)))
        if rv != CKR_OK:
            raise error_for(rv)
        return int(info.state) in (CKS_RO_USER_FUNCTIONS, CKS_RW_USER_FUNCTIONS)
