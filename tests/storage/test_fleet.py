"""What the fleet shares through the store: wake-ups, the per-sender limit, pauses, leadership."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable

from storage import open_store
from storage.store import NewMessage, Store

RATE, BURST = 20.0, 5


def due_msg(key: str) -> NewMessage:
    return NewMessage(idem_key=key, sender="bird", to_number="+15550000001", payload={}, due_at=time.time())


def test_a_due_row_wakes_a_waiting_worker_within_milliseconds(open_stores: Callable[[], Store]) -> None:
    worker, web = open_stores(), open_stores()  # web: another process's store
    worker.listen()
    assert worker.wait_for_due(0.05) is False  # nothing written: times out
    woke: list[float] = []
    waiting = threading.Event()

    def wait() -> None:
        waiting.set()
        if worker.wait_for_due(5.0):
            woke.append(time.perf_counter())

    latencies = []
    for n in range(5):
        waiting.clear()
        t = threading.Thread(target=wait)
        t.start()
        waiting.wait()
        time.sleep(0.02)  # let the waiter block
        web.enqueue(due_msg(f"wake{n}"))
        committed = time.perf_counter()
        t.join(6)
        assert len(woke) == n + 1, "the worker was not woken"
        latencies.append(max(0.0, woke[-1] - committed))  # SQLite wakes before the commit returns
    print(f"\n{worker.dialect} wake-up latency ms: {[round(x * 1000, 2) for x in latencies]}")
    assert sorted(latencies)[len(latencies) // 2] < 0.1 and max(latencies) < 0.5


def _grants_per_window(grants: list[tuple[float, int]]) -> int:
    """The most sends granted in any one-second window (windows start at each grant)."""
    grants.sort()
    worst, j, inside = 0, 0, 0
    for i, (start, _) in enumerate(grants):
        while j < len(grants) and grants[j][0] < start + 1.0:
            inside += grants[j][1]
            j += 1
        worst = max(worst, inside)
        inside -= grants[i][1]
    return worst


def _take_until(store: Store, stop_at: float, out: list[tuple[float, int]]) -> None:
    while time.time() < stop_at:
        granted, at = store.take_send_slots_at("textus", 3, RATE, BURST)
        if granted:
            out.append((at, granted))
        else:
            time.sleep(0.005)


def _limiter_process(url: str, start_at: float, stop_at: float, queue: multiprocessing.Queue) -> None:
    store = open_store(url)
    time.sleep(max(0.0, start_at - time.time()))
    out: list[tuple[float, int]] = []
    _take_until(store, stop_at, out)
    store.close()
    queue.put(out)


def test_rate_limit_holds_across_threads_and_processes(store_url: str, open_stores: Callable[[], Store]) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    start_at = time.time() + 4.0  # spawned interpreters need a moment to import
    stop_at = start_at + 3.0
    procs = [ctx.Process(target=_limiter_process, args=(store_url, start_at, stop_at, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    grants: list[tuple[float, int]] = []
    per_thread: list[list[tuple[float, int]]] = [[] for _ in range(3)]
    stores = [open_stores() for _ in per_thread]
    time.sleep(max(0.0, start_at - time.time()))
    threads = [threading.Thread(target=_take_until, args=(s, stop_at, out))
               for s, out in zip(stores, per_thread, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for _ in procs:
        grants += queue.get(timeout=60)
    for p in procs:
        p.join(30)
    for out in per_thread:
        grants += out
    total = sum(g for _, g in grants)
    worst = _grants_per_window(grants)
    span = max(a for a, _ in grants) - min(a for a, _ in grants)
    print(f"\n{stores[0].dialect} limiter: {total} granted in {span:.2f}s (limit {RATE}/s + burst {BURST}),"
          f" worst 1-s window {worst}")
    assert worst <= RATE + BURST
    assert total >= 0.9 * (BURST + RATE * span)  # the limit is used, not just respected
    assert len({a for a, _ in grants}) > 10


def test_a_pause_seen_by_one_worker_pauses_all(open_stores: Callable[[], Store]) -> None:
    one, other = open_stores(), open_stores()
    assert other.take_send_slots("bird", 1, 100, 10) == 1
    until = one.clock() + 60
    one.pause_sender("bird", until)
    one.pause_sender("bird", until - 30)  # an earlier end never shortens a pause
    assert other.sender_paused_until("bird") == until
    assert other.take_send_slots("bird", 5, 100, 10) == 0
    assert other.take_send_slots("bird", 5, 100, 10, now=until + 1) == 5  # after it, sending resumes
    assert other.sender_paused_until("textus") is None


def test_one_leader_and_a_takeover_within_seconds(open_stores: Callable[[], Store]) -> None:
    a, b = open_stores(), open_stores()
    assert a.try_lead("reconcile", "a", ttl=1.0)
    assert not b.try_lead("reconcile", "b", ttl=1.0)
    assert a.try_lead("reconcile", "a", ttl=1.0)  # renewal
    assert b.try_lead("other-role", "b", ttl=1.0)  # roles are independent
    died = time.monotonic()  # `a` stops renewing: it died
    while not b.try_lead("reconcile", "b", ttl=1.0):
        assert time.monotonic() - died < 3.0, "no takeover"
        time.sleep(0.05)
    assert b.leader("reconcile") == "b" and not a.try_lead("reconcile", "a", ttl=1.0)
    b.resign("reconcile", "b")  # a graceful stop hands over at once
    assert a.try_lead("reconcile", "a", ttl=1.0)
