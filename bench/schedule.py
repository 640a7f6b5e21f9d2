"""Scheduling figures: how late scheduled sends go out, and how fast due rows are found.

1. Lateness: 10,000 schedules due within one minute, sent by the real Store + Dispatcher
   (a no-op provider that records when it was called, notifier=None, no rate limit: this
   measures the scheduler, not a provider's rate). Lateness = provider call - due_at.
2. Finding due rows with 1,000,000 pending rows (spread over a year) in the store:
   next_due_at, claim_due with nothing due, claim_due of 16 due rows, and the `/sms list`
   page queries, each over repeated runs.

Targets: p99 lateness < 1 s; finding due rows < 5 ms at 1,000,000 rows.
Usage: python bench/schedule.py [--quick] [--schedules N] [--window S] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.dispatch import Dispatcher  # noqa: E402
from bot.core.senders import Senders  # noqa: E402
from providers.base import OutboundMessage, SendResult  # noqa: E402
from providers.sandbox import SandboxProvider  # noqa: E402
from storage.store import NewMessage, Store  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


class NoopProvider(SandboxProvider):
    """Takes every message at once and notes when it was called.

    It stands in for the sandbox sender: Senders only knows the documented sender names,
    and an unknown name would get the dispatcher's default 10/s rate limiter.
    """

    label = "No-op"

    def __init__(self) -> None:
        super().__init__()
        self.called: dict[int, float] = {}
        self.done = threading.Event()
        self.expected = 0

    def send(self, msg: OutboundMessage) -> SendResult:
        at = time.time()
        mid = int((msg.reference or "smsbot-0").rsplit("-", 1)[1])
        with self._lock:
            self.called[mid] = at
            if len(self.called) >= self.expected:
                self.done.set()
        return SendResult(provider_message_id=f"noop-{mid}")


def bench_lateness(path: str, count: int, window: float, lead: float) -> None:
    store = Store(path)
    provider = NoopProvider()
    provider.expected = count
    senders = Senders({"sandbox": provider}, "sandbox")
    start = time.time() + lead
    rng = random.Random(7)
    dues = {}
    msgs = []
    for i in range(count):
        due = start + rng.uniform(0, window)
        msgs.append(NewMessage(idem_key=f"late{i}", sender="sandbox", to_number="+16175551212",
                               payload={"to": "+16175551212", "text": f"m{i}"}, summary=f"m{i}",
                               scheduled=True, due_at=due, needs_announce=False))
    for (mid, _), msg in zip(store.enqueue_many(msgs), msgs, strict=True):
        dues[mid] = msg.due_at
    dispatcher = Dispatcher(store, senders, None, rates={"sandbox": 0.0}, poll_interval=0.5)
    dispatcher.start()
    print(f"lateness: {count:,} schedules due within {window:.0f} s (starting in {lead:.0f} s) ...", flush=True)
    provider.done.wait(lead + window + 60)
    dispatcher.stop()
    late = [provider.called[mid] - due for mid, due in dues.items() if mid in provider.called]
    early = sum(1 for x in late if x < 0)
    print(f"  sent {len(late):,}/{count:,}; sent early: {early}")
    if late:
        print(f"  lateness p50 {percentile(late, 50) * 1000:.1f} ms, p99 {percentile(late, 99) * 1000:.1f} ms, "
              f"max {max(late) * 1000:.1f} ms  (target p99 < 1000 ms)")


def build_big(path: str, rows: int) -> Store:
    """`rows` pending schedules over the next year, written with executemany in one transaction."""
    store = Store(path)
    now = time.time()
    rng = random.Random(11)
    payload = json.dumps({"to": "+16175551212", "text": "Reminder: your appointment is tomorrow"})
    users = [f"U{i:03d}" for i in range(200)]

    def gen():  # type: ignore[no-untyped-def]
        for i in range(rows):
            due = now + 120 + rng.uniform(0, 365 * 86400)
            yield (f"big{i}", "sandbox", "+16175551212", payload, "Reminder: your appointment is tomorrow",
                   "pending", 1, 0, due, now, now, users[i % len(users)], "America/New_York", "C1")

    t0 = time.perf_counter()
    with store.write() as conn:
        conn.executemany(
            "INSERT INTO messages (idem_key, sender, to_number, payload, summary, status, scheduled, priority,"
            " due_at, created_at, updated_at, created_by, user_tz, channel_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            gen(),
        )
    store.conn.execute("ANALYZE")
    print(f"  built {rows:,} pending rows in {time.perf_counter() - t0:.1f} s", flush=True)
    return store


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def show(name: str, ms: list[float], target: float | None = None) -> None:
    goal = f"  (target < {target:g} ms)" if target else ""
    print(f"  {name:<44} p50 {percentile(ms, 50):8.3f} ms  p99 {percentile(ms, 99):8.3f} ms{goal}")


# Proposed for storage/schema.py (migration 4): `/sms list` pages by owner and by time
# without sorting every pending row.


# The same SELECT store.claim_due runs to find due rows (copied to time it without the writes).
FIND_SQL = (
    "SELECT * FROM (SELECT * FROM messages WHERE status = 'pending' AND priority = 0 AND due_at <= ?"
    " ORDER BY due_at LIMIT ?) UNION ALL SELECT * FROM (SELECT * FROM messages WHERE status = 'pending'"
    " AND priority = 1 AND due_at <= ? ORDER BY due_at LIMIT ?)"
)


def bench_find_due(path: str, rows: int, runs: int) -> None:
    print(f"finding due rows among {rows:,} pending ...", flush=True)
    store = build_big(path, rows)
    show("next_due_at()", timed(store.next_due_at, runs), 5)
    # The worker's every pass: nothing due yet (misfire check included, as the dispatcher calls it).
    show("claim_due(limit=16), nothing due", timed(
        lambda: store.claim_due("bench", limit=16, misfire_grace=900.0), runs), 5)
    # Some rows fall due: each run claims 16 of them.
    now = time.time()
    due_rows = [NewMessage(idem_key=f"due{i}", sender="sandbox", to_number="+16175551212",
                           payload={"to": "+16175551212", "text": "due"}, summary="due", scheduled=True,
                           due_at=now - 1 - i * 0.001, needs_announce=False) for i in range(16 * runs)]
    store.enqueue_many(due_rows)
    claimed: list[int] = []

    def claim() -> None:
        got, _ = store.claim_due("bench", limit=16, misfire_grace=900.0)
        claimed.append(len(got))

    # The claim's SELECT alone (finding), then the whole claim (finding + 16 UPDATEs + COMMIT).
    t = time.time()
    show("find 16 due (claim_due's SELECT alone)", timed(lambda: store.conn.execute(FIND_SQL, (t, 16, t, 16)).fetchall(),
                                                          runs), 5)
    show("claim_due(limit=16), 16 due", timed(claim, runs), 5)
    assert all(n == 16 for n in claimed), claimed
    # `/sms list` runs these inside Slack's 3-second ack; a few runs are enough to see the scale.
    few = 5
    show("/sms list: count_pending(user)", timed(lambda: store.count_pending(created_by="U007"), few))
    show("/sms list: pending(user, 10)", timed(lambda: store.pending(created_by="U007", limit=10), few))
    show("/sms list --all: pending(None, 10)", timed(lambda: store.pending(limit=10), few))
    show("/sms list --all: count_pending()", timed(store.count_pending, few))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 schedules over 10 s and 100,000 rows")
    parser.add_argument("--schedules", type=int, default=None)
    parser.add_argument("--window", type=float, default=None, help="seconds the schedules are spread over")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--skip-lateness", action="store_true")
    parser.add_argument("--skip-find", action="store_true")
    args = parser.parse_args()
    count = args.schedules or (2000 if args.quick else 10_000)
    window = args.window or (10.0 if args.quick else 60.0)
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_lateness:
            bench_lateness(str(Path(tmp) / "late.db"), count, window, lead=5.0 if count > 2000 else 2.0)
        if not args.skip_find:
            bench_find_due(str(Path(tmp) / "big.db"), rows, args.runs)


if __name__ == "__main__":
    main()
