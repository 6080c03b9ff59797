"""The lock that keeps C_Finalize away from calls in flight (appliance.hsm.locks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from appliance.hsm.locks import SharedExclusiveLock


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def exclusive_waiters(lock: SharedExclusiveLock) -> int:
    return lock._exclusive_waiting


def test_reinitialisation_waits_for_calls_in_flight_and_goes_before_new_ones() -> None:
    lock = SharedExclusiveLock()
    order: list[str] = []
    release_first_call = threading.Event()

    def call_in_flight() -> None:
        with lock.shared():
            order.append("call 1 in")
            release_first_call.wait()
            order.append("call 1 out")

    def reinitialise() -> None:
        with lock.exclusive():
            order.append("reinitialise")

    def later_call() -> None:
        with lock.shared():
            order.append("call 2")

    first = threading.Thread(target=call_in_flight)
    first.start()
    wait_until(lambda: order == ["call 1 in"])
    writer = threading.Thread(target=reinitialise)
    writer.start()
    wait_until(lambda: exclusive_waiters(lock) == 1)
    second = threading.Thread(target=later_call)
    second.start()
    release_first_call.set()
    for thread in (first, writer, second):
        thread.join(timeout=10)
    assert order == ["call 1 in", "call 1 out", "reinitialise", "call 2"]


def test_shared_access_is_reentrant_while_a_reinitialisation_waits() -> None:
    lock = SharedExclusiveLock()
    inner_entered = threading.Event()
    go_inner = threading.Event()

    def nested_calls() -> None:
        with lock.shared():
            go_inner.wait()
            with lock.shared():
                inner_entered.set()

    caller = threading.Thread(target=nested_calls)
    caller.start()

    def reinitialise() -> None:
        with lock.exclusive():
            pass

    writer = threading.Thread(target=reinitialise)
    writer.start()
    wait_until(lambda: exclusive_waiters(lock) == 1)
    go_inner.set()
    assert inner_entered.wait(timeout=10), "nested shared access deadlocked behind the waiting writer"
    caller.join(timeout=10)
    writer.join(timeout=10)
    assert not writer.is_alive()


def test_exclusive_inside_shared_is_a_programming_error() -> None:
    lock = SharedExclusiveLock()
    with lock.shared(), pytest.raises(RuntimeError, match="holds shared access"), lock.exclusive():
        pass
