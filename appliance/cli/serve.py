"""`zatca-appliance serve` (the service) and `zatca-appliance dev` (everything for a newcomer)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from typing import Any

from appliance.cli.common import add_config_option, config_from_args
from appliance.config import AppConfig

# In-flight registrations get this long to finish after SIGTERM (systemd's TimeoutStopSec is longer).
GRACEFUL_SHUTDOWN_SECONDS = 60


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
    """
    import uvicorn

    from appliance.app import create_app
    from appliance.daemon.notify import SystemdNotifier
    from appliance.errors import ApplianceError
    from appliance.hsm import KeyStore
    from appliance.logs import configure_logging

    configure_logging(config.logging.level, config.logging.format)
    try:
        # Opened here, not in the lifespan, so that a wrong PIN or a missing token is one plain
        # line: from the lifespan it would reach the log as an exception group's traceback.
        key_store = KeyStore.open(config.hsm)
    except ApplianceError as exc:
        print(f"zatca-appliance: error: the service cannot start: {exc}", file=sys.stderr)
        return 1
    notifier = SystemdNotifier()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, key_store),
            host=config.server.host,
            port=config.server.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )
    original_startup = server.startup
    original_handle_exit = server.handle_exit

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets=sockets)
        if server.started:
            notifier.notify("READY=1", f"STATUS=serving on {config.server.host}:{config.server.port}")
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
