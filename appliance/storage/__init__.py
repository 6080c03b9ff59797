"""The device registry and API-key store (today: one SQLite file, see `SqliteRegistry`)."""

from appliance.storage.audit import (
    ACTOR_CLI,
    ACTOR_SYSTEM,
    GENESIS_HASH,
    AuditEvent,
    AuditNote,
    AuditProblem,
    AuditRecord,
    AuditTrail,
)
from appliance.storage.models import (
    ActivationData,
    ApiKeyInfo,
    ApiKeyScope,
    ComplianceCheckRecord,
    ComplianceCsidData,
    DevicePage,
    DeviceRecord,
    RenewalData,
    api_key_actor,
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
    "ApiKeyScope",
    "ApiKeyStore",
    "AuditEvent",
    "AuditNote",
    "AuditProblem",
    "AuditRecord",
    "AuditTrail",
    "AuditedDeviceRegistry",
    "ComplianceCheckRecord",
    "ComplianceCsidData",
    "DevicePage",
    "DeviceRecord",
    "DeviceRegistry",
    "RenewalData",
    "SqliteRegistry",
    "api_key_actor",
    "certificate_serial_text",
]
