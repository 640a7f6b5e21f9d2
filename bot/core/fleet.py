"""Leader election: the work that must run once per fleet runs in the process holding a lease.

Reconciliation, the redraw of status lines left dirty and the bulk progress tracker run
only where `Leadership.leads()` is true. The lease is a row in the store (`try_lead`), renewed
by this object's thread every ttl/5; when the leader dies, another process takes it within
about `ttl` (plus one renewal step). A process alone on its store always leads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from storage.store import Store

log = logging.getLogger("smsbot.fleet")

ROLE = "reconciler"
LEASE_TTL = 15.0


class Leadership:
    """Whether this process runs the fleet's once-only work now."""

    def __init__(self, store: Store, *, role: str = ROLE, ttl: float = LEASE_TTL, owner: str | None = None) -> None:
        self.store = store
        self.role = role
        self.ttl = ttl
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held_until = 0.0  # monotonic; trusted a little less long than the lease runs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: called (on the renewing thread) when this process becomes the leader
        self.on_gain: list[Callable[[], object]] = []

    def leads(self) -> bool:
        return time.monotonic() < self._held_until

    def renew(self) -> bool:
        """Take or renew the lease now; True while this process leads."""
        was = self.leads()
        started = time.monotonic()
        try:
            held = self.store.try_lead(self.role, self.owner, self.ttl)
        except Exception as exc:  # the store is unreachable: lead nothing until it answers
            log.warning("renewing the %s lease failed: %s", self.role, type(exc).__name__)
            held = False
        self._held_until = started + self.ttl * 0.8 if held else 0.0
        if held and not was:
            log.info("this process now leads (%s)", self.role)
            for callback in self.on_gain:
                try:
                    callback()
                except Exception:
                    log.exception("starting the leader's work failed")
        elif was and not held:
            log.warning("this process lost the %s lease", self.role)
        return held

    def start(self) -> None:
        if self._thread is None:
            self.renew()
            self._thread = threading.Thread(target=self._loop, name="smsbot-leader", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.ttl / 5):
            self.renew()

    def stop(self) -> None:
        """Stop renewing and give the lease up, so another process takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.leads():
            self._held_until = 0.0
            try:
                self.store.resign(self.role, self.owner)
            except Exception:
                log.warning("giving up the %s lease failed", self.role)
