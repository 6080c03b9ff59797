"""The PKCS#11 key store: the only package that imports `pkcs11`.

    KeyStore        synchronous, thread-safe; device keys, signing, export, secret box, probe
    AsyncKeyStore   the same as coroutines, one thread hop per call through a shared limiter
    KeyPolicy, DeviceKeyInfo, TokenCheck   the values they return

Nothing touches the PKCS#11 module at import time; `KeyStore.open` loads it in the calling
process (see `keystore` for fork and recovery behaviour).
"""

from appliance.hsm.async_keystore import AsyncKeyStore
from appliance.hsm.keystore import KeyStore
from appliance.hsm.models import DeviceKeyInfo, KeyPolicy, TokenCheck
from appliance.hsm.pin import read_pin
from appliance.hsm.uri import TokenUri, parse_pkcs11_uri

__all__ = [
    "AsyncKeyStore",
    "DeviceKeyInfo",
    "KeyPolicy",
    "KeyStore",
    "TokenCheck",
    "TokenUri",
    "parse_pkcs11_uri",
    "read_pin",
]
