"""Quiet hours as the send paths use them: hold a row until the window opens, or ask first.

SMS_QUIET_HOURS is read in the recipient's local time (bot.core.consent.rules: zones from
the number; a number with several zones must be outside quiet hours in all of them).
Bulk rows and scheduled sends wait (their due time moves to the window's opening, never
earlier, never dropped); a person's own one-off send asks first; conversation replies and
the consent texts are never held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.core.consent.rules import QuietHours, check_quiet_hours, parse_quiet_hours


@dataclass(frozen=True)
class NightPrompt:
    """"It is 23:10 for this recipient: send now / send at 08:00"."""

    local_time: str  # "23:10" (the first of the number's zones)
    opens_at: float  # UTC timestamp the window opens
    opens_local: str  # "08:00" in the recipient's zone

    def words(self) -> str:
        return f"It is {self.local_time} for this recipient (quiet hours): send now, or send at {self.opens_local}?"


class QuietPolicy:
    def __init__(self, quiet: QuietHours | str | None) -> None:
        self.quiet = parse_quiet_hours(quiet) if isinstance(quiet, str) or quiet is None else quiet

    @property
    def on(self) -> bool:
        return self.quiet is not None

    def hold_until(self, number: str, at: float) -> float | None:
        """When a held send (bulk row, schedule) due at `at` may go; None: at `at` itself."""
        if self.quiet is None:
            return None
        check = check_quiet_hours(self.quiet, number, datetime.fromtimestamp(at, UTC))
        return None if check.allowed else check.opens_at.timestamp()

    def night_prompt(self, number: str, now: float) -> NightPrompt | None:
        """None when a one-off send may go now; else what to ask the person."""
        if self.quiet is None:
            return None
        check = check_quiet_hours(self.quiet, number, datetime.fromtimestamp(now, UTC))
        if check.allowed:
            return None
        local = check.local_times[0] if check.local_times else datetime.fromtimestamp(now, UTC)
        opens = check.opens_at.astimezone(local.tzinfo)
        return NightPrompt(f"{local:%H:%M}", check.opens_at.timestamp(), f"{opens:%H:%M}")
