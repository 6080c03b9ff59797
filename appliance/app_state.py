"""The shared resources one running service holds for its whole life."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config import AppConfig
from appliance.hsm import AsyncKeyStore
from appliance.metrics import Metrics
from appliance.services.device_locks import DeviceLocks
from appliance.services.invoicing import InvoicingService
from appliance.services.outbox import Outbox
from appliance.services.registration import RegistrationService
from appliance.services.renewal import RenewalService
from appliance.services.webhooks import WebhookDispatcher
from appliance.storage import SqliteRegistry
from appliance.zatca import ZatcaClient


@dataclass(frozen=True, slots=True)
class Resources:
    config: AppConfig
    keys: AsyncKeyStore
    registry: SqliteRegistry
    zatca: ZatcaClient
    registration: RegistrationService
    metrics: Metrics
    renewal: RenewalService
    invoicing: InvoicingService
    outbox: Outbox
    # The one set of per-device locks invoicing, renewal and retirement share.
    locks: DeviceLocks
    # None when `webhooks.url` is not set.
    webhooks: WebhookDispatcher | None = None
