"""When should a scheduled message go? Parsed in the Slack user's own time zone.

Accepted (case-insensitive, extra spaces ignored, an optional "at"/"on" between parts):
- ISO 8601 with an offset or Z: `2026-12-01T09:00:00-05:00` (taken as is; the format the
  Sociocs docs use).
- A local date and time: `2026-12-01 09:00`, `2026-12-01 9:00am`, `2026-12-01T09:00`.
- `today 5pm`, `tomorrow 9am`, `tomorrow 09:30`, `9am tomorrow`.
- Weekdays: `monday 9am`, `next monday 9am`, `mon 9am`: the next such day strictly after
  today (on a Monday, "monday 9am" is a week away).
- Month names: `Dec 1 9am`, `1 Dec 09:00`, `December 1 2026 9:00am`, `Dec 1st, 2026 at 9am`.
  Without a year: this year, or next year when that day has already gone by in the user's
  zone (a day earlier today that is already over is refused as past, not moved a year).
- A time alone, `9am` / `17:30`: today if that is still ahead, else tomorrow.
- Relative: `in 2 hours`, `in 30 minutes`, `in 30 min`, `in 1h`, `in 90m`, `in 1h 30m`,
  `in 3 days`, `in 2 weeks`, `in an hour`. Hours and minutes are elapsed time; days and
  weeks keep the local wall-clock time across DST changes.
- `now`.

Times need a colon or am/pm (`9` alone is not a time); `noon` / `midday` are 12:00.
A date without a time is refused, as is a numeric date like `12/01` (day or month first?).
Local times that do not exist (the spring-forward gap) are refused with an explanation;
ambiguous local times (the repeated hour in autumn) take the first occurrence (fold=0),
i.e. the daylight-saving one. Exception: "in N days" that lands in a gap moves forward by
the gap, as a clock would, since the user never typed that wall time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class WhenError(ValueError):
    """The text is not a usable send time; the message says what was understood and what to fix."""


EXAMPLES = '"2026-12-01 09:00", "tomorrow 9am", "in 2 hours" or ISO 8601 with an offset like 2026-12-01T09:00:00-05:00'

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_FULL = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_WEEKDAY_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_MONTH_NAMES: dict[str, int] = {}
for _i, _full in enumerate(_MONTH_FULL, start=1):
    _MONTH_NAMES[_full] = _i
    _MONTH_NAMES[_full[:3]] = _i
_MONTH_NAMES["sept"] = 9

_WEEKDAY_NAMES: dict[str, int] = {}
for _i, _full in enumerate(_WEEKDAY_FULL):
    _WEEKDAY_NAMES[_full] = _i
    _WEEKDAY_NAMES[_full[:3]] = _i
_WEEKDAY_NAMES.update({"tues": 1, "weds": 2, "thur": 3, "thurs": 3})

_MONTH_RE = "|".join(sorted(_MONTH_NAMES, key=len, reverse=True))
_WEEKDAY_RE = "|".join(sorted(_WEEKDAY_NAMES, key=len, reverse=True))

# A time needs a colon or am/pm so that "Dec 1" is never read as 1 o'clock.
# am/pm may be dotted or spaced: 9am, 9 am, 9 a.m., 9:30pm.
_TIME_RE = (
    r"(?:(?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?(?:\s*(?P<ap1>[ap])\.?m\.?)?"
    r"|(?P<h2>\d{1,2})\s*(?P<ap2>[ap])\.?m\.?"
    r"|(?P<noon>noon|midday))"
)
_TIME_AT_END = re.compile(rf"^(?:(?P<date>.*?)\s+(?:at\s+)?)?{_TIME_RE}$")
_TIME_AT_START = re.compile(rf"^{_TIME_RE}\s+(?:on\s+)?(?P<date>.+)$")

_ISO_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$",
    re.IGNORECASE,
)
_ISO_DATE = re.compile(r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})$")
_ORD = r"(?:st|nd|rd|th)?"
_WD_PREFIX = rf"(?:(?P<wd>{_WEEKDAY_RE})\.?,?\s+)?"
_MONTH_DAY = re.compile(
    rf"^{_WD_PREFIX}(?P<mon>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}}){_ORD}(?:,?\s+(?P<y>\d{{4}}))?$"
)
_DAY_MONTH = re.compile(
    rf"^{_WD_PREFIX}(?P<d>\d{{1,2}}){_ORD}\s+(?:of\s+)?(?P<mon>{_MONTH_RE})\.?(?:,?\s+(?P<y>\d{{4}}))?$"
)
_WEEKDAY = re.compile(rf"^(?:on\s+)?(?:next\s+)?(?P<wd>{_WEEKDAY_RE})\.?$")
_SLASH_DATE = re.compile(r"\b\d{1,4}/\d{1,2}(?:/\d{2,4})?\b")

_UNITS = {
    "m": "minutes", "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "d": "days", "day": "days", "days": "days",
    "w": "weeks", "wk": "weeks", "wks": "weeks", "week": "weeks", "weeks": "weeks",
}  # fmt: skip
_UNIT_RE = "|".join(sorted(_UNITS, key=len, reverse=True))
# "a"/"an"/"one" need a space before the unit, or "and" would read as "an d(ay)".
_REL_PART = re.compile(rf"\b(?:(?P<n>\d+)\s*|(?P<w>an?|one)\s+)(?P<u>{_UNIT_RE})\b")
_REL_SEP = re.compile(r"^(?:\s|,|and\b)*$")


# --------------------------------------------------------------------------- helpers


def _zone(tz: str | ZoneInfo) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise WhenError(f"Unknown time zone '{tz}'. Set a time zone in your Slack profile.") from None


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    # A naive `now` is taken as UTC (tests and callers pass UTC).
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _label(when: datetime, zone: ZoneInfo, now: datetime) -> str:
    """`Tue 1 Dec, 09:00 EST`; the year only when it differs from now's year in that zone."""
    local = when.astimezone(zone)
    year = "" if local.year == now.astimezone(zone).year else f" {local.year}"
    return (
        f"{_WEEKDAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}{year}, "
        f"{local:%H:%M} {local.tzname()}"
    )


def _plural(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _relative(when: datetime, zone: ZoneInfo, now: datetime) -> str:
    """`in 45 minutes`, `in 2 hours 5 minutes`, `in 3 days`, `now`, `10 minutes ago`."""
    delta = when - now
    past = delta < timedelta(0)
    elapsed = -delta if past else delta
    if elapsed < timedelta(minutes=1):
        return "now"
    # Days by the local wall clock, so "in 7 days" across a DST change reads "7 days".
    wall = when.astimezone(zone).replace(tzinfo=None) - now.astimezone(zone).replace(tzinfo=None)
    wall = -wall if past else wall
    if elapsed >= timedelta(days=1) and wall >= timedelta(days=1):
        hours = wall.seconds // 3600
        text = _plural(wall.days, "day") + (f" {_plural(hours, 'hour')}" if hours else "")
    else:
        hours, minutes = divmod(int(elapsed.total_seconds() // 60), 60)
        if hours == 0:
            text = _plural(minutes, "minute")
        else:
            text = _plural(hours, "hour") + (f" {_plural(minutes, 'minute')}" if minutes else "")
    return f"{text} ago" if past else f"in {text}"


def describe_when(when: datetime, tz: str | ZoneInfo, now: datetime | None = None) -> str:
    """`Tue 1 Dec, 09:00 EST, in 3 days`."""
    zone = _zone(tz)
    now_utc = _utc_now(now)
    return f"{_label(when, zone, now_utc)}, {_relative(when, zone, now_utc)}"


def _gap_error(text: str, naive: datetime, zone: ZoneInfo) -> WhenError:
    """Explain a local time the clocks skip, e.g. 02:30 on the spring-forward night."""
    before = naive.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
    after = naive.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    # The transition instant lies between these two readings of the wall time; find it
    # to the minute to say exactly which local times do not exist.
    lo = (naive - after).replace(tzinfo=UTC)
    hi = (naive - before).replace(tzinfo=UTC)
    while hi - lo > timedelta(minutes=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    switch = hi.replace(second=0, microsecond=0)
    jump_from = (switch + before).replace(tzinfo=None)
    jump_to = (switch + after).replace(tzinfo=None)
    suggestion = naive + (after - before)
    return WhenError(
        f"'{text}'{'' if text == f'{naive:%Y-%m-%d %H:%M}' else f' ({naive:%Y-%m-%d %H:%M})'} "
        f"doesn't exist in {zone.key}: that night the clocks jump "
        f"from {jump_from:%H:%M} to {jump_to:%H:%M}, so {jump_from:%H:%M}-"
        f"{jump_to - timedelta(minutes=1):%H:%M} never happens. "
        f'Give another time, e.g. "{suggestion:%Y-%m-%d %H:%M}".'
    )


def local_time(naive: datetime, tz: str | ZoneInfo) -> datetime:
    """A wall time picked in a form -> aware UTC; refused like typed text when the clocks skip it."""
    return _localize(f"{naive:%Y-%m-%d %H:%M}", naive, _zone(tz))


def _localize(text: str, naive: datetime, zone: ZoneInfo, *, shift_gap: bool = False) -> datetime:
    """Local wall time -> aware UTC. Ambiguous times take fold=0 (the first occurrence)."""
    aware = naive.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != naive and not shift_gap:
        raise _gap_error(text, naive, zone)
    # In a gap, fold=0 reads the wall time with the pre-transition offset, which lands the
    # instant after the gap by its length: the clock-like shift we want for "in N days".
    return utc


def _parse_time(m: re.Match[str], text: str) -> time:
    if m.group("noon"):
        return time(12, 0)
    hour_s = m.group("h") or m.group("h2")
    hour = int(hour_s)
    minute = int(m.group("m") or 0)
    second = int(m.group("s") or 0)
    ampm = m.group("ap1") or m.group("ap2")
    if ampm:
        if not 1 <= hour <= 12:
            raise WhenError(f"'{text}': {hour} isn't an hour on a 12-hour clock. Use 1-12 with am/pm, or 0-23.")
        hour = hour % 12 + (12 if ampm == "p" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise WhenError(f"'{text}': {m.group(0).strip()} isn't a time of day. Use 00:00-23:59, e.g. 17:30 or 5:30pm.")
    return time(hour, minute, second)


def _make_date(text: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise WhenError(
            f"'{text}': {_MONTHS[month - 1] if 1 <= month <= 12 else month} {day} {year} isn't a real date."
            if 1 <= month <= 12
            else f"'{text}': there is no month {month}. Use YYYY-MM-DD, e.g. 2026-12-01 09:00."
        ) from None


def _check_weekday(text: str, wd: str | None, d: date) -> None:
    if wd is not None and _WEEKDAY_NAMES[wd] != d.weekday():
        raise WhenError(
            f"'{text}': {d.day} {_MONTHS[d.month - 1]} {d.year} is a {_WEEKDAY_FULL[d.weekday()].title()}, "
            f"not a {_WEEKDAY_FULL[_WEEKDAY_NAMES[wd]].title()}. Check the date."
        )


def _parse_date(text: str, part: str, today: date) -> date | None:
    """The date part of the input, or None when it is not a date we know."""
    part = part.strip().rstrip(",").strip()
    if part in ("today",):
        return today
    if part in ("tomorrow", "tmrw", "tmr"):
        return today + timedelta(days=1)
    if m := _WEEKDAY.match(part):
        ahead = (_WEEKDAY_NAMES[m.group("wd")] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead)
    if m := _ISO_DATE.match(part):
        return _make_date(text, int(m["y"]), int(m["mo"]), int(m["d"]))
    if m := _MONTH_DAY.match(part) or _DAY_MONTH.match(part):
        month, day = _MONTH_NAMES[m["mon"]], int(m["d"])
        if m["y"]:
            d = _make_date(text, int(m["y"]), month, day)
        else:
            # No year: the next time that day comes round, today included (Feb 29: next leap year).
            found: date | None = None
            for year in range(today.year, today.year + 9):
                try:
                    candidate = date(year, month, day)
                except ValueError:
                    continue
                if candidate >= today:
                    found = candidate
                    break
            if found is None:
                raise WhenError(f"'{text}': {_MONTHS[month - 1]} {day} isn't a real date.")
            d = found
        _check_weekday(text, m["wd"], d)
        return d
    return None


def _relative_when(
    text: str, body: str, now_utc: datetime, zone: ZoneInfo, max_days: int
) -> datetime | None:
    """`in 2 hours`, `in 1h 30m`, `in 3 days` -> aware UTC, or None when not that shape."""
    parts = list(_REL_PART.finditer(body))
    if not parts:
        return None
    # Everything between the amounts must be spaces, commas or "and".
    pos = 0
    for p in parts:
        if not _REL_SEP.match(body[pos : p.start()]):
            return None
        pos = p.end()
    if not _REL_SEP.match(body[pos:]):
        return None
    totals = {"minutes": 0, "hours": 0, "days": 0, "weeks": 0}
    for p in parts:
        totals[_UNITS[p["u"]]] += int(p["n"]) if p["n"] else 1
    days = totals["days"] + 7 * totals["weeks"]
    # Refuse absurd amounts before date arithmetic can overflow.
    if days * 1440 + totals["hours"] * 60 + totals["minutes"] > (max_days + 2) * 1440:
        raise WhenError(f"'{text}' is more than {max_days} days ahead. Give a time within {max_days} days.")
    when = now_utc
    if days:
        local = now_utc.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
        when = _localize(text, local, zone, shift_gap=True)
    return when + timedelta(hours=totals["hours"], minutes=totals["minutes"])


# --------------------------------------------------------------------------- parse


def _understand(text: str, zone: ZoneInfo, now_utc: datetime, max_days: int) -> datetime:
    """The instant the text names (aware UTC), not yet checked against now."""
    raw = " ".join(text.split())
    if _ISO_OFFSET.match(raw):
        iso = raw.upper().replace(" ", "T", 1).replace(" ", "")
        try:
            parsed = datetime.fromisoformat(iso)
        except ValueError:
            raise WhenError(f"'{text}' isn't a real date and time. Check the digits, e.g. 2026-12-01T09:00:00-05:00.") from None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 with an offset leaves the calendar in UTC
            raise WhenError(f"'{text}' is too far in the past or future to schedule. Try {EXAMPLES}.") from None

    s = raw.lower()
    # `2026-12-01T09:00` without an offset: a local time.
    s = re.sub(r"^(\d{4}-\d{1,2}-\d{1,2})t(?=\d)", r"\1 ", s)
    if s == "now":
        return now_utc
    if s.startswith("in "):
        rel = _relative_when(text, s[3:], now_utc, zone, max_days)
        if rel is not None:
            return rel
        raise WhenError(
            f"Couldn't read '{text}' as a delay. Use minutes, hours, days or weeks, e.g. \"in 30 minutes\", "
            f'"in 2 hours" or "in 3 days".'
        )
    if _SLASH_DATE.search(s):
        raise WhenError(
            f"'{text}' is ambiguous: is 12/01 the 1st of December or the 12th of January? "
            f'Write the month as a word or use YYYY-MM-DD, e.g. "Dec 1 9am" or "2026-12-01 09:00".'
        )

    today = now_utc.astimezone(zone).date()
    m = _TIME_AT_END.match(s) or _TIME_AT_START.match(s)
    if m is None:
        if _parse_date(text, s, today) is not None:
            raise WhenError(f"'{text}' has no time. Add one, e.g. \"{raw} 9am\" or \"{raw} 17:30\".")
        raise WhenError(f"Couldn't read '{text}' as a time. Try {EXAMPLES}.")
    at = _parse_time(m, text)
    date_part = (m.group("date") or "").strip()
    if not date_part:
        local = datetime.combine(today, at)
        when = _localize(text, local, zone)
        if when <= now_utc:
            # A bare time already gone today means tomorrow.
            when = _localize(text, local + timedelta(days=1), zone)
        return when
    day = _parse_date(text, date_part, today)
    if day is None:
        raise WhenError(f"Couldn't read '{text}' as a time. Try {EXAMPLES}.")
    return _localize(text, datetime.combine(day, at), zone)


def is_immediate(when: datetime, now: datetime | None = None) -> bool:
    """`now` (the only time parse_when lets through that is not ahead): send at once, since
    scheduling it would only say "Scheduled" for something that goes immediately. Earlier
    times are refused as past by parse_when."""
    return when <= _utc_now(now)


def parse_when(text: str, tz: str | ZoneInfo, now: datetime | None = None, max_days: int = 365) -> datetime:
    """Parse a send time typed by a user in zone `tz`; -> aware UTC datetime in the future."""
    zone = _zone(tz)
    now_utc = _utc_now(now)
    shown = " ".join((text or "").split())
    if not shown:
        raise WhenError(f"No time given. Try {EXAMPLES}.")
    if len(shown) > 100:
        raise WhenError(f"Couldn't read '{shown[:40]}…' as a time: it is too long. Try {EXAMPLES}.")
    when = _understand(shown, zone, now_utc, max_days)
    if when < now_utc:
        raise WhenError(
            f"'{shown}' ({_label(when, zone, now_utc)}) is in the past. "
            'Give a future time, e.g. "tomorrow 9am" or "'
            f'{(now_utc.astimezone(zone) + timedelta(days=1)):%Y-%m-%d} 09:00".'
        )
    if when - now_utc > timedelta(days=max_days):
        raise WhenError(
            f"'{shown}' ({_label(when, zone, now_utc)}) is more than {max_days} days ahead. "
            f"Give a time within {max_days} days."
        )
    return when
