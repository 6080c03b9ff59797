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
from appliance.api.invoices import InvoicesController
from appliance.api.metrics_route import metrics
from appliance.api.middleware import listener_split_middleware, request_context_middleware
from appliance.api.renewal import RenewalController
from appliance.app_state import Resources
from appliance.config import AppConfig
from appliance.daemon.notify import SystemdNotifier
from appliance.errors import ApplianceError
from appliance.hsm import AsyncKeyStore, KeyStore
from appliance.metrics import Metrics
from appliance.services.device_locks import DeviceLocks
from appliance.services.invoicing import InvoicingService
from appliance.services.outbox import Outbox, StatusListener
from appliance.services.reconcile import reconcile, resolve_interrupted
from appliance.services.registration import RegistrationService, refresh_expiry_gauge
from appliance.services.renewal import RenewalService
from appliance.services.webhooks import WebhookDispatcher
from appliance.storage import SqliteRegistry
from appliance.storage.invoices import InvoiceStore
from appliance.storage.invoices_models import InvoiceRecord
from appliance.storage.sql import utc_now
from appliance.storage.webhooks import WebhookStore
from appliance.webhook import WebhookClient, read_webhook_secret
from appliance.zatca import ZatcaClient

log = logging.getLogger("appliance.app")


def create_app(config: AppConfig, key_store: KeyStore | None = None) -> Litestar:
    """The application; `key_store`, when given, is an open store that the app uses and closes."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            resources = await open_resources(config, stack, key_store)
            # Before answering: every pending row is a registration a crash interrupted; its key
            # is destroyed by device id. The full pass (listings of every token: seconds with
            # 10,000 keys) runs right after start-up, in the background (services/reconcile.py).
            report = await resolve_interrupted(resources.keys, resources.registry)
            # Find (or create) the probe and secret-box keys now: each first look-up scans the
            # whole token, which the first registration after a restart should not pay for.
            await resources.keys.probe()
            await resources.keys.encrypt_secret(b"warm-up")
            log.info(
                "service ready",
                extra={
                    "pending_failed": len(report.pending_failed),
                    "keys_destroyed": len(report.keys_destroyed),
                },
            )
            app.state.resources = resources
            background = [
                asyncio.create_task(_watchdog_pings(SystemdNotifier())),
                asyncio.create_task(_reconcile_periodically(resources)),
                # Invoices stored before a restart (or kill -9) are delivered from here on.
                asyncio.create_task(resources.outbox.run()),
            ]
            if resources.webhooks is not None:
                # Status changes stored before a restart are sent from here on.
                background.append(asyncio.create_task(resources.webhooks.run()))
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                # Awaited before the exit stack closes the clients, registry and key store they use.
                await asyncio.gather(*background, return_exceptions=True)
                # Deliveries in flight finish and record their outcome before the registry closes.
                await resources.outbox.drain()

    app = Litestar(
        route_handlers=[DevicesController, RenewalController, InvoicesController, live, ready, metrics],
        dependencies={"resources": Provide(_resources, sync_to_thread=False)},
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
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
    # Around Litestar's whole handler, not as route middleware: Litestar's own answers (unknown
    # route, 405) and the exceptions it maps must carry the request id and Cache-Control too, and
    # a listener split must act before routing.
    handler = app.asgi_handler
    if config.server.ops_port is not None:
        handler = listener_split_middleware(config.server.ops_port)(handler)
    app.asgi_handler = request_context_middleware(handler)
    return app


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
    await refresh_expiry_gauge(registry, metrics)
    webhook_secret = read_webhook_secret(config.webhooks)
    webhooks: WebhookDispatcher | None = None
    if webhook_secret is not None and config.webhooks.url is not None:
        webhook_client = WebhookClient(config.webhooks.url, webhook_secret, config.webhooks.timeout_seconds)
        stack.push_async_callback(webhook_client.aclose)
        webhooks = WebhookDispatcher(
            settings=config.webhooks,
            store=WebhookStore(registry.database, utc_now),
            client=webhook_client,
            metrics=metrics,
            poll_seconds=config.invoicing.outbox_poll_seconds,
        )
    invoice_store = InvoiceStore(registry.database, utc_now, notify_webhooks=webhooks is not None)
    # One lock per device, shared by invoicing, renewal and retirement (services/device_locks.py).
    locks = DeviceLocks()
    renewal = RenewalService(config, keys, registry, zatca, metrics, invoices=invoice_store, locks=locks)
    outbox = Outbox(
        settings=config.invoicing,
        store=invoice_store,
        registry=registry,
        keys=keys,
        zatca=zatca,
        metrics=metrics,
        on_status=None if webhooks is None else _waker(webhooks),
    )
    invoicing = InvoicingService(
        config=config,
        keys=keys,
        registry=registry,
        store=invoice_store,
        outbox=outbox,
        metrics=metrics,
        locks=locks,
    )
    return Resources(
        config=config,
        keys=keys,
        registry=registry,
        zatca=zatca,
        registration=registration,
        metrics=metrics,
        renewal=renewal,
        invoicing=invoicing,
        outbox=outbox,
        locks=locks,
        webhooks=webhooks,
    )


def _waker(webhooks: WebhookDispatcher) -> StatusListener:
    """The outbox's status listener: the event is already stored; only wake the dispatcher."""

    async def wake(_: InvoiceRecord) -> None:
        webhooks.wake()

    return wake


async def _reconcile_periodically(resources: Resources) -> None:
    """The full pass once right after start-up (orphan keys, failed rows that kept a key, the key
    count), then every `reconcile_interval_seconds` (0: only the first), to repair what failures
    left behind while the service runs (a key whose destruction failed because the token was
    away). Only pending rows older than `stale_pending_seconds` count as interrupted; rows are
    written before keys, so in-flight registrations are never touched."""
    settings = resources.config.storage
    first = True
    while first or settings.reconcile_interval_seconds > 0:
        if not first:
            await asyncio.sleep(settings.reconcile_interval_seconds)
        first = False
        try:
            report = await reconcile(
                resources.keys,
                resources.registry,
                pending_older_than=timedelta(seconds=settings.stale_pending_seconds),
            )
            # Inside the try: a registry error here must skip one round, not end the task.
            await refresh_expiry_gauge(resources.registry, resources.metrics)
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
