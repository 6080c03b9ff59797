"""`create_app(config)`: the Litestar application, its lifespan and its one exception map."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import cast

import anyio
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin

from appliance import __version__
from appliance.api.devices import DevicesController
from appliance.api.errors import EXCEPTION_HANDLERS
from appliance.api.health import live, ready
from appliance.api.metrics_route import metrics
from appliance.api.middleware import request_context_middleware
from appliance.app_state import Resources
from appliance.config import AppConfig
from appliance.daemon.notify import SystemdNotifier
from appliance.errors import ApplianceError
from appliance.hsm import AsyncKeyStore, KeyStore
from appliance.metrics import Metrics
from appliance.services.reconcile import reconcile
from appliance.services.registration import RegistrationService
from appliance.storage import SqliteRegistry
from appliance.zatca import ZatcaClient

log = logging.getLogger("appliance.app")


def create_app(config: AppConfig, key_store: KeyStore | None = None) -> Litestar:
    """The application; `key_store`, when given, is an open store that the app uses and closes."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            resources = await open_resources(config, stack, key_store)
            # Nothing is in flight yet, so every pending row is a registration a crash interrupted.
            report = await reconcile(resources.keys, resources.registry, pending_older_than=timedelta(0))
            # Counted from reconciliation's listing: a second one costs seconds with 10,000 keys.
            resources.metrics.token_device_keys.set(report.device_keys_left)
            # Find (or create) the probe and secret-box keys now: each first look-up scans the
            # whole token, which the first registration after a restart should not pay for.
            await resources.keys.probe()
            await resources.keys.encrypt_secret(b"warm-up")
            log.info(
                "service ready",
                extra={
                    "pending_failed": len(report.pending_failed),
                    "keys_destroyed": len(report.keys_destroyed),
                    "device_keys": report.device_keys_left,
                },
            )
            app.state.resources = resources
            background = [
                asyncio.create_task(_watchdog_pings(SystemdNotifier())),
                asyncio.create_task(_reconcile_periodically(resources)),
            ]
            try:
                yield
            finally:
                for task in background:
                    task.cancel()

    return Litestar(
        route_handlers=[DevicesController, live, ready, metrics],
        dependencies={"resources": Provide(_resources, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_context_middleware],
        request_max_body_size=config.server.max_body_bytes,
        # Logging is configured once by the process (appliance.logs), not by the framework.
        logging_config=None,
        openapi_config=OpenAPIConfig(
            title="ZATCA signing appliance",
            version=__version__,
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
        ),
    )


async def open_resources(
    config: AppConfig, stack: AsyncExitStack, key_store: KeyStore | None = None
) -> Resources:
    """Open token, registry and ZATCA client; `stack` closes them in reverse order."""
    store = key_store if key_store is not None else await anyio.to_thread.run_sync(KeyStore.open, config.hsm)
    stack.callback(store.close)
    metrics = Metrics()
    keys = AsyncKeyStore(store, observe=metrics.observe_hsm)
    registry = await SqliteRegistry.open(config.storage.registry_path)
    stack.push_async_callback(registry.close)
    zatca = ZatcaClient(config.zatca, observe=metrics.observe_zatca)
    stack.push_async_callback(zatca.aclose)
    registration = RegistrationService(config, keys, registry, zatca, metrics)
    return Resources(
        config=config, keys=keys, registry=registry, zatca=zatca, registration=registration, metrics=metrics
    )


async def _reconcile_periodically(resources: Resources) -> None:
    """Repair what failures left behind while the service runs (a key whose destruction failed
    because the token was away). Only pending rows older than `stale_pending_seconds` count as
    interrupted; rows are written before keys, so in-flight registrations are never touched."""
    settings = resources.config.storage
    if settings.reconcile_interval_seconds <= 0:
        return
    while True:
        await asyncio.sleep(settings.reconcile_interval_seconds)
        try:
            report = await reconcile(
                resources.keys,
                resources.registry,
                pending_older_than=timedelta(seconds=settings.stale_pending_seconds),
            )
        except ApplianceError as exc:
            log.warning("periodic reconciliation skipped", extra={"error": str(exc)})
            continue
        resources.metrics.token_device_keys.set(report.device_keys_left)


async def _watchdog_pings(notifier: SystemdNotifier) -> None:
    """Ping systemd's watchdog from the event loop itself, so a wedged loop stops the pings and
    systemd restarts the service."""
    interval = notifier.watchdog_seconds
    if interval is None:
        return
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval / 2)


def _resources(state: State) -> Resources:
    return cast(Resources, state.resources)
