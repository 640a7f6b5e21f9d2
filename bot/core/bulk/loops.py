"""The bulk engine's background threads share this loop: tick, then sleep until woken."""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("smsbot.bulk")


class Stoppable(Protocol):
    def stopping(self) -> bool: ...


class Loop:
    """A daemon thread that runs `tick` until its owner stops; `wake` runs it early."""

    name = "smsbot-bulk"

    def __init__(self, owner: Stoppable) -> None:
        self._owner = owner
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._passes = 0  # finished ticks: `wait_idle` synchronises on them
        self._passed = threading.Condition()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait for a whole tick that began after this call (tests: "it looked, sent nothing")."""
        deadline = time.monotonic() + timeout
        with self._passed:
            target = self._passes + 2  # the tick under way may have begun before the call
            while self._passes < target:
                self._wake.set()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._passed.wait(min(0.05, left))
        return True

    def _run(self) -> None:
        while not self._owner.stopping():
            try:
                delay = self.tick()
            except Exception:
                log.exception("%s pass failed", self.name)
                delay = 1.0
            with self._passed:
                self._passes += 1
                self._passed.notify_all()
            self._wake.wait(delay)
            self._wake.clear()

    def tick(self) -> float:
        raise NotImplementedError
