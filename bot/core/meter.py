"""What the engines tell the metrics, without knowing Prometheus.

`MetricsSink` is the part of `bot.core.metrics.Metrics` the engines call; the composition
root hands them the real one (bot/app/runtime.py). `DispatchMeter` is the dispatcher's one
hook: silent until given a sink, and a few microseconds a message when it has one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from providers.base import OutboundMessage, Provider, SendResult
from storage.store import MessageRow


class MetricsSink(Protocol):
    def sent(self, sender: str, status: str, count: int = 1) -> None: ...

    def observe_provider_call(self, sender: str, seconds: float) -> None: ...

    def schedule_lateness(self, sender: str, seconds: float) -> None: ...

    def rate_limited(self, sender: str) -> None: ...

    def paused(self, sender: str) -> None: ...

    def bulk_job(self, state: str) -> None: ...


class DispatchMeter:
    """Provider call latency, schedule lateness and missed rows, as the dispatcher sees them.

    Final statuses arrive through the dispatcher's `on_final` hook and 429s / pauses through
    the limiters (`Limiters.on_pause`), so the dispatcher itself calls only `send` and `missed`.
    """

    def __init__(self, sink: MetricsSink | None = None) -> None:
        self.sink = sink

    def send(self, provider: Provider, msg: OutboundMessage, row: MessageRow) -> SendResult:
        """`provider.send(msg)`, timed whether it answers or raises."""
        started = time.perf_counter()
        try:
            return provider.send(msg)
        finally:
            sink = self.sink
            if sink is not None:
                seconds = time.perf_counter() - started
                sink.observe_provider_call(row.sender, seconds)
                # Scheduled single sends only: bulk rows wait for their sender's rate by design.
                if row.scheduled and row.bulk_job_id is None:
                    sink.schedule_lateness(row.sender, time.time() - seconds - row.due_at)

    def missed(self, rows: Iterable[MessageRow]) -> None:
        """Rows found past their misfire grace: a final status of their own."""
        if self.sink is not None:
            for row in rows:
                self.sink.sent(row.sender, "missed")

    def final(self, row: MessageRow) -> None:
        """A row that reached a final status (the dispatcher's `on_final` callback)."""
        if self.sink is not None:
            self.sink.sent(row.sender, row.status)

    def paused(self, sender: str, new: bool) -> None:
        """A 429 paused `sender` (`new`: it was not paused already)."""
        if self.sink is not None:
            self.sink.rate_limited(sender)
            if new:
                self.sink.paused(sender)
