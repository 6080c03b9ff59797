"""What the figures were measured on, and how busy the machine was meanwhile."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Machine:
    cpu_model: str
    cores: int
    memory_gib: float
    os: str
    kernel: str
    python: str
    softhsm: str
    python_pkcs11: str
    cryptography: str
    load_average_at_start: tuple[float, float, float]

    def one_line(self) -> str:
        return (
            f"{self.cpu_model}, {self.cores} cores, {self.memory_gib:.1f} GiB RAM; {self.os} "
            f"(kernel {self.kernel}); Python {self.python}; SoftHSM {self.softhsm}; "
            f"python-pkcs11 {self.python_pkcs11}; cryptography {self.cryptography}"
        )


def describe_machine() -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=_memory_kib() / 1024 / 1024,
        os=_os_name(),
        kernel=platform.release(),
        python=platform.python_version(),
        softhsm=_softhsm_version(),
        python_pkcs11=_package_version("python-pkcs11"),
        cryptography=_package_version("cryptography"),
        load_average_at_start=os.getloadavg(),
    )


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_kib() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def _os_name() -> str:
    for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


def softhsm2_util() -> str:
    path = shutil.which("softhsm2-util")
    if path is None:
        raise RuntimeError("softhsm2-util not found: apt-get install softhsm2")
    return path


def _softhsm_version() -> str:
    result = subprocess.run(  # noqa: S603 - softhsm2-util with a fixed argument, no shell
        [softhsm2_util(), "--version"], capture_output=True, text=True, check=False, timeout=10
    )
    return result.stdout.strip() or result.stderr.strip()


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc/<pid>/stat)."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    # The command name may contain spaces; the fields after its closing parenthesis do not.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time all cores spent busy since boot (user, nice, system, irq, softirq, steal)."""
    first = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in first[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS
