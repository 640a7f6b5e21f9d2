"""Consent rules without storage or Slack: keywords, opt-out families, quiet hours, WhatsApp window.

Contract: /work/shared/api-docs/inbound-notes.md section 5 and provider-notes.md.
Every function here is pure: the caller passes the clock (`now`, an aware datetime).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as pn_timezone

# --------------------------------------------------------------------------- keywords

KeywordKind = Literal["opt_out", "opt_in", "help"]

# Twilio's list (REVOKE and OPTOUT since May 2025) is a superset of Bird's opt-out words.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
# Bird also opts in on BEGIN/RESUME/REVERT; we do not: a missed opt-in keeps a number safe,
# the customer can still text START (see the report / docs).
OPT_IN_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
_KINDS: dict[str, KeywordKind] = {
    **{w: "opt_out" for w in OPT_OUT_WORDS},
    **{w: "opt_in" for w in OPT_IN_WORDS},
    **{w: "help" for w in HELP_WORDS},
}


def _is_trim(ch: str) -> bool:
    """Punctuation, spaces and invisible format characters (zero-width space, BOM)."""
    return unicodedata.category(ch)[0] in ("P", "Z", "C") or ch.isspace()


def keyword_of(text: str | None) -> str | None:
    """The keyword the whole message is ("  stop!! " -> "STOP"), or None.

    NFKC first, so full-width or compatibility letters ("ＳＴＯＰ") count; inner spaces do
    not ("OPT OUT" and "STOP please" are no keywords, as for Twilio)."""
    if not text:
        return None
    folded = unicodedata.normalize("NFKC", text)
    start, end = 0, len(folded)
    while start < end and _is_trim(folded[start]):
        start += 1
    while end > start and _is_trim(folded[end - 1]):
        end -= 1
    word = folded[start:end].upper()
    return word if word in _KINDS else None


def classify_keyword(text: str | None) -> KeywordKind | None:
    """opt_out / opt_in / help for a whole-message keyword, None for any other text."""
    word = keyword_of(text)
    return _KINDS[word] if word is not None else None


def keyword_source(text: str | None) -> str | None:
    """The consent source recorded for a keyword reply, e.g. "keyword_STOP"."""
    word = keyword_of(text)
    return f"keyword_{word}" if word is not None else None


# --------------------------------------------------------------------------- families

ConsentFamily = Literal["sms", "whatsapp"]

# One opt-out covers every sender of its family: the customer cannot tell which of our
# senders texted them. TextUs and Bird are in a family by channel (TextUs sends both).
FAMILY_SENDERS: dict[ConsentFamily, tuple[str, ...]] = {
    "sms": ("twlo", "bird", "textus", "sandbox"),
    "whatsapp": ("twlowa", "gswa", "textus", "sandbox"),
}
_FIXED_FAMILY: dict[str, ConsentFamily] = {"twlo": "sms", "tlnx": "sms", "twlowa": "whatsapp", "gswa": "whatsapp"}
_CHANNEL_SENDERS = frozenset({"bird", "textus", "sandbox"})


class UnknownSender(ValueError):
    """A sender whose consent family is unknown: refuse rather than skip the check."""


def consent_family(sender: str, channel: str | None = None, template: bool = False) -> ConsentFamily:
    """The family whose opt-outs apply to a send or an inbound message.

    `channel` is the message's channel ("sms"/"whatsapp") for senders that have two (Bird,
    TextUs, sandbox; None means SMS). A TextUs template always goes out as WhatsApp."""
    name = sender.lower()
    if name in _FIXED_FAMILY:
        return _FIXED_FAMILY[name]
    if name not in _CHANNEL_SENDERS:
        raise UnknownSender(f"sender {sender[:20]!r} has no consent family")
    if channel == "whatsapp" or (name == "textus" and template):
        return "whatsapp"
    if channel in (None, "sms"):
        return "sms"
    raise UnknownSender(f"channel {channel[:20]!r} of sender {sender[:20]!r} has no consent family")


def senders_sharing(family: ConsentFamily) -> tuple[str, ...]:
    return FAMILY_SENDERS[family]


# --------------------------------------------------------------------------- quiet hours


class QuietHoursError(ValueError):
    """SMS_QUIET_HOURS is not a range like 21:00-08:00; the message says what to fix."""


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class QuietHours:
    """Quiet from `start` (inclusive) to `end` (exclusive), local time; may cross midnight."""

    start: time
    end: time

    def is_quiet(self, local: time) -> bool:
        local = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def _clock(hour: str, minute: str, which: str, raw: str) -> time:
    h, m = int(hour), int(minute)
    if h > 23 or m > 59:
        raise QuietHoursError(f"SMS_QUIET_HOURS {raw!r}: the {which} time {hour}:{minute} is not a time of day (00:00-23:59)")
    return time(h, m)


def parse_quiet_hours(value: str | None) -> QuietHours | None:
    """"21:00-08:00" -> QuietHours(21:00, 08:00); unset or blank -> None (quiet hours off)."""
    if value is None or not value.strip():
        return None
    raw = value.strip()[:40]
    found = _RANGE.match(value)
    if found is None:
        raise QuietHoursError(f"SMS_QUIET_HOURS {raw!r}: use HH:MM-HH:MM in 24-hour time, e.g. 21:00-08:00")
    start = _clock(found[1], found[2], "start", raw)
    end = _clock(found[3], found[4], "end", raw)
    if start == end:
        raise QuietHoursError(f"SMS_QUIET_HOURS {raw!r}: start and end are the same; unset it to turn quiet hours off")
    return QuietHours(start, end)


# Used when a number has no usable zone ('Etc/Unknown', toll-free and other non-geographic
# numbers, or zones with no common open time): every contiguous US zone, the most cautious
# choice for the US customers this targets. Callers may pass their own.
FALLBACK_ZONES: tuple[str, ...] = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
)
_NON_GEOGRAPHIC = {
    phonenumbers.PhoneNumberType.TOLL_FREE, phonenumbers.PhoneNumberType.PREMIUM_RATE,
    phonenumbers.PhoneNumberType.SHARED_COST, phonenumbers.PhoneNumberType.UAN,
}


def zones_for_number(number: str) -> tuple[str, ...]:
    """IANA zones of an E.164 number from phonenumbers' prefix data; () when unknown."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    if phonenumbers.number_type(parsed) in _NON_GEOGRAPHIC:
        return ()
    zones: list[str] = []
    for name in pn_timezone.time_zones_for_number(parsed):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # 'Etc/Unknown' and names tzdata lacks
        zones.append(name)
    return tuple(zones)


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")


def quiet_in_any(quiet: QuietHours, zones: tuple[str, ...], at: datetime) -> bool:
    return any(quiet.is_quiet(at.astimezone(ZoneInfo(z)).time()) for z in zones)


def next_open(quiet: QuietHours, zones: tuple[str, ...], now: datetime, days: int = 8) -> datetime | None:
    """The first instant >= now outside quiet hours in every zone (UTC), None if none within `days`.

    That instant is always the window's opening in one of the zones, so only those are tried:
    exact across DST changes (each opening is built in local time)."""
    _require_aware(now)
    if not quiet_in_any(quiet, zones, now):
        return now.astimezone(UTC)
    candidates: set[datetime] = set()
    for name in zones:
        zone = ZoneInfo(name)
        today = now.astimezone(zone).date()
        for offset in range(-1, days + 1):
            local = datetime.combine(today + timedelta(days=offset), quiet.end, tzinfo=zone)
            at = local.astimezone(UTC)
            if at > now:
                candidates.add(at)
    return next((at for at in sorted(candidates) if not quiet_in_any(quiet, zones, at)), None)


@dataclass(frozen=True)
class QuietCheck:
    allowed: bool  # outside quiet hours in every zone at `now`
    opens_at: datetime  # UTC; == now when allowed
    zones: tuple[str, ...]  # the zones used
    zone_known: bool  # False: FALLBACK_ZONES (or the caller's) were used
    local_times: tuple[datetime, ...]  # `now` in each zone, for "It is 23:10 for this recipient"


def check_quiet_hours(
    quiet: QuietHours | None, number: str, now: datetime, fallback: tuple[str, ...] = FALLBACK_ZONES
) -> QuietCheck:
    """May a held send (bulk row, schedule) go to `number` at `now`, and if not, from when."""
    _require_aware(now)
    zones = zones_for_number(number)
    known = bool(zones)
    if quiet is None:
        return QuietCheck(True, now.astimezone(UTC), zones, known, tuple(now.astimezone(ZoneInfo(z)) for z in zones))
    opens = next_open(quiet, zones, now) if zones else None
    if opens is None:  # unknown zone, or zones never open together (spread over ~a day)
        zones, known = fallback, False
        opens = next_open(quiet, zones, now)
    if opens is None:
        raise QuietHoursError(f"quiet hours {quiet} leave no time open in all of {', '.join(fallback)}")
    return QuietCheck(
        allowed=opens <= now, opens_at=opens, zones=zones, zone_known=known,
        local_times=tuple(now.astimezone(ZoneInfo(z)) for z in zones),
    )


# --------------------------------------------------------------------------- WhatsApp window

WHATSAPP_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class WindowState:
    open: bool  # a free-form WhatsApp message may be sent at `now`
    until: datetime | None  # when the window closes (or closed); None: never opened


def whatsapp_window(last_inbound: datetime | None, now: datetime) -> WindowState:
    """The 24-hour customer-service window: open from the customer's last message until
    exactly 24 h later (exclusive). Our own sends, templates too, do not reopen it."""
    _require_aware(now)
    if last_inbound is None:
        return WindowState(False, None)
    _require_aware(last_inbound)
    until = last_inbound + WHATSAPP_WINDOW
    return WindowState(now < until, until)


def needs_whatsapp_window(sender: str, channel: str | None = None, template: bool = False) -> bool:
    """True for a free-form message to a WhatsApp recipient (templates may go any time)."""
    return not template and consent_family(sender, channel) == "whatsapp"
