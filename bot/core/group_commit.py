"""Group commit of send outcomes: the calls that finish together share one transaction.

Each sender thread hands its outcome in and waits until it is committed (so what it
reports is stored). The first thread to reach the commit lock writes every outcome queued
so far; the others find theirs already written. No thread of its own: nothing to stop.
A crash before the commit leaves the row `sending`, which the reaper makes unknown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from storage.store import MessageRow, Store


@dataclass
class _Item:
    outcome: dict[str, Any]
    done: bool = False
    row: MessageRow | None = None
    error: BaseException | None = None


class OutcomeWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[_Item] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self.commits = 0  # transactions written (a benchmark's figure)

    def record(self, message_id: int, status: str, **fields: Any) -> MessageRow | None:
        """Commit this row's outcome (with whatever else is queued); the row as stored."""
        item = _Item({"message_id": message_id, "status": status, **fields})
        with self._queue_lock:
            self._queue.append(item)
        with self._commit_lock:
            if not item.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._write(batch)
        if item.error is not None:
            raise item.error
        return item.row

    def _write(self, batch: list[_Item]) -> None:
        try:
            rows = self.store.record_outcomes([i.outcome for i in batch])
            self.commits += 1
        except BaseException as exc:  # every waiter learns the commit failed (rows stay `sending`)
            for item in batch:
                item.error, item.done = exc, True
            return
        for item, row in zip(batch, rows, strict=True):
            item.row, item.done = row, True
