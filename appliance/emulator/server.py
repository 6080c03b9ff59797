"""Run the emulator under uvicorn on a loopback address."""

from __future__ import annotations

import socket
import sys

import uvicorn

from appliance.emulator.app import EmulatorRuntime, create_emulator_app
from appliance.emulator.settings import EmulatorSettings

# A `timeout` fault holds requests for minutes; shutdown must not wait for them.
GRACEFUL_SHUTDOWN_SECONDS = 1


class EmulatorServer(uvicorn.Server):
    """Releases requests held by a `timeout` fault as soon as shutdown starts."""

    def __init__(self, config: uvicorn.Config, runtime: EmulatorRuntime) -> None:
        super().__init__(config)
        self._runtime = runtime

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._runtime.release_held_requests()
        await super().shutdown(sockets)


def serve_emulator(settings: EmulatorSettings, host: str, port: int, log_level: str = "info") -> None:
    """Serve until SIGINT/SIGTERM. Returns after a shutdown bounded to about one second."""
    app = create_emulator_app(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        server_header=False,
    )
    print(
        f"ZATCA emulator: base URLs http://{host}:{port}/e-invoicing/{{developer-portal,simulation,core}}, "
        f"state in {settings.data_dir}",
        file=sys.stderr,
        flush=True,
    )
    EmulatorServer(config, app.state.emulator).run()
