"""Consent rules: keywords, opt-out families, quiet hours in the recipient's zones, WhatsApp window."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from bot.core.consent.rules import (
    FALLBACK_ZONES,
    QuietHours,
    QuietHoursError,
    UnknownSender,
    check_quiet_hours,
    classify_keyword,
    consent_family,
    keyword_of,
    keyword_source,
    needs_whatsapp_window,
    next_open,
    parse_quiet_hours,
    senders_sharing,
    whatsapp_window,
    zones_for_number,
)

# --------------------------------------------------------------------------- keywords


@pytest.mark.parametrize(
    ("text", "kind", "word"),
    [
        ("STOP", "opt_out", "STOP"), ("stop", "opt_out", "STOP"), ("  stop!! ", "opt_out", "STOP"),
        ("Stop.", "opt_out", "STOP"), ("\tStOp\n", "opt_out", "STOP"), ("¡STOP!", "opt_out", "STOP"),
        ("«stop»", "opt_out", "STOP"), ("ＳＴＯＰ", "opt_out", "STOP"), ("\u200bstop\ufeff", "opt_out", "STOP"),
        ("\u00a0stop\u3000", "opt_out", "STOP"), ("stopall", "opt_out", "STOPALL"),
        ("Unsubscribe", "opt_out", "UNSUBSCRIBE"), ("cancel", "opt_out", "CANCEL"), ("END", "opt_out", "END"),
        ("quit...", "opt_out", "QUIT"), ("revoke", "opt_out", "REVOKE"), ("OptOut", "opt_out", "OPTOUT"),
        ("START", "opt_in", "START"), ("unstop", "opt_in", "UNSTOP"), ("Yes!", "opt_in", "YES"),
        ("help?", "help", "HELP"), ("Info", "help", "INFO"),
        ("STOP please", None, None), ("please stop", None, None), ("OPT OUT", None, None),
        ("opt-out", None, None), ("STOPP", None, None), ("stop stop", None, None), ("", None, None),
        (None, None, None), ("   ", None, None), ("!!!", None, None), ("stop🛑", None, None),
        ("yes please", None, None), ("BEGIN", None, None), ("Can we come at 8?", None, None),
    ],
)
def test_keyword_table(text: str | None, kind: str | None, word: str | None) -> None:
    assert classify_keyword(text) == kind
    assert keyword_of(text) == word
    assert keyword_source(text) == (f"keyword_{word}" if word else None)


# --------------------------------------------------------------------------- families


@pytest.mark.parametrize(
    ("sender", "channel", "template", "family"),
    [
        ("twlo", None, False, "sms"), ("twlowa", None, False, "whatsapp"), ("gswa", None, True, "whatsapp"),
        ("bird", None, False, "sms"), ("bird", "sms", False, "sms"), ("bird", "whatsapp", False, "whatsapp"),
        ("textus", None, False, "sms"), ("textus", "sms", False, "sms"), ("textus", "whatsapp", False, "whatsapp"),
        ("textus", None, True, "whatsapp"),  # a TextUs template goes out as WhatsApp
        ("sandbox", None, False, "sms"), ("sandbox", "whatsapp", False, "whatsapp"), ("TWLO", None, False, "sms"),
        ("twlowa", "sms", False, "whatsapp"),  # the sender decides for single-channel senders
    ],
)
def test_consent_family(sender: str, channel: str | None, template: bool, family: str) -> None:
    assert consent_family(sender, channel, template) == family


@pytest.mark.parametrize(("sender", "channel"), [("nexmo", None), ("textus", "rcs"), ("", None)])
def test_unknown_sender_is_refused_not_skipped(sender: str, channel: str | None) -> None:
    with pytest.raises(UnknownSender):
        consent_family(sender, channel)


def test_families_share_opt_outs() -> None:
    assert set(senders_sharing("sms")) >= {"twlo", "bird", "textus"}
    assert set(senders_sharing("whatsapp")) >= {"twlowa", "gswa", "textus"}
    assert "twlowa" not in senders_sharing("sms") and "twlo" not in senders_sharing("whatsapp")


# --------------------------------------------------------------------------- quiet hours parsing


@pytest.mark.parametrize(
    ("value", "start", "end"),
    [("21:00-08:00", time(21), time(8)), (" 9:30 - 17:45 ", time(9, 30), time(17, 45)), ("00:00-06:00", time(0), time(6)),
     ("23:59-00:00", time(23, 59), time(0))],
)
def test_parse_quiet_hours(value: str, start: time, end: time) -> None:
    assert parse_quiet_hours(value) == QuietHours(start, end)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_unset_quiet_hours_are_off(value: str | None) -> None:
    assert parse_quiet_hours(value) is None


@pytest.mark.parametrize(
    ("value", "needle"),
    [("21-08", "HH:MM-HH:MM"), ("9pm-8am", "HH:MM-HH:MM"), ("21:00", "HH:MM-HH:MM"), ("21:00-08:00-09:00", "HH:MM-HH:MM"),
     ("24:00-08:00", "start time 24:00"), ("21:00-08:60", "end time 08:60"), ("08:00-08:00", "the same"),
     ("21:0-08:00", "HH:MM-HH:MM")],
)
def test_parse_quiet_hours_errors(value: str, needle: str) -> None:
    with pytest.raises(QuietHoursError, match=needle) as err:
        parse_quiet_hours(value)
    assert "SMS_QUIET_HOURS" in str(err.value)


NIGHT = QuietHours(time(21), time(8))


@pytest.mark.parametrize(
    ("quiet", "local", "is_quiet"),
    [(NIGHT, time(20, 59, 59), False), (NIGHT, time(21), True), (NIGHT, time(0), True), (NIGHT, time(7, 59, 59), True),
     (NIGHT, time(8), False), (NIGHT, time(12), False),
     (QuietHours(time(1), time(5)), time(0, 59), False), (QuietHours(time(1), time(5)), time(1), True),
     (QuietHours(time(1), time(5)), time(5), False)],
)
def test_quiet_range_edges_and_midnight(quiet: QuietHours, local: time, is_quiet: bool) -> None:
    assert quiet.is_quiet(local) is is_quiet


# --------------------------------------------------------------------------- zones

NY = "+18502221234"  # 850-222: America/New_York (inbound-notes.md, phonenumbers 9.0.43)
CHICAGO = "+18504321234"  # 850-432: America/Chicago
BOISE = "+12085551234"  # 208-555: Boise and Los_Angeles
UNKNOWN = "+15552223333"  # 555: Etc/Unknown


@pytest.mark.parametrize(
    ("number", "zones"),
    [(NY, ("America/New_York",)), (CHICAGO, ("America/Chicago",)), (BOISE, ("America/Boise", "America/Los_Angeles")),
     ("+12083451234", ("America/Denver",)), (UNKNOWN, ()), ("+18005551212", ()), ("nonsense", ())],
)
def test_zones_for_number(number: str, zones: tuple[str, ...]) -> None:
    assert zones_for_number(number) == zones


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("number", "now", "allowed", "opens"),
    [
        (NY, utc(2025, 6, 10, 12, 0), True, utc(2025, 6, 10, 12, 0)),  # 08:00 EDT: opens on the minute
        (NY, utc(2025, 6, 10, 11, 59), False, utc(2025, 6, 10, 12, 0)),  # 07:59 EDT
        (NY, utc(2025, 6, 11, 0, 59, 59), True, utc(2025, 6, 11, 0, 59, 59)),  # 20:59:59 EDT
        (NY, utc(2025, 6, 11, 1, 0), False, utc(2025, 6, 11, 12, 0)),  # 21:00 EDT: quiet from that instant
        (NY, utc(2025, 6, 11, 3, 10), False, utc(2025, 6, 11, 12, 0)),  # 23:10 EDT -> 08:00 next day
        (CHICAGO, utc(2025, 6, 11, 3, 10), False, utc(2025, 6, 11, 13, 0)),  # 22:10 CDT
        (CHICAGO, utc(2025, 6, 11, 1, 59), True, utc(2025, 6, 11, 1, 59)),  # 20:59 CDT
        # Multi-zone: 08:30 in Boise but 07:30 in Los Angeles -> wait for LA's 08:00.
        (BOISE, utc(2025, 6, 10, 14, 30), False, utc(2025, 6, 10, 15, 0)),
        (BOISE, utc(2025, 6, 10, 15, 0), True, utc(2025, 6, 10, 15, 0)),
        # ... and 21:00 in Boise closes it although LA is at 20:00.
        (BOISE, utc(2025, 6, 11, 3, 0), False, utc(2025, 6, 11, 15, 0)),
        # DST starts (9 Mar 2025, 02:00 local): 08:00 EDT is 12:00 UTC, not 13:00.
        (NY, utc(2025, 3, 9, 5, 0), False, utc(2025, 3, 9, 12, 0)),
        # DST ends (2 Nov 2025): 08:00 EST is 13:00 UTC.
        (NY, utc(2025, 11, 2, 5, 30), False, utc(2025, 11, 2, 13, 0)),
        # Unknown zone: every contiguous US zone must be open (LA's 08:00 PDT = 15:00 UTC).
        (UNKNOWN, utc(2025, 6, 10, 14, 0), False, utc(2025, 6, 10, 15, 0)),
        ("+18005551212", utc(2025, 6, 10, 14, 0), False, utc(2025, 6, 10, 15, 0)),
    ],
)
def test_quiet_hours_in_the_recipients_zones(number: str, now: datetime, allowed: bool, opens: datetime) -> None:
    check = check_quiet_hours(NIGHT, number, now)
    assert (check.allowed, check.opens_at) == (allowed, opens)
    assert check.opens_at.tzinfo is not None


def test_unknown_zone_is_flagged_and_uses_the_fallback() -> None:
    check = check_quiet_hours(NIGHT, UNKNOWN, utc(2025, 6, 10, 14, 0))
    assert (check.zone_known, check.zones) == (False, FALLBACK_ZONES)
    custom = check_quiet_hours(NIGHT, UNKNOWN, utc(2025, 6, 10, 14, 0), fallback=("Europe/London",))
    assert (custom.allowed, custom.zones) == (True, ("Europe/London",))  # 15:00 BST


def test_local_times_for_the_confirmation_prompt() -> None:
    check = check_quiet_hours(NIGHT, NY, utc(2025, 6, 11, 3, 10))
    assert check.zone_known is True
    assert [f"{t:%H:%M}" for t in check.local_times] == ["23:10"]
    assert f"{check.opens_at.astimezone(ZoneInfo('America/New_York')):%H:%M}" == "08:00"


def test_quiet_hours_off_always_allows() -> None:
    check = check_quiet_hours(None, NY, utc(2025, 6, 11, 3, 10))
    assert (check.allowed, check.opens_at) == (True, utc(2025, 6, 11, 3, 10))


def test_zones_that_are_never_open_together_fall_back_then_fail_clearly() -> None:
    one_hour = QuietHours(time(12), time(11))  # open 11:00-12:00 only
    # Boise (UTC-6) and Los Angeles (UTC-7) never share that hour: the fallback zones are used,
    # and when those cannot open together either, a clear error instead of waiting forever.
    with pytest.raises(QuietHoursError, match="no time open"):
        check_quiet_hours(one_hour, BOISE, utc(2025, 6, 10, 14, 0))
    check = check_quiet_hours(one_hour, BOISE, utc(2025, 6, 10, 14, 0), fallback=("America/Denver",))
    assert (check.zone_known, check.allowed, check.opens_at) == (False, False, utc(2025, 6, 10, 17, 0))


@pytest.mark.parametrize("start", [utc(2025, 3, 8, 0, 0), utc(2025, 11, 1, 0, 0)])
def test_next_open_is_never_early_nor_late_across_dst(start: datetime) -> None:
    zones = ("America/New_York", "America/Los_Angeles")
    for minutes in range(0, 72 * 60, 17):
        now = start + timedelta(minutes=minutes)
        opens = next_open(NIGHT, zones, now)
        assert opens is not None and opens >= now
        assert not any(NIGHT.is_quiet(opens.astimezone(ZoneInfo(z)).time()) for z in zones)
        if opens > now:  # one minute earlier some zone was still quiet
            before = opens - timedelta(minutes=1)
            assert any(NIGHT.is_quiet(before.astimezone(ZoneInfo(z)).time()) for z in zones)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        check_quiet_hours(NIGHT, NY, datetime(2025, 6, 10, 12))


@freeze_time("2025-12-31 23:30:00")
def test_with_a_frozen_clock_across_the_new_year() -> None:
    now = datetime.now(UTC)  # 18:30 EST on 31 Dec: open; three hours later 21:30: quiet
    assert check_quiet_hours(NIGHT, NY, now).allowed is True
    later = check_quiet_hours(NIGHT, NY, now + timedelta(hours=3))
    assert (later.allowed, later.opens_at) == (False, utc(2026, 1, 1, 13, 0))


# --------------------------------------------------------------------------- WhatsApp window

LAST = utc(2025, 6, 10, 10, 0)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("last", "now", "is_open", "until"),
    [
        (LAST, LAST, True, LAST + DAY),
        (LAST, LAST + DAY - timedelta(microseconds=1), True, LAST + DAY),
        (LAST, LAST + DAY, False, LAST + DAY),  # exactly 24 h later: closed
        (LAST, LAST + timedelta(days=3), False, LAST + DAY),
        (None, LAST, False, None),  # never wrote: templates only
        # 12:00 CEST is LAST in another zone: same instant, same window.
        (datetime(2025, 6, 10, 12, 0, tzinfo=ZoneInfo("Europe/Paris")), LAST + DAY - timedelta(seconds=1), True,
         LAST + DAY),
    ],
)
def test_whatsapp_window_edges(last: datetime | None, now: datetime, is_open: bool, until: datetime | None) -> None:
    state = whatsapp_window(last, now)
    assert (state.open, state.until) == (is_open, until)


def test_whatsapp_window_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        whatsapp_window(datetime(2025, 6, 10, 10), LAST)
    with pytest.raises(ValueError, match="aware"):
        whatsapp_window(LAST, datetime(2025, 6, 10, 10))


@pytest.mark.parametrize(
    ("sender", "channel", "template", "needed"),
    [("twlowa", None, False, True), ("gswa", None, False, True), ("twlowa", None, True, False),
     ("textus", "whatsapp", False, True), ("textus", None, True, False), ("textus", None, False, False),
     ("twlo", None, False, False), ("bird", None, False, False), ("sandbox", "whatsapp", False, True)],
)
def test_which_sends_need_the_window(sender: str, channel: str | None, template: bool, needed: bool) -> None:
    assert needs_whatsapp_window(sender, channel, template) is needed
