"""Plain-text wording shared by every edge: times, counts, invalid rows, the summary."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bot.core.bulk.models import PROBLEMS_SHOWN, BulkSummary, ProblemLine, Progress

CUT = "… (cut)"


def when_words(ts: float, tz: str | None) -> str:
    zone = ZoneInfo(tz) if tz else UTC
    return datetime.fromtimestamp(ts, zone).strftime("%a %-d %b %Y, %H:%M %Z")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - len(CUT))] + CUT


def problem_lines(problems: list[ProblemLine], invalid: int) -> list[str]:
    """The first invalid rows, one line each, then how many more there are."""
    lines = [f"Line {p.line}: {clip(p.raw, 60)} — {clip(p.reason, 300)}" for p in problems[:PROBLEMS_SHOWN]]
    if invalid > len(lines):
        lines.append(f"…and {invalid - len(lines):,} more (they are skipped; the valid rows are kept).")
    return lines


def consent_words(p: Progress, tz: str | None) -> str:
    """" · 2 opted out (skipped) · 30 wait for quiet hours until Tue 1 Dec 2026, 08:00 EST"."""
    out = f" · {p.opted_out:,} opted out (skipped)" if p.opted_out else ""
    if p.quiet_waiting and p.quiet_until:
        out += f" · {p.quiet_waiting:,} wait for quiet hours until {when_words(p.quiet_until, tz)}"
    return out


def summary_text(s: BulkSummary, quote: Callable[[str], str] = str) -> str:
    """The summary; `quote` makes provider-supplied text (job ids) safe for the medium."""
    p = s.progress
    icon = ":no_entry_sign:" if s.canceled else (":white_check_mark:" if not (p.failed or p.unknown) else ":warning:")
    took = f" in {int(s.seconds // 60)} min {int(s.seconds % 60)} s" if s.seconds is not None else ""
    lines = [f"{icon} Bulk #{s.job_id} {'canceled' if s.canceled else 'finished'}{took} via {s.label}: "
             f"{p.sent:,} sent, {p.failed:,} failed, {p.unknown:,} unknown"
             + (f", {p.canceled:,} canceled" if p.canceled else "")
             + (f", {p.missed:,} missed" if p.missed else "")
             + (f", {p.opted_out:,} opted out (skipped)" if p.opted_out else "")
             + f" (of {p.total:,})."]
    if p.unknown:
        lines.append("Unknown means the provider may or may not have sent it (no answer, or smsbot stopped "
                     "mid-send); those were not retried, to avoid sending twice.")
    ids = s.provider_job_ids
    if ids:
        lines.append("Sociocs bulk job ids: " + ", ".join(quote(j) for j in ids[:20])
                     + (f" and {len(ids) - 20} more" if len(ids) > 20 else ""))
    if p.failed or p.unknown:
        lines.append("Every failed or unknown recipient, with the reason, is in the attached CSV.")
    return "\n".join(lines)
