"""How PKCS#11 failures are named and sorted.

Messages name the module, the token and the PKCS#11 error (python-pkcs11's exception class,
which mirrors the CKR_ code), as pyHanko does: an administrator can look that up.
"""

from __future__ import annotations

from typing import Final

import pkcs11.exceptions as p11

# The token or the session to it is gone (removed, vanished from disk, module restarted, logged
# out behind our back). A later call reconnects; SoftHSM also needs its module re-initialised,
# because it keeps a token that vanished invalid until the next C_Initialize.
CONNECTION_LOST: Final[tuple[type[p11.PKCS11Error], ...]] = (
    p11.GeneralError,
    p11.DeviceError,
    p11.DeviceMemory,
    p11.DeviceRemoved,
    p11.FunctionFailed,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.SlotIDInvalid,
    p11.UserNotLoggedIn,
    p11.NoSuchToken,
)

# The token refused the PIN; trying the same PIN again could lock a real HSM.
LOGIN_REFUSED: Final[tuple[type[p11.PKCS11Error], ...]] = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinExpired,
    p11.PinLocked,
    p11.UserPinNotInitialized,
    p11.AnotherUserAlreadyLoggedIn,
)

MECHANISM_REFUSED: Final[tuple[type[p11.PKCS11Error], ...]] = (
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.DomainParamsInvalid,
)

# A cached object handle no longer names the object (destroyed elsewhere, module restarted).
STALE_HANDLE: Final[tuple[type[p11.PKCS11Error], ...]] = (p11.ObjectHandleInvalid, p11.KeyHandleInvalid)

_CKR_CURVE_NOT_SUPPORTED: Final = "0x140"


def describe(exc: BaseException) -> str:
    """`PinIncorrect`, or `PKCS11Error: <message>` when the library gave one."""
    name = type(exc).__name__
    message = str(exc).strip()
    return f"{name}: {message}" if message else name


def connection_lost(exc: p11.PKCS11Error) -> bool:
    if isinstance(exc, CONNECTION_LOST):
        return True
    # python-pkcs11 reports CKR_CRYPTOKI_NOT_INITIALIZED with the base class (e.g. in a child
    # after fork with SoftHSM's reset_on_fork=true).
    return type(exc) is p11.PKCS11Error and "not initialized" in str(exc)


def mechanism_refused(exc: p11.PKCS11Error) -> bool:
    return isinstance(exc, MECHANISM_REFUSED) or (
        type(exc) is p11.PKCS11Error and str(exc).endswith(_CKR_CURVE_NOT_SUPPORTED)
    )
