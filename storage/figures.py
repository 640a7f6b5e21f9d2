"""Counts read at scrape time for /metrics (bot/core/metrics.py), beyond the Store's own."""

from __future__ import annotations

from storage.store import Store


class Figures:
    """Small aggregate reads; each is one indexed GROUP BY."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def bulk_jobs_by_status(self) -> dict[str, int]:
        rows = self.store.conn.execute("SELECT status, count(*) FROM bulk_jobs GROUP BY status")
        return {r[0]: r[1] for r in rows}
