"""Latency summaries: every figure in the report is one of these, in milliseconds."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Summary:
    """Order statistics of a list of durations, in milliseconds (nearest-rank percentiles)."""

    count: int
    median_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        if not seconds:
            raise ValueError("no samples to summarise")
        ordered = sorted(value * 1000.0 for value in seconds)
        return cls(
            count=len(ordered),
            median_ms=statistics.median(ordered),
            p95_ms=_nearest_rank(ordered, 0.95),
            p99_ms=_nearest_rank(ordered, 0.99),
            mean_ms=statistics.fmean(ordered),
            min_ms=ordered[0],
            max_ms=ordered[-1],
        )

    def per_second(self) -> float:
        """Operations per second one caller achieves at the median latency."""
        return 1000.0 / self.median_ms if self.median_ms > 0 else math.inf


def _nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def time_each(count: int, operation: Callable[[int], object]) -> list[float]:
    """Run `operation(i)` for i in range(count); the duration of each call, in seconds."""
    durations: list[float] = []
    for index in range(count):
        started = time.perf_counter()
        operation(index)
        durations.append(time.perf_counter() - started)
    return durations


def timed(operation: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = operation()
    return result, time.perf_counter() - started
