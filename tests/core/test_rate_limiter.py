"""The per-sender rate limiter: spacing, 429 pauses seen by waiting calls, single sends first."""

from __future__ import annotations

import threading
import time

from bot.core.dispatch import RateLimiter


def run_all(limiter: RateLimiter, priorities: list[int], started: list[float]) -> list[tuple[int, float]]:
    done: list[tuple[int, float]] = []
    lock = threading.Lock()

    def go(i: int, priority: int) -> None:
        assert limiter.acquire(priority=priority)
        with lock:
            done.append((i, time.monotonic()))

    threads = [threading.Thread(target=go, args=(i, p)) for i, p in enumerate(priorities)]
    started.append(time.monotonic())
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return done


def test_calls_are_spaced_by_the_rate() -> None:
    limiter = RateLimiter(20.0)
    started: list[float] = []
    done = run_all(limiter, [1] * 6, started)
    times = sorted(t for _, t in done)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(done) == 6
    assert min(gaps) >= 0.045  # 1/20 s apart, never bunched


def test_a_pause_that_starts_while_calls_wait_holds_them_all() -> None:
    limiter = RateLimiter(10.0)
    limiter.acquire()
    results: list[float] = []

    def waiter() -> None:
        limiter.acquire(priority=1)
        results.append(time.monotonic())

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.02)
    paused_at = time.monotonic()
    limiter.pause(0.5)  # a 429 arrives while they wait for their slots
    for t in threads:
        t.join(5)
    assert len(results) == 3
    assert min(results) - paused_at >= 0.45


def test_a_single_send_overtakes_waiting_bulk_rows() -> None:
    limiter = RateLimiter(5.0)
    limiter.acquire()
    order: list[str] = []
    lock = threading.Lock()

    def go(name: str, priority: int) -> None:
        limiter.acquire(priority=priority)
        with lock:
            order.append(name)

    bulk = [threading.Thread(target=go, args=(f"bulk{i}", 1)) for i in range(4)]
    for t in bulk:
        t.start()
    time.sleep(0.05)
    single = threading.Thread(target=go, args=("single", 0))
    single.start()
    for t in [*bulk, single]:
        t.join(5)
    assert order[0] == "single"


def test_a_refunded_slot_is_reused_at_once() -> None:
    limiter = RateLimiter(0.1)  # one call per 10 s
    limiter.acquire()
    limiter.refund()  # that call never happened
    start = time.monotonic()
    limiter.acquire()
    assert time.monotonic() - start < 5  # not the 10 s a used slot would cost


def test_stop_ends_the_wait() -> None:
    limiter = RateLimiter(1.0)
    limiter.pause(30)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert limiter.acquire(stop) is False


def test_a_long_pause_sends_bulk_rows_back_instead_of_holding_a_thread() -> None:
    limiter = RateLimiter(10.0)
    limiter.pause(30)
    assert limiter.acquire(priority=1, max_pause_wait=2.0) is False
    limiter2 = RateLimiter(10.0)
    limiter2.pause(0.2)  # a short pause is simply waited out
    assert limiter2.acquire(priority=1, max_pause_wait=2.0) is True
