"""The device registry and API-key store (today: one SQLite file, see `SqliteRegistry`)."""

from appliance.storage.audit import (
    ACTOR_CLI,
    ACTOR_SYSTEM,
    GENESIS_HASH,
    AuditEvent,
    AuditProblem,
    AuditRecord,
    AuditTrail,
    api_key_actor,
)
from appliance.storage.models import (
    ActivationData,
    ApiKeyInfo,
    DevicePage,
    DeviceRecord,
    certificate_serial_text,
)
from appliance.storage.protocol import ApiKeyStore, AuditedDeviceRegistry, DeviceRegistry
from appliance.storage.sqlite import SqliteRegistry

__all__ = [
    "ACTOR_CLI",
    "ACTOR_SYSTEM",
    "GENESIS_HASH",
    "ActivationData",
    "ApiKeyInfo",
    "ApiKeyStore",
    "AuditEvent",
    "AuditProblem",
    "AuditRecord",
    "AuditTrail",
    "AuditedDeviceRegistry",
    "DevicePage",
    "DeviceRecord",
    "DeviceRegistry",
    "SqliteRegistry",
    "api_key_actor",
    "certificate_serial_text",
]
