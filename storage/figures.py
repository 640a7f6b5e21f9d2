"""Counts read at scrape time for /metrics (bot/core/metrics.py), beyond the Store's own."""

from __future__ import annotations

from storage.store import Store, Viewer, visible_sql


class Figures:
    """Small aggregate reads; each is one indexed GROUP BY."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def bulk_jobs_by_status(self) -> dict[str, int]:
        rows = self.store.conn.execute("SELECT status, count(*) FROM bulk_jobs GROUP BY status")
        return {r[0]: r[1] for r in rows}

    def count_since(self, since: float, viewer: Viewer | None = None) -> int:
        """How many rows `Store.since(since, viewer)` yields (for a progress bar's total)."""
        cond, args = visible_sql(viewer) if viewer is not None else ("1 = 1", [])
        row = self.store.conn.execute(f"SELECT count(*) FROM messages WHERE created_at >= ? AND {cond}",
                                      (since, *args)).fetchone()
        return int(row[0])
