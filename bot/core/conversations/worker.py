"""One background thread working through ids in order (customer messages to show in Slack)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger("smsbot.conversations")


class IdWorker:
    """Calls `work(id)` for each queued id on one thread; an id queued twice is worked once."""

    def __init__(self, work: Callable[[int], None], name: str = "smsbot-conversations",
                 poll: Callable[[], list[int]] | None = None, poll_every: float = 1.0) -> None:
        self.work = work
        # Ids stored by another process (`smsbot simulate inbound`, a web process that died
        # before showing them) are found by polling the store while idle.
        self.poll = poll
        self.poll_every = poll_every
        self.name = name
        self._queue: deque[int] = deque()
        self._queued: set[int] = set()
        self._cond = threading.Condition()
        self._busy = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def put(self, item: int) -> None:
        with self._cond:
            if item not in self._queued:
                self._queued.add(item)
                self._queue.append(item)
                self._cond.notify()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle() or self._thread is None:
                return self.idle()
            time.sleep(0.01)
        return self.idle()

    def stop(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next(self) -> int | None:
        with self._cond:
            while not self._queue:
                self._busy = False
                if self._stop.is_set():
                    return None
                if not self._cond.wait(self.poll_every) and self.poll is not None:
                    self._poll()
            self._busy = True
            item = self._queue.popleft()
            self._queued.discard(item)
            return item

    def _poll(self) -> None:
        try:
            found = self.poll() if self.poll is not None else []
        except Exception as exc:  # the store is briefly unreachable: try again next time
            log.warning("looking for messages to show failed: %s", type(exc).__name__)
            return
        for item in found:
            if item not in self._queued:
                self._queued.add(item)
                self._queue.append(item)

    def _loop(self) -> None:
        while (item := self._next()) is not None:
            try:
                self.work(item)
            except Exception:
                log.exception("showing inbound message %s failed", item)
            finally:
                with self._cond:
                    self._busy = bool(self._queue)
