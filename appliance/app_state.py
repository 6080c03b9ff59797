"""The shared resources one running service holds for its whole life."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config import AppConfig
from appliance.hsm import AsyncKeyStore
from appliance.metrics import Metrics
from appliance.services.registration import RegistrationService
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
