"""Scheduling rules with a frozen clock: zones, DST, past and far times, misfire grace,
cancel/edit racing the worker, and at-most-once when a worker dies mid-send."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from slack_sdk import WebClient

from bot.core.config import Settings
from bot.core.dispatch import Dispatcher
from bot.core.input.timeparse import parse_when
from bot.core.senders import Senders
from bot.core.sending import SendRequest, SendService, UserError
from bot.slack.announcer import Notifier
from bot.slack.blocks.schedules import EditMeta, local_input
from bot.slack.context import AppContext
from bot.slack.listeners.schedules import EditForm, apply_edit, cancel_schedule, send_missed_now
from bot.slack.listeners.send import fast_send
from providers.base import OutboundMessage, SendResult
from providers.sandbox import SandboxProvider
from storage.store import MessageRow, Store

_keys = itertools.count()


class RecordingProvider(SandboxProvider):
    """The sandbox, counting calls; `crash` makes the call die like a killed worker."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[float, OutboundMessage]] = []
        self.crash = False

    def send(self, msg: OutboundMessage) -> SendResult:
        self.calls.append((time.time(), msg))
        if self.crash:
            raise SystemExit("worker killed mid-call")  # not an Exception: nothing in the worker catches it
        return super().send(msg)


class RecordingNotifier:
    """Stands in for Notifier in the worker: what it would have said, in order."""

    def __init__(self) -> None:
        self.said: list[tuple[str, MessageRow]] = []

    def announce(self, row: MessageRow) -> MessageRow:
        self.said.append(("announce", row))
        return row

    def report_outcome(self, row: MessageRow) -> None:
        self.said.append(("outcome", row))

    def report_missed(self, row: MessageRow) -> None:
        self.said.append(("missed", row))


def make_ctx(tmp_path: Path, **settings: Any) -> tuple[AppContext, RecordingProvider]:
    cfg = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 's.db'}", **settings)  # type: ignore[call-arg]
    store = Store(cfg.database_path)
    provider = RecordingProvider()
    senders = Senders({"sandbox": provider}, "sandbox")
    client = WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/")
    ctx = AppContext(settings=cfg, store=store, senders=senders, service=SendService(store, senders),
                     notifier=Notifier(client, store, senders.label), client=client)
    return ctx, provider


def body(user: str = "U1") -> dict[str, Any]:
    return {"user_id": user, "user_name": user.lower(), "channel_id": "C1", "team_id": "T1",
            "trigger_id": f"trig-{next(_keys)}"}


def slash_send(ctx: AppContext, args: str, tz: str, user: str = "U1") -> str:
    ctx._tz_cache[user] = (time.monotonic(), tz)  # what users.info would say
    return fast_send(ctx, body(user), args)


def schedule(ctx: AppContext, when: datetime, user: str = "U1", text: str = "Hi") -> int:
    mid, _ = ctx.service.submit(SendRequest(to="+16175551212", text=text, when=when, idem_key=f"k{next(_keys)}",
                                            user_id=user, user_tz="America/New_York", channel_id="C1"))
    return mid


# -- parsing in the user's zone, as /sms send confirms it

SAT_9AM_NY = "2026-11-28 14:00:00"  # Sat 28 Nov 2026, 09:00 EST


@pytest.mark.parametrize(
    ("tz", "at", "local", "confirmation"),
    [
        ("America/New_York", "2026-12-01 09:00", "2026-12-01 09:00", "Tue 1 Dec, 09:00 EST, in 3 days"),
        ("Asia/Kolkata", "tomorrow 9am", "2026-11-29 09:00", "Sun 29 Nov, 09:00 IST, in 13 hours 30 minutes"),
        ("Europe/London", "in 2 hours", "2026-11-28 16:00", "Sat 28 Nov, 16:00 GMT, in 2 hours"),
        ("Australia/Sydney", "Dec 1 9am", "2026-12-01 09:00", "Tue 1 Dec, 09:00 AEDT, in 2 days 8 hours"),
        ("Asia/Tokyo", "2026-12-01T09:00:00-05:00", "2026-12-01 23:00", "Tue 1 Dec, 23:00 JST, in 3 days"),
    ],
)
def test_send_at_is_read_in_the_users_zone_and_confirmed_with_zone_and_distance(
    tmp_path: Path, tz: str, at: str, local: str, confirmation: str
) -> None:
    ctx, _ = make_ctx(tmp_path)
    with freeze_time(SAT_9AM_NY):
        reply = slash_send(ctx, f'--at "{at}" +16175551212 Hello', tz)
    assert reply == f":alarm_clock: Scheduled #1 for {confirmation}."
    row = ctx.store.get(1)
    assert row is not None and row.scheduled and row.user_tz == tz
    assert local_input(row.due_at, tz) == local


@pytest.mark.parametrize(
    ("at", "fragment"),
    [
        ("2026-11-28 08:00", "'2026-11-28 08:00' (Sat 28 Nov, 08:00 EST) is in the past"),
        ("yesterday 9am", "Couldn't read 'yesterday 9am' as a time"),
        ("in 400 days", "'in 400 days' is more than 365 days ahead"),
        ("2027-12-01 09:00", "'2027-12-01 09:00' (Wed 1 Dec 2027, 09:00 EST) is more than 365 days ahead"),
        ("12/01 9am", "is ambiguous"),
    ],
)
def test_bad_times_are_refused_repeating_what_was_understood(tmp_path: Path, at: str, fragment: str) -> None:
    ctx, _ = make_ctx(tmp_path)
    with freeze_time(SAT_9AM_NY):
        reply = slash_send(ctx, f'--at "{at}" +16175551212 Hello', "America/New_York")
    assert reply.startswith(":warning: ") and fragment in reply
    assert ctx.store.counts_by_status() == {}


def test_service_refuses_past_and_beyond_365_days_whoever_calls_it(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)
    now = datetime(2026, 11, 28, 14, tzinfo=UTC).timestamp()
    req = SendRequest(to="+16175551212", text="x", idem_key="a", when=datetime(2026, 11, 28, 13, tzinfo=UTC))
    with pytest.raises(UserError, match="in the past") as past:
        ctx.service.prepare(req, now=now)
    assert past.value.field == "when"
    far = req.model_copy(update={"when": datetime(2027, 11, 29, 14, tzinfo=UTC)})
    with pytest.raises(UserError, match="365 days"):
        ctx.service.prepare(far, now=now)


# -- DST: 09:00 stays 09:00 local across the switches


@pytest.mark.parametrize(
    ("frozen", "text", "utc_hour", "abbr"),
    [
        ("2027-03-08 14:00:00", "in 7 days", 13, "EDT"),  # Mon 8 Mar 09:00 EST -> Mon 15 Mar 09:00 EDT
        ("2027-03-08 14:00:00", "2027-03-15 09:00", 13, "EDT"),
        ("2027-03-08 14:00:00", "2027-03-12 09:00", 14, "EST"),
        ("2027-11-01 13:00:00", "in 7 days", 14, "EST"),  # Mon 1 Nov 09:00 EDT -> Mon 8 Nov 09:00 EST
        ("2027-11-01 13:00:00", "2027-11-08 09:00", 14, "EST"),
    ],
)
def test_a_9am_schedule_across_dst_switches_stays_9am_local_in_the_stored_row(
    tmp_path: Path, frozen: str, text: str, utc_hour: int, abbr: str
) -> None:
    ctx, _ = make_ctx(tmp_path)
    tz = "America/New_York"
    with freeze_time(frozen):
        assert datetime.now(UTC).astimezone(ZoneInfo(tz)).hour == 9  # every case starts at 09:00 local
        reply = slash_send(ctx, f'--at "{text}" +16175551212 Weekly standup', tz)
    row = ctx.store.get(1)
    assert row is not None, reply
    due = datetime.fromtimestamp(row.due_at, UTC)
    assert due.hour == utc_hour
    local = due.astimezone(ZoneInfo(tz))
    assert (local.hour, local.minute, local.tzname()) == (9, 0, abbr)
    assert f"09:00 {abbr}" in reply


def test_editing_across_the_march_switch_keeps_the_local_time(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)
    tz = "America/New_York"
    with freeze_time("2027-03-10 15:00:00"):  # Wed 10 Mar, 10:00 EST
        mid = schedule(ctx, parse_when("2027-03-12 09:00", tz))
        meta = EditMeta(id=mid, tz=tz, when0=local_input(ctx.store.get(mid).due_at, tz))
        out = apply_edit(ctx, meta, EditForm(when="2027-03-16 09:00", to="+16175551212", text="Hi"), "U1")
    assert out.ok and out.changes == ["time → Tue 16 Mar, 09:00 EDT, in 5 days 23 hours"]
    assert datetime.fromtimestamp(ctx.store.get(mid).due_at, ZoneInfo(tz)).strftime("%H:%M %Z") == "09:00 EDT"


# -- misfire grace after downtime


def test_after_downtime_rows_within_grace_are_sent_older_ones_become_missed(tmp_path: Path) -> None:
    ctx, provider = make_ctx(tmp_path)
    notifier = RecordingNotifier()
    with freeze_time("2026-11-28 09:00:00"):
        old = schedule(ctx, datetime(2026, 11, 28, 12, 0, tzinfo=UTC), text="two hours late")
        edge = schedule(ctx, datetime(2026, 11, 28, 13, 45, 1, tzinfo=UTC), text="just inside grace")
        outside = schedule(ctx, datetime(2026, 11, 28, 13, 44, 59, tzinfo=UTC), text="just outside grace")
        future = schedule(ctx, datetime(2026, 11, 28, 14, 5, tzinfo=UTC), text="not yet")
    # smsbot was down; it comes back at 14:00 with the default 15-minute grace.
    with freeze_time("2026-11-28 14:00:00"):
        worker = Dispatcher(ctx.store, ctx.senders, notifier, misfire_grace=900, rates={"sandbox": 0})  # type: ignore[arg-type]
        assert worker.run_once() == 1
        worker.stop()
    assert [m.text for _, m in provider.calls] == ["just inside grace"]
    statuses = {i: ctx.store.get(i).status for i in (old, edge, outside, future)}
    assert statuses == {old: "missed", edge: "sent", outside: "missed", future: "pending"}
    assert sorted(r.id for kind, r in notifier.said if kind == "missed") == [old, outside]

    # "Send now" on a missed one: pending again, due now, and the worker sends it.
    with freeze_time("2026-11-28 14:01:00"):
        res = send_missed_now(ctx, old, "U1")
        assert res.ok and res.text == f":outbox_tray: Sending #{old} now, as <@U1> asked."
        again = send_missed_now(ctx, edge, "U1")
        assert not again.ok and again.text == f":warning: #{edge} has already been sent; nothing was done."
        worker = Dispatcher(ctx.store, ctx.senders, notifier, misfire_grace=900, rates={"sandbox": 0})  # type: ignore[arg-type]
        assert worker.run_once() == 1
        worker.stop()
    assert [m.text for _, m in provider.calls][-1] == "two hours late"
    assert ctx.store.get(old).status == "sent"


def test_the_dispatcher_wakes_for_a_due_time_not_for_its_next_poll(tmp_path: Path) -> None:
    ctx, provider = make_ctx(tmp_path)
    due = time.time() + 1.0
    schedule(ctx, datetime.fromtimestamp(due, UTC), text="on time")
    worker = Dispatcher(ctx.store, ctx.senders, RecordingNotifier(), poll_interval=120,  # type: ignore[arg-type]
                        rates={"sandbox": 0})
    worker.start()
    try:
        # Waiting on the poll would take two minutes; a generous 30 s is no race on a busy box.
        deadline = time.monotonic() + 30
        while not provider.calls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        worker.stop()
    assert [(m.text, sent_at >= due) for sent_at, m in provider.calls] == [("on time", True)]


def test_send_now_wakes_the_dispatcher(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)

    class Waker:
        woken = 0

        def wake(self) -> None:
            self.woken += 1

    ctx.dispatcher = Waker()
    mid = schedule(ctx, datetime.fromtimestamp(time.time() + 3600, UTC))
    ctx.store.claim_due("w", now=time.time() + 7200, misfire_grace=60)  # it misfires
    assert ctx.store.get(mid).status == "missed"
    assert send_missed_now(ctx, mid, "U1").ok and ctx.dispatcher.woken == 1


# -- cancel / edit racing the worker


@pytest.mark.parametrize("stage", ["claimed", "sending", "sent"])
def test_cancel_and_edit_after_the_worker_took_the_row_change_nothing_and_say_so(tmp_path: Path, stage: str) -> None:
    ctx, _ = make_ctx(tmp_path)
    with freeze_time(SAT_9AM_NY):
        mid = schedule(ctx, datetime(2026, 11, 28, 15, tzinfo=UTC), text="Original")
        meta = EditMeta(id=mid, tz="America/New_York", when0=local_input(ctx.store.get(mid).due_at, "America/New_York"))
    due = ctx.store.get(mid).due_at
    ctx.store.claim_due("worker-1", now=due)
    if stage in ("sending", "sent"):
        assert ctx.store.mark_sending(mid, "worker-1", now=due)
    if stage == "sent":
        ctx.store.record_outcome(mid, "sent", provider_message_id="m1", now=due)
    expected = {"claimed": "is already being sent", "sending": "is already being sent",
                "sent": "has already been sent"}[stage]
    with freeze_time(SAT_9AM_NY):
        canceled = cancel_schedule(ctx, mid, "U1")
        edited = apply_edit(ctx, meta, EditForm(when="tomorrow 9am", to="+16175550000", text="Changed"), "U1")
    assert not canceled.ok and canceled.text == f":warning: #{mid} {expected}; nothing was canceled."
    assert not edited.ok and edited.text == f":warning: #{mid} {expected}; nothing was changed."
    row = ctx.store.get(mid)
    assert row.status == stage and row.summary == "Original" and row.to_number == "+16175551212" and row.due_at == due


def test_edit_loses_the_race_when_the_worker_claims_between_read_and_write(tmp_path: Path, monkeypatch: Any) -> None:
    ctx, _ = make_ctx(tmp_path)
    with freeze_time(SAT_9AM_NY):
        mid = schedule(ctx, datetime(2026, 11, 28, 15, tzinfo=UTC), text="Original")
    real_edit = ctx.store.edit

    def claimed_first(message_id: int, **kw: Any) -> Any:
        ctx.store.claim_due("worker-1", now=ctx.store.get(message_id).due_at)
        return real_edit(message_id, **kw)

    monkeypatch.setattr(ctx.store, "edit", claimed_first)
    with freeze_time(SAT_9AM_NY):
        meta = EditMeta(id=mid, tz="UTC", when0="2026-11-28 15:00")
        out = apply_edit(ctx, meta, EditForm(when="2026-11-28 15:00", to="+16175551212", text="New"), "U1")
    assert not out.ok and out.text == f":warning: #{mid} is already being sent; nothing was changed."
    assert ctx.store.get(mid).summary == "Original"


def test_edit_revalidates_like_a_new_send(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)
    tz = "America/New_York"
    with freeze_time(SAT_9AM_NY):
        mid = schedule(ctx, parse_when("2026-12-01 09:00", tz), text="Original")
        meta = EditMeta(id=mid, tz=tz, when0="2026-12-01 09:00")

        def edit(**kw: str) -> Any:
            form = {"when": "2026-12-01 09:00", "to": "+16175551212", "text": "Original", **kw}
            return apply_edit(ctx, meta, EditForm(**form), "U1")

        assert "is in the past" in edit(when="2026-11-27 09:00").errors["when"]
        assert "more than 365 days" in edit(when="in 60 weeks").errors["when"]
        assert "Couldn't read" in edit(when="someday").errors["when"]
        assert "not a valid phone number" in edit(to="123").errors["to"]
        assert edit().text == f"Nothing changed in #{mid}." and edit().changes == []
        ok = edit(when="2026-12-02 10:30", text="New words")
    assert ok.ok and ok.changes == ["time → Wed 2 Dec, 10:30 EST, in 4 days 1 hour", "text → “New words”"]
    row = ctx.store.get(mid)
    assert row.summary == "New words" and row.payload["text"] == "New words"
    assert local_input(row.due_at, tz) == "2026-12-02 10:30"


def test_only_the_owner_or_bulk_users_may_cancel(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, sms_bulk_users="U9")
    mid = schedule(ctx, datetime.fromtimestamp(time.time() + 3600, UTC), user="U1")
    refused = cancel_schedule(ctx, mid, "U2")
    assert not refused.ok and "only they or people in SMS_BULK_USERS" in refused.text
    assert ctx.store.get(mid).status == "pending"
    assert cancel_schedule(ctx, mid, "U9").ok


def test_without_bulk_users_anyone_allowed_manages_everyones(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path)
    mid = schedule(ctx, datetime.fromtimestamp(time.time() + 3600, UTC), user="U1")
    assert cancel_schedule(ctx, mid, "U2").ok


# -- at-most-once when a worker dies mid-send


def test_a_worker_killed_during_the_provider_call_never_leads_to_a_second_send(tmp_path: Path) -> None:
    ctx, provider = make_ctx(tmp_path)
    first, second = RecordingNotifier(), RecordingNotifier()
    with freeze_time("2026-11-28 14:00:00") as clock:
        mid = schedule(ctx, datetime(2026, 11, 28, 14, 0, 30, tzinfo=UTC), text="Once at most")
        clock.tick(31)
        provider.crash = True
        dead = Dispatcher(ctx.store, ctx.senders, first, lease=120, rates={"sandbox": 0})  # type: ignore[arg-type]
        assert dead.run_once() == 1
        dead._pool.shutdown(wait=True)  # the call "happened", then the process died
        assert ctx.store.get(mid).status == "sending"
        provider.crash = False
        clock.tick(60)  # a new worker before the lease ran out: it must not touch the row
        fresh = Dispatcher(ctx.store, ctx.senders, second, lease=120, rates={"sandbox": 0})  # type: ignore[arg-type]
        assert fresh.run_once() == 0
        clock.tick(120)  # lease over: the row is unknown, reported, and not sent again
        assert fresh.run_once() == 0
        fresh.stop()
    assert len(provider.calls) == 1
    row = ctx.store.get(mid)
    assert row.status == "unknown" and "may or may not have gone out" in (row.error or "")
    assert [(k, r.status) for k, r in second.said] == [("outcome", "unknown")]
