"""A shared/exclusive lock: many threads use the module, one re-initialises it.

C_Finalize frees the module's state; a thread still inside C_Sign at that moment would use
freed memory. Every PKCS#11 call therefore runs under the shared side, and re-initialisation
takes the exclusive side, which waits for the calls in flight and holds new ones back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class SharedExclusiveLock:
    """Writer-preferring readers/writer lock; the shared side is re-entrant per thread."""

    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._active_shared = 0
        self._exclusive_held = False
        self._exclusive_waiting = 0
        self._depth = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        depth: int = getattr(self._depth, "value", 0)
        if depth == 0:
            with self._condition:
                # A waiting re-initialisation goes first, so a steady stream of calls cannot
                # starve the recovery of a vanished token.
                while self._exclusive_held or self._exclusive_waiting:
                    self._condition.wait()
                self._active_shared += 1
        self._depth.value = depth + 1
        try:
            yield
        finally:
            self._depth.value = depth
            if depth == 0:
                with self._condition:
                    self._active_shared -= 1
                    if self._active_shared == 0:
                        self._condition.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        if getattr(self._depth, "value", 0):
            raise RuntimeError("exclusive PKCS#11 access requested while this thread holds shared access")
        with self._condition:
            self._exclusive_waiting += 1
            try:
                while self._exclusive_held or self._active_shared:
                    self._condition.wait()
            finally:
                self._exclusive_waiting -= 1
            self._exclusive_held = True
        try:
            yield
        finally:
            with self._condition:
                self._exclusive_held = False
                self._condition.notify_all()
