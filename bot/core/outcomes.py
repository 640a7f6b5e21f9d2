"""One outcome policy for every provider call: exception -> row state, retry or not, backoff.

The dispatcher (one message) and the Sociocs batch runner (up to 1,000 rows) both ask
`outcome_of`; delivery's reconciler and outbox may reuse `backoff`. At-most-once: what
may have reached the provider without an answer is `unknown`, never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from providers.base import NotSent, ProviderError, RateLimited, UnknownOutcome

RATE_LIMIT_WAIT = 5.0  # a 429 without Retry-After
BACKOFF_CAP = 300.0


def backoff(attempt: int) -> float:
    """1 s, 2 s, 4 s... doubling per attempt, never over five minutes."""
    return float(min(BACKOFF_CAP, 2 ** max(0, attempt)))


class Scrubber(Protocol):
    def scrub(self, text: str) -> str: ...


@dataclass(frozen=True)
class Outcome:
    """What to record: a final state, or a retry after `wait` seconds."""

    state: Literal["failed", "unknown", "retry"]
    error: str
    kind: str
    wait: float = 0.0
    pause: float | None = None  # the sender's limiter pauses this long (a 429)


def outcome_of(exc: Exception, provider: Scrubber, attempt: int, max_attempts: int) -> Outcome:
    """The outcome of a provider call that raised `exc` on attempt number `attempt`."""
    if isinstance(exc, RateLimited):
        wait = exc.retry_after if exc.retry_after is not None else RATE_LIMIT_WAIT
        return _retry(provider.scrub(exc.message), exc.kind, wait, attempt, max_attempts, pause=wait)
    if isinstance(exc, NotSent):
        return _retry(provider.scrub(exc.message), exc.kind, backoff(attempt), attempt, max_attempts)
    if isinstance(exc, UnknownOutcome):
        return Outcome("unknown", provider.scrub(exc.message), exc.kind)
    if isinstance(exc, ProviderError):
        return Outcome("failed", provider.scrub(exc.message), exc.kind)
    # We cannot tell whether the request left: unknown, never a blind retry.
    return Outcome("unknown", f"Unexpected error ({type(exc).__name__}).", "unknown")


def _retry(error: str, kind: str, wait: float, attempt: int, max_attempts: int,
           pause: float | None = None) -> Outcome:
    if attempt >= max_attempts:
        return Outcome("failed", f"{error} Gave up after {attempt} attempts.", kind, pause=pause)
    return Outcome("retry", error, kind, wait=wait, pause=pause)
