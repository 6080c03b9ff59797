"""Where the CPU went during a phase: the service, the emulator, this process, everyone else."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.machine import machine_busy_seconds, process_cpu_seconds


@dataclass(frozen=True, slots=True)
class CpuShare:
    """CPU seconds used during one phase; `others` is the machine's busy time nobody here used."""

    wall_seconds: float
    service: float
    emulator: float
    client: float
    others: float

    @property
    def busy_cores(self) -> float:
        """Cores kept busy on average (ours and others'); 2.0 is all of a 2-core machine."""
        return (self.service + self.emulator + self.client + self.others) / self.wall_seconds

    def per_operation_ms(self, operations: int) -> dict[str, float]:
        if operations == 0:
            return {}
        return {
            "service": 1000 * self.service / operations,
            "emulator": 1000 * self.emulator / operations,
            "client": 1000 * self.client / operations,
            "others": 1000 * self.others / operations,
        }


class CpuMeter:
    """Reads CPU counters at `start()` and `stop()`."""

    def __init__(self, service_pid: int, emulator_pid: int) -> None:
        self._pids = (service_pid, emulator_pid)
        self._started: tuple[float, float, float, float, float] | None = None

    def _read(self) -> tuple[float, float, float, float, float]:
        service, emulator = (process_cpu_seconds(pid) for pid in self._pids)
        return time.perf_counter(), service, emulator, time.process_time(), machine_busy_seconds()

    def start(self) -> None:
        self._started = self._read()

    def stop(self) -> CpuShare:
        if self._started is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        wall0, service0, emulator0, client0, busy0 = self._started
        wall1, service1, emulator1, client1, busy1 = self._read()
        service, emulator, client = service1 - service0, emulator1 - emulator0, client1 - client0
        return CpuShare(
            wall_seconds=wall1 - wall0,
            service=service,
            emulator=emulator,
            client=client,
            others=max(0.0, (busy1 - busy0) - service - emulator - client),
        )
