"""`zatca-appliance serve` (the service) and `zatca-appliance dev` (everything for a newcomer)."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cli.common import add_config_option, config_from_args
from appliance.config import AppConfig, ServerSettings

if TYPE_CHECKING:
    import uvicorn

    from appliance.daemon.connections import ConnectionGuard

log = logging.getLogger("appliance.serve")

# In-flight registrations get this long to finish after SIGTERM (systemd's TimeoutStopSec is longer).
GRACEFUL_SHUTDOWN_SECONDS = 60
# uvicorn's exit status for a failed start (lifespan or bind).
STARTUP_FAILURE = 3


def register(commands: argparse._SubParsersAction[Any]) -> None:
    serve = commands.add_parser("serve", help="run the registration service")
    add_config_option(serve)
    serve.set_defaults(handler=run_serve)

    from appliance.cli import dev

    dev.register(commands)


def run_serve(args: argparse.Namespace) -> int:
    return serve_forever(config_from_args(args))


def serve_forever(config: AppConfig, on_started: Callable[[], None] | None = None) -> int:
    """Run the service until SIGINT/SIGTERM; non-zero when it could not start.

    systemd hears READY=1 only once uvicorn has run the lifespan (token logged in, registry
    open, interrupted registrations reconciled) and bound its socket, and STOPPING=1 as soon as
    a stop signal arrives; uvicorn then stops accepting and lets in-flight requests finish.
    SIGHUP reloads the TLS certificate and key.
    """
    import uvicorn

    from appliance.app import create_app
    from appliance.daemon.connections import ConnectionGuard, guarded_protocol_class
    from appliance.daemon.notify import SystemdNotifier
    from appliance.errors import ApplianceError
    from appliance.hsm import KeyStore
    from appliance.logs import configure_logging

    configure_logging(config.logging.level, config.logging.format)
    settings = config.server
    try:
        ssl_context, max_connections = _prepare_listener(config)
    except ApplianceError as exc:
        print(f"zatca-appliance: error: the service cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        # Opened here, not in the lifespan, so that a wrong PIN or a missing token is one plain
        # line: from the lifespan it would reach the log as an exception group's traceback.
        key_store = KeyStore.open(config.hsm)
    except ApplianceError as exc:
        print(f"zatca-appliance: error: the service cannot start: {exc}", file=sys.stderr)
        return 1
    notifier = SystemdNotifier()
    guard = ConnectionGuard(
        request_timeout=settings.request_timeout_seconds,
        max_connections=max_connections,
        max_per_client=settings.max_connections_per_client,
    )
    uvicorn_config = uvicorn.Config(
        create_app(config, key_store),
        host=settings.host,
        port=settings.port,
        http=guarded_protocol_class(guard),
        # libuv's loop (a dependency): thread hand-offs and socket I/O cost less than with
        # asyncio's own (docs/benchmark.md, "Invoicing").
        loop="uvloop",
        timeout_keep_alive=int(max(settings.keep_alive_seconds, 1)),
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(uvicorn_config)
    original_handle_exit = server.handle_exit
    scheme = "https" if ssl_context is not None else "http"

    async def startup(sockets: Any = None) -> None:
        await _listen(server, uvicorn_config, config, ssl_context, guard)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, _reload_tls, config, ssl_context)
        notifier.notify("READY=1", f"STATUS=serving on {scheme}://{settings.host}:{settings.port}")
        if on_started is not None:
            on_started()

    def handle_exit(sig: int, frame: Any) -> None:
        notifier.notify("STOPPING=1", "STATUS=finishing in-flight registrations")
        original_handle_exit(sig, frame)
        # uvicorn re-raises captured signals after its graceful shutdown, which would end the
        # process *by* SIGTERM; a drained, orderly stop is an exit with status 0.
        if sig == signal.SIGTERM:
            server._captured_signals[:] = [s for s in server._captured_signals if s != signal.SIGTERM]

    server.startup = startup  # type: ignore[method-assign]
    server.handle_exit = handle_exit  # type: ignore[method-assign]
    server.run()
    if not server.started:
        print("zatca-appliance: error: the service did not start; see the log above", file=sys.stderr)
        return 1
    return 0


def _prepare_listener(config: AppConfig) -> tuple[ssl.SSLContext | None, int]:
    """Checks before the token is opened: plaintext policy, TLS files, state modes, file limit.

    Returns the TLS context (None: plain HTTP) and the connection cap that fits the open-file
    limit; ConfigError when the service must not start."""
    from appliance.daemon.files import RESERVED_FILE_DESCRIPTORS, make_private, raise_open_file_limit
    from appliance.daemon.tls import server_context
    from appliance.errors import ConfigError

    settings = config.server
    refusal = plaintext_refusal(settings)
    if refusal is not None:
        raise ConfigError(refusal)
    if settings.tls is None and not is_loopback(settings.host):
        log.warning(
            "serving plain HTTP on a non-loopback address (server.allow_plaintext): API keys, "
            "secrets and private keys cross the network unencrypted",
            extra={"host": settings.host},
        )
    ssl_context = server_context(settings.tls) if settings.tls is not None else None
    make_private(Path(config.storage.data_dir))
    file_limit = raise_open_file_limit()
    max_connections = min(settings.max_connections, max(file_limit - RESERVED_FILE_DESCRIPTORS, 1))
    if max_connections < settings.max_connections:
        log.warning(
            "server.max_connections lowered to fit the open-file limit (raise LimitNOFILE=)",
            extra={"max_connections": max_connections, "open_file_limit": file_limit},
        )
    return ssl_context, max_connections


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plaintext_refusal(settings: ServerSettings) -> str | None:
    """Why plain HTTP on `settings.host` is refused, or None when it is allowed."""
    if settings.tls is not None or settings.allow_plaintext or is_loopback(settings.host):
        return None
    return (
        f"server.host {settings.host!r} is not a loopback address and server.tls is not set: API keys, "
        "secrets and private keys would cross the network unencrypted. Configure server.tls "
        "(docs/tls.md), or set server.allow_plaintext: true to accept that."
    )


async def _listen(
    server: uvicorn.Server,
    uvicorn_config: uvicorn.Config,
    config: AppConfig,
    ssl_context: ssl.SSLContext | None,
    guard: ConnectionGuard,
) -> None:
    """uvicorn's startup, with what it does not offer: a TLS handshake deadline, the guarded
    connections, a bounded log of failed accepts and the loopback operations listener."""
    from appliance.daemon.connections import install_accept_error_filter

    await server.lifespan.startup()
    if server.lifespan.should_exit:
        sys.exit(STARTUP_FAILURE)
    loop = asyncio.get_running_loop()
    install_accept_error_filter(loop, guard.counter)

    def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
        return uvicorn_config.http_protocol_class(  # type: ignore[call-arg]
            config=uvicorn_config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
            _loop=_loop,
        )

    settings = config.server
    server.servers = []
    try:
        server.servers.append(
            await loop.create_server(
                create_protocol,
                host=settings.host,
                port=settings.port,
                ssl=ssl_context,
                # asyncio only hands a TLS connection to the protocol after the handshake, so the
                # request deadline starts then; this one bounds the handshake itself.
                ssl_handshake_timeout=settings.request_timeout_seconds if ssl_context else None,
                backlog=uvicorn_config.backlog,
            )
        )
        if settings.ops_port is not None:
            server.servers.append(
                await loop.create_server(
                    create_protocol, host="127.0.0.1", port=settings.ops_port, backlog=uvicorn_config.backlog
                )
            )
    except OSError as exc:
        log.error("cannot listen", extra={"error": str(exc)})  # noqa: TRY400 - no traceback needed
        await server.lifespan.shutdown()
        sys.exit(STARTUP_FAILURE)
    log.info(
        "listening",
        extra={
            "address": f"{settings.host}:{settings.port}",
            "tls": ssl_context is not None,
            "mutual_tls": settings.tls is not None and settings.tls.client_ca_file is not None,
            "ops_port": settings.ops_port,
            "max_connections": guard.max_connections,
        },
    )
    server.started = True


def _reload_tls(config: AppConfig, live: ssl.SSLContext | None) -> None:
    from appliance.daemon.tls import load_files, server_context
    from appliance.errors import ApplianceError

    tls = config.server.tls
    if tls is None or live is None:
        log.info("SIGHUP: nothing to reload (server.tls is not set)")
        return
    try:
        # A trial context first: a half-written or mismatched pair must not replace a working one.
        server_context(tls)
        load_files(live, tls)
    except ApplianceError as exc:
        log.error(  # noqa: TRY400 - the message says it all
            "SIGHUP: TLS files not reloaded; the previous certificate stays", extra={"error": str(exc)}
        )
        return
    log.info("SIGHUP: TLS certificate and key reloaded", extra={"certificate": tls.certificate_file})
