"""The consent check's cost per message in bulk, with many opt-outs stored; prints figures.

A bulk job of N recipients (1% of them opted out) goes through the real pipeline: draft
(its list checked against every opt-out of the family) -> confirm -> Dispatcher (claims,
the claim-time check in the same transaction, calls) -> a sandbox sender that answers at
once (so the pipeline is as fast as it gets, and the check's share as large as it gets).

Figures:
1. draft: time to build the draft with 0 and with M opt-outs stored (the exclusion's cost);
2. claim-time check: the time spent in `stop_opted_out` (wrapped) over the whole dispatch,
   per message and as a share of the pipeline's time per message (target: under 5%);
3. the same job with the check disabled, for the end-to-end difference (noisier).

Usage: python bench/consent.py [--optouts 100000] [--recipients 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import storage.store as store_module  # noqa: E402
from bot.core.bulk.engine import BulkEngine  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from bot.core.consent.book import ConsentBook  # noqa: E402
from bot.core.dispatch import Dispatcher  # noqa: E402
from bot.core.input.recipients import parse_pasted  # noqa: E402
from bot.core.senders import Senders  # noqa: E402
from providers.sandbox import SandboxProvider  # noqa: E402
from storage.consent import stop_opted_out  # noqa: E402
from storage.store import Store  # noqa: E402


def number(i: int) -> str:
    return f"+1617{2000000 + i:07d}"


def fill_optouts(store: Store, count: int, start: int) -> None:
    """`count` opt-outs (SMS) of numbers from `start` on, written directly (fast)."""
    now = time.time()
    with store.write() as conn:
        conn.executemany(
            "INSERT INTO consent_state (number, family, opted_out, by_recipient, source, changed_at)"
            " VALUES (?, 'sms', 1, 1, 'keyword_STOP', ?)",
            [(number(start + i), now) for i in range(count)],
        )


class Timed:
    """Wraps the claim-time check, adding up the time spent in it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def run_job(root: Path, name: str, optouts: int, recipients: int) -> dict[str, float]:
    store = Store(str(root / f"{name}.db"))
    # Opt-outs: numbers far from the list, plus 1% of the list itself.
    fill_optouts(store, optouts, 10_000_000)
    stopped = max(1, recipients // 100)
    fill_optouts(store, stopped, 0) if optouts else None
    sandbox = SandboxProvider()
    senders = Senders({"sandbox": sandbox}, "sandbox")
    dispatcher = Dispatcher(store, senders, None, concurrency=16, rates={"sandbox": 0.0}, poll_interval=0.05)
    engine = BulkEngine(store, senders, dispatcher=dispatcher,
                        consent=ConsentBook(store, Settings(_env_file=None)))  # type: ignore[call-arg]
    pasted = "\n".join(number(i) for i in range(recipients))
    t0 = time.perf_counter()
    plan = engine.draft(parse_pasted(pasted), "Hello", "sandbox", allow_duplicates=False, when=None,
                        idem_key=f"bench-{name}")
    draft_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    engine.confirm(plan.job_id, post=False)
    dispatcher.start()
    while True:
        counts = store.counts_by_status(plan.job_id)
        if not any(counts.get(s) for s in ("pending", "claimed", "sending")):
            break
        time.sleep(0.02)
    pipeline_s = time.perf_counter() - t1
    dispatcher.stop(timeout=5)
    store.close()
    return {"draft_s": draft_s, "pipeline_s": pipeline_s, "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0), "excluded": plan.opted_out, "rows": plan.valid}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--optouts", type=int, default=100_000)
    parser.add_argument("--recipients", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = run_job(root, "none", 0, args.recipients)
        timed = Timed(stop_opted_out)
        store_module.stop_opted_out = timed  # the claim's check, timed
        full = run_job(root, "full", args.optouts, args.recipients)
        store_module.stop_opted_out = lambda conn, rows, now: (list(rows), {})  # the check off
        off = run_job(root, "off", args.optouts, args.recipients)
        store_module.stop_opted_out = stop_opted_out
    n = full["rows"]
    per_msg = full["pipeline_s"] / n * 1e6
    check = timed.seconds / n * 1e6
    print(f"opt-outs stored: {args.optouts:,} (+{args.recipients // 100:,} on the list); recipients: {args.recipients:,}")
    print(f"draft: {base['draft_s']:.2f} s with no opt-outs, {full['draft_s']:.2f} s with them "
          f"({full['excluded']:,} excluded at the draft)")
    print(f"pipeline with the check: {full['pipeline_s']:.2f} s for {n:,} rows = {per_msg:.0f} µs/message "
          f"({full['sent']:,} sent)")
    print(f"claim-time check: {timed.seconds * 1000:.0f} ms in {timed.calls:,} claims = {check:.1f} µs/message "
          f"= {100 * check / per_msg:.2f}% of the pipeline's time per message (target < 5%)")
    print(f"same job, check off: {off['pipeline_s']:.2f} s ({off['pipeline_s'] / off['rows'] * 1e6:.0f} µs/message)")


if __name__ == "__main__":
    main()
