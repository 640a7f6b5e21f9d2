from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from bot.core.input.timeparse import WhenError, describe_when, parse_when

NY = "America/New_York"
LON = "Europe/London"
# Saturday 28 Nov 2026, 09:00 EST in New York.
NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # ISO 8601 with an offset or Z: taken as is.
        ("2026-12-01T09:00:00-05:00", utc(2026, 12, 1, 14)),
        ("2026-12-01T09:00:00+05:30", utc(2026, 12, 1, 3, 30)),
        ("2026-12-01T14:00Z", utc(2026, 12, 1, 14)),
        ("2026-12-01T14:00:00z", utc(2026, 12, 1, 14)),
        # Local date and time.
        ("2026-12-01 09:00", utc(2026, 12, 1, 14)),
        ("2026-12-01 9:00am", utc(2026, 12, 1, 14)),
        ("2026-12-01 9:00 PM", utc(2026, 12, 2, 2)),
        ("2026-12-01T09:00", utc(2026, 12, 1, 14)),
        ("2026-12-01 09:00:30", utc(2026, 12, 1, 14, 0, 30)),
        # Relative days.
        ("today 5pm", utc(2026, 11, 28, 22)),
        ("tomorrow 9am", utc(2026, 11, 29, 14)),
        ("tomorrow 09:30", utc(2026, 11, 29, 14, 30)),
        ("Tomorrow at 9 a.m.", utc(2026, 11, 29, 14)),
        ("9am tomorrow", utc(2026, 11, 29, 14)),
        ("tomorrow noon", utc(2026, 11, 29, 17)),
        ("  TOMORROW    9AM  ", utc(2026, 11, 29, 14)),
        # Weekdays: strictly after today (today is Saturday).
        ("monday 9am", utc(2026, 11, 30, 14)),
        ("next monday 9am", utc(2026, 11, 30, 14)),
        ("mon 9am", utc(2026, 11, 30, 14)),
        ("on Friday at 17:00", utc(2026, 12, 4, 22)),
        ("saturday 10am", utc(2026, 12, 5, 15)),
        # Elapsed time.
        ("in 2 hours", utc(2026, 11, 28, 16)),
        ("in 30 minutes", utc(2026, 11, 28, 14, 30)),
        ("in 30 min", utc(2026, 11, 28, 14, 30)),
        ("in 1h", utc(2026, 11, 28, 15)),
        ("in 90m", utc(2026, 11, 28, 15, 30)),
        ("in 1h 30m", utc(2026, 11, 28, 15, 30)),
        ("in 2 hours and 15 minutes", utc(2026, 11, 28, 16, 15)),
        ("in an hour", utc(2026, 11, 28, 15)),
        ("in 3 days", utc(2026, 12, 1, 14)),
        ("in 2 weeks", utc(2026, 12, 12, 14)),
        # A time alone: today if still ahead, else tomorrow.
        ("17:30", utc(2026, 11, 28, 22, 30)),
        ("5:30pm", utc(2026, 11, 28, 22, 30)),
        ("8am", utc(2026, 11, 29, 13)),
        ("9am", utc(2026, 11, 29, 14)),  # exactly now is not ahead
        # Month names.
        ("Dec 1 9am", utc(2026, 12, 1, 14)),
        ("1 Dec 09:00", utc(2026, 12, 1, 14)),
        ("December 1 2026 9:00am", utc(2026, 12, 1, 14)),
        ("Dec 1st, 2026 at 9am", utc(2026, 12, 1, 14)),
        ("1st of December 09:00", utc(2026, 12, 1, 14)),
        ("Tue 1 Dec, 09:00", utc(2026, 12, 1, 14)),  # our own confirmation format
        ("Jan 5 9am", utc(2027, 1, 5, 14)),  # gone by this year: next year
        ("Nov 28 5pm", utc(2026, 11, 28, 22)),  # today, later on
        ("now", NOW),
    ],
)
def test_accepted_formats_new_york(text: str, expected: datetime) -> None:
    got = parse_when(text, NY, NOW)
    assert got == expected
    assert got.tzinfo == UTC


def test_accepts_zoneinfo_object_and_naive_now_as_utc() -> None:
    assert parse_when("tomorrow 9am", ZoneInfo(NY), NOW.replace(tzinfo=None)) == utc(2026, 11, 29, 14)


def test_now_defaults_to_the_clock() -> None:
    with freeze_time("2026-11-28 14:00:00"):
        assert parse_when("in 2 hours", NY) == utc(2026, 11, 28, 16)
        assert parse_when("tomorrow 9am", LON) == utc(2026, 11, 29, 9)


@pytest.mark.parametrize(
    ("tz", "text", "expected", "described"),
    [
        # 19:30 IST on Sat 28 Nov.
        ("Asia/Kolkata", "tomorrow 9am", utc(2026, 11, 29, 3, 30), "Sun 29 Nov, 09:00 IST, in 13 hours 30 minutes"),
        ("Asia/Kolkata", "21:00", utc(2026, 11, 28, 15, 30), "Sat 28 Nov, 21:00 IST, in 1 hour 30 minutes"),
        # 01:00 AEDT on Sun 29 Nov: "9am" is later today, not tomorrow.
        ("Australia/Sydney", "9am", utc(2026, 11, 28, 22), "Sun 29 Nov, 09:00 AEDT, in 8 hours"),
        ("Australia/Sydney", "today 5pm", utc(2026, 11, 29, 6), "Sun 29 Nov, 17:00 AEDT, in 16 hours"),
        # 03:00 NZDT on Sun 29 Nov.
        ("Pacific/Auckland", "monday 9am", utc(2026, 11, 29, 20), "Mon 30 Nov, 09:00 NZDT, in 1 day 6 hours"),
        ("Pacific/Auckland", "tomorrow 9am", utc(2026, 11, 29, 20), "Mon 30 Nov, 09:00 NZDT, in 1 day 6 hours"),
        (LON, "tomorrow 9am", utc(2026, 11, 29, 9), "Sun 29 Nov, 09:00 GMT, in 19 hours"),
    ],
)
def test_other_zones(tz: str, text: str, expected: datetime, described: str) -> None:
    got = parse_when(text, tz, NOW)
    assert got == expected
    assert describe_when(got, tz, NOW) == described


# --------------------------------------------------------------------------- DST


def test_in_7_days_keeps_local_time_across_march_switch_new_york() -> None:
    now = utc(2027, 3, 10, 14)  # Wed 10 Mar 2027 09:00 EST; clocks go forward on 14 Mar
    got = parse_when("in 7 days", NY, now)
    assert got == utc(2027, 3, 17, 13)  # 09:00 EDT
    assert describe_when(got, NY, now) == "Wed 17 Mar, 09:00 EDT, in 7 days"
    # Hours are elapsed time: 168 hours later is 10:00 on the new clock.
    assert parse_when("in 168 hours", NY, now) == utc(2027, 3, 17, 14)


def test_in_7_days_keeps_local_time_across_november_switch_new_york() -> None:
    now = utc(2026, 10, 28, 13)  # Wed 28 Oct 2026 09:00 EDT; clocks go back on 1 Nov
    got = parse_when("in 7 days", NY, now)
    assert got == utc(2026, 11, 4, 14)  # 09:00 EST
    assert describe_when(got, NY, now) == "Wed 4 Nov, 09:00 EST, in 7 days"
    assert parse_when("next wednesday 9am", NY, now) == got


def test_in_7_days_keeps_local_time_across_march_switch_london() -> None:
    now = utc(2027, 3, 24, 9)  # Wed 24 Mar 2027 09:00 GMT; BST from 28 Mar
    got = parse_when("in 7 days", LON, now)
    assert got == utc(2027, 3, 31, 8)
    assert describe_when(got, LON, now) == "Wed 31 Mar, 09:00 BST, in 7 days"


def test_in_7_days_keeps_local_time_across_october_switch_london() -> None:
    now = utc(2026, 10, 21, 8)  # Wed 21 Oct 2026 09:00 BST; GMT from 25 Oct
    got = parse_when("in 7 days", LON, now)
    assert got == utc(2026, 10, 28, 9)
    assert describe_when(got, LON, now) == "Wed 28 Oct, 09:00 GMT, in 7 days"


def test_spring_forward_gap_is_refused_with_explanation() -> None:
    now = utc(2027, 3, 10, 14)
    with pytest.raises(WhenError) as err:
        parse_when("2027-03-14 02:30", NY, now)
    assert str(err.value) == (
        "'2027-03-14 02:30' doesn't exist in America/New_York: that night the clocks jump from 02:00 "
        'to 03:00, so 02:00-02:59 never happens. Give another time, e.g. "2027-03-14 03:30".'
    )
    with pytest.raises(WhenError, match=r"clocks jump from 01:00 to 02:00"):
        parse_when("Mar 28 1:30am", LON, utc(2027, 3, 20))
    with pytest.raises(WhenError, match=r"\(2026-10-04 02:15\) doesn't exist in Australia/Sydney"):
        parse_when("Oct 4 2:15am", "Australia/Sydney", utc(2026, 9, 1))
    # The edges of the gap exist.
    assert parse_when("2027-03-14 01:59", NY, now) == utc(2027, 3, 14, 6, 59)
    assert parse_when("2027-03-14 03:00", NY, now) == utc(2027, 3, 14, 7)


def test_in_n_days_landing_in_gap_moves_forward() -> None:
    now = utc(2027, 3, 7, 7, 30)  # Sun 7 Mar 02:30 EST
    assert parse_when("in 7 days", NY, now) == utc(2027, 3, 14, 7, 30)  # 03:30 EDT


def test_fall_back_ambiguous_time_takes_first_occurrence() -> None:
    now = utc(2026, 10, 30, 12)
    assert parse_when("2026-11-01 01:30", NY, now) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert parse_when("2026-10-25 01:30", LON, utc(2026, 10, 20)) == utc(2026, 10, 25, 0, 30)  # BST


# --------------------------------------------------------------------------- refusals


def test_past_time_message() -> None:
    with pytest.raises(WhenError) as err:
        parse_when("2026-11-20 09:00", NY, NOW)
    assert str(err.value) == (
        "'2026-11-20 09:00' (Fri 20 Nov, 09:00 EST) is in the past. "
        'Give a future time, e.g. "tomorrow 9am" or "2026-11-29 09:00".'
    )


@pytest.mark.parametrize("text", ["today 8am", "Nov 28 8:59am", "2026-11-28T13:59:59Z", "2026-11-28T08:00:00-05:00"])
def test_past_times_refused(text: str) -> None:
    with pytest.raises(WhenError, match="is in the past"):
        parse_when(text, NY, NOW)


def test_more_than_max_days_ahead() -> None:
    assert parse_when("in 365 days", NY, NOW) == utc(2027, 11, 28, 14)
    with pytest.raises(WhenError) as err:
        parse_when("2027-11-28 09:01", NY, NOW)
    assert str(err.value) == (
        "'2027-11-28 09:01' (Sun 28 Nov 2027, 09:01 EST) is more than 365 days ahead. Give a time within 365 days."
    )
    with pytest.raises(WhenError, match="more than 365 days ahead"):
        parse_when("in 366 days", NY, NOW)
    with pytest.raises(WhenError, match="more than 30 days ahead"):
        parse_when("in 31 days", NY, NOW, max_days=30)
    with pytest.raises(WhenError, match="more than 365 days ahead"):
        parse_when("in 99999999999999 days", NY, NOW)


def test_unreadable_message() -> None:
    with pytest.raises(WhenError) as err:
        parse_when("blah", NY, NOW)
    assert str(err.value) == (
        "Couldn't read 'blah' as a time. Try \"2026-12-01 09:00\", \"tomorrow 9am\", \"in 2 hours\" "
        "or ISO 8601 with an offset like 2026-12-01T09:00:00-05:00."
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2026-12-01", "has no time. Add one"),
        ("tomorrow", "has no time. Add one, e.g. \"tomorrow 9am\""),
        ("monday", "has no time"),
        ("Dec 1", "has no time"),
        ("12/01 9am", "is ambiguous"),
        ("13pm", "isn't an hour on a 12-hour clock"),
        ("25:00", "isn't a time of day"),
        ("10:75", "isn't a time of day"),
        ("Feb 30 9am", "isn't a real date"),
        ("2026-02-30 09:00", "isn't a real date"),
        ("2026-13-01 09:00", "there is no month 13"),
        ("Mon 1 Dec 09:00", "1 Dec 2026 is a Tuesday, not a Monday"),
        ("in a while", "Couldn't read 'in a while' as a delay"),
        ("in 3 months", "as a delay"),
        ("", "No time given"),
        ("9", "Couldn't read '9' as a time"),
        ("x" * 500, "too long"),
    ],
)
def test_refusals(text: str, fragment: str) -> None:
    with pytest.raises(WhenError, match=fragment.replace("(", r"\(")):
        parse_when(text, NY, NOW)


def test_unknown_zone() -> None:
    with pytest.raises(WhenError, match="Unknown time zone 'Mars/Olympus'"):
        parse_when("tomorrow 9am", "Mars/Olympus", NOW)


def test_when_error_is_value_error() -> None:
    assert issubclass(WhenError, ValueError)


# --------------------------------------------------------------------------- describe_when


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (utc(2026, 12, 1, 14), "Tue 1 Dec, 09:00 EST, in 3 days"),
        (NOW + timedelta(minutes=45), "Sat 28 Nov, 09:45 EST, in 45 minutes"),
        (NOW + timedelta(hours=2), "Sat 28 Nov, 11:00 EST, in 2 hours"),
        (NOW + timedelta(minutes=1), "Sat 28 Nov, 09:01 EST, in 1 minute"),
        (NOW + timedelta(seconds=59), "Sat 28 Nov, 09:00 EST, now"),
        (NOW, "Sat 28 Nov, 09:00 EST, now"),
        (NOW + timedelta(days=1), "Sun 29 Nov, 09:00 EST, in 1 day"),
        (NOW + timedelta(days=2, hours=5), "Mon 30 Nov, 14:00 EST, in 2 days 5 hours"),
        (utc(2027, 1, 1, 14), "Fri 1 Jan 2027, 09:00 EST, in 34 days"),
        (NOW - timedelta(minutes=10), "Sat 28 Nov, 08:50 EST, 10 minutes ago"),
    ],
)
def test_describe_when(when: datetime, expected: str) -> None:
    assert describe_when(when, NY, NOW) == expected


def test_describe_when_year_is_judged_in_the_users_zone() -> None:
    # 31 Dec 23:30 in New York is already 2027 in UTC; the New York year is still 2026.
    now = utc(2027, 1, 1, 4, 0)  # 23:00 EST on 31 Dec 2026
    assert describe_when(utc(2027, 1, 1, 4, 30), NY, now) == "Thu 31 Dec, 23:30 EST, in 30 minutes"
    assert describe_when(utc(2027, 1, 1, 5, 30), NY, now) == "Fri 1 Jan 2027, 00:30 EST, in 1 hour 30 minutes"


def test_parse_then_describe_round_trip() -> None:
    for text in ["in 45 minutes", "in 2 hours", "in 3 days"]:
        when = parse_when(text, NY, NOW)
        assert describe_when(when, NY, NOW).endswith(", " + text)
