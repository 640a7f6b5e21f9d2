"""ConsentBook and the send-path checks: keywords, provider events and errors, managers, quiet hours."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.core.config import Settings
from bot.core.consent.book import ConsentBook, ConsentDenied
from bot.core.consent.quiet import QuietPolicy
from bot.core.senders import Senders
from bot.core.sending import QuietPrompt, SendRequest, SendService, UserError
from providers.inbound import ConsentEvent
from providers.sandbox import SandboxProvider
from storage.conversations import ConversationQueries
from storage.store import MessageRow, Store

A = "+16175551212"  # Boston: America/New_York
_keys = itertools.count()
# 2026-11-30 04:10 UTC = 23:10 in Boston (quiet); 14:00 UTC = 09:00 there (open).
NIGHT = datetime(2026, 11, 30, 4, 10, tzinfo=UTC).timestamp()
DAY = datetime(2026, 11, 30, 14, 0, tzinfo=UTC).timestamp()


def book_and_service(tmp_path: Path, **settings: Any) -> tuple[ConsentBook, SendService]:
    cfg = Settings(_env_file=None, **settings)  # type: ignore[call-arg]
    store = Store(str(tmp_path / "c.db"))
    book = ConsentBook(store, cfg)
    senders = Senders({"sandbox": SandboxProvider()}, "sandbox")
    return book, SendService(store, senders, consent=book, quiet=QuietPolicy(cfg.sms_quiet_hours))


def req(**kw: Any) -> SendRequest:
    return SendRequest(**{"to": A, "text": "hi", "idem_key": f"k{next(_keys)}", **kw})


def test_stop_opts_out_refuses_sends_and_start_restores(tmp_path: Path) -> None:
    book, service = book_and_service(tmp_path)
    action = book.on_inbound_text(A, "twlo", "  stop!! ")
    assert action.kind == "opt_out" and action.families == ("sms",) and action.reply_text is None
    assert "replied STOP: opted out (SMS)" in (action.thread_note or "")
    with pytest.raises(UserError) as err:
        service.submit(req())
    assert "opted out on" in err.value.message and "via STOP reply" in err.value.message
    assert "only they can opt back in" in err.value.message
    assert service.store.counts_by_status() == {}  # nothing stored
    # WhatsApp is another family: still allowed (inside the 24-hour window the customer opened).
    now = time.time()
    ConversationQueries(service.store).on_inbound(A, "sandbox", name=None, text="hi", at=now, whatsapp=True, now=now)
    service.submit(req(channel="whatsapp"))
    back = book.on_inbound_text(A, "twlo", "START")
    assert back.kind == "opt_in" and "opted back in (SMS)" in (back.thread_note or "")
    service.submit(req())
    assert [e.action for e in book.queries.history(A)] == ["opt_out", "opt_in"]


def test_confirmation_once_per_opt_out_and_help_reply(tmp_path: Path) -> None:
    book, service = book_and_service(tmp_path, sms_optout_confirmation="You are unsubscribed.",
                                     sms_help_text="Acme: help@example.com")
    assert book.on_inbound_text(A, "twlo", "STOP").reply_text == "You are unsubscribed."
    assert book.on_inbound_text(A, "twlo", "unsubscribe").reply_text is None  # at most once
    assert book.on_inbound_text(A, "twlo", "help").reply_text == "Acme: help@example.com"
    assert book.on_inbound_text(A, "twlo", "hello").kind is None
    # The confirmation and HELP reply are the only texts an opted-out number may get.
    service.submit(req(text="You are unsubscribed.", consent_exempt=True, conversation_reply=True))
    with pytest.raises(UserError):
        service.submit(req(conversation_reply=True))


def test_provider_events_and_errors_record_their_source(tmp_path: Path) -> None:
    book, _ = book_and_service(tmp_path)
    note = book.apply_consent_event(ConsentEvent(action="opted_out", number=A, source="textus_event",
                                                 provider="textus"))
    assert note is not None and "via a TextUs opt-out event" in note
    states = book.queries.opted_out([A])
    assert set(states) == {(A, "sms"), (A, "whatsapp")}  # no channel given: both families
    book.apply_consent_event(ConsentEvent(action="opted_in", number=A, source="textus_event", provider="textus"))
    assert book.queries.opted_out([A]) == {}
    row = MessageRow(id=1, idem_key="x", sender="twlo", to_number=A, payload={}, status="failed", due_at=0,
                     created_at=0, updated_at=0, error="Attempt to send to unsubscribed recipient (code 21610)",
                     consent_family="sms")
    assert book.record_send_error(row) is True
    state = book.queries.state(A, "sms")
    assert state is not None and state.source == "provider_error_21610" and state.by_recipient


def test_managers_only_and_manual_optin_never_lifts_the_recipients(tmp_path: Path) -> None:
    book, _ = book_and_service(tmp_path, sms_bulk_users="UBOSS")
    with pytest.raises(ConsentDenied):
        book.manual_opt_out("UOTHER", A)
    assert "is opted out (SMS, WhatsApp)" in book.manual_opt_out("UBOSS", A, "asked by phone")
    assert "opted back in (SMS, WhatsApp)" in book.manual_opt_in("UBOSS", A)
    book.on_inbound_text(A, "twlo", "STOP")
    answer = book.manual_opt_in("UBOSS", A)
    assert "only they can opt back in" in answer and book.queries.state(A, "sms").opted_out  # type: ignore[union-attr]


def test_quiet_hours_ask_for_one_off_sends_and_move_schedules(tmp_path: Path) -> None:
    _, service = book_and_service(tmp_path, sms_quiet_hours="21:00-08:00")
    with pytest.raises(QuietPrompt) as prompt:
        service.prepare(req(), now=NIGHT)
    assert prompt.value.prompt.words() == ("It is 23:10 for this recipient (quiet hours): send now, "
                                           "or send at 08:00?")
    assert service.prepare(req(quiet_ok=True), now=NIGHT).new.due_at == NIGHT  # "send now"
    assert service.prepare(req(conversation_reply=True), now=NIGHT).new.due_at == NIGHT  # replies not held
    assert service.prepare(req(), now=DAY).new.due_at == DAY
    when = datetime.fromtimestamp(NIGHT + 600, UTC)
    moved = service.prepare(req(when=when), now=NIGHT)
    assert datetime.fromtimestamp(moved.new.due_at, UTC) == datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # 08:00 EST


def test_quiet_hours_hold_bulk_rows_per_recipient_zone_until_the_window_opens(tmp_path: Path) -> None:
    from bot.core.bulk.engine import BulkEngine
    from bot.core.input.recipients import parse_pasted

    book, service = book_and_service(tmp_path, sms_quiet_hours="21:00-08:00")
    engine = BulkEngine(service.store, service.senders, consent=book, quiet=service.quiet)
    tokyo = "+81312345678"  # 13:10 in Tokyo at NIGHT: not held
    book.opt_out("+16175551213", ("sms",), source="keyword_STOP", by_recipient=True)
    plan = engine.draft(parse_pasted(f"{A}\n+16175551213\n{tokyo}"), "Hi", "sandbox", allow_duplicates=False,
                        when=None, idem_key="q1", now=NIGHT, user_tz="America/New_York")
    assert plan.opted_out == 1 and plan.valid == 2 and plan.quiet_waiting == 1
    assert plan.notes[0] == "1 opted out, excluded."
    assert plan.notes[1].startswith("1 recipient in quiet hours (SMS_QUIET_HOURS, their local time): it waits")
    assert "Mon 30 Nov 2026, 08:00 EST" in plan.notes[1]
    engine.jobs.activate(plan.job_id, now=NIGHT)  # confirmed at once (confirm() reads the real clock)
    opens = datetime(2026, 11, 30, 13, 0, tzinfo=UTC).timestamp()  # 08:00 in Boston
    store = service.store
    first, _, _ = store.claim_sending("w", limit=10, lease=30, now=NIGHT)
    assert [r.to_number for r in first] == [tokyo]
    counts = engine.jobs.counts(plan.job_id, now=NIGHT)
    assert counts["_quiet_waiting"] == 1 and counts["_quiet_until"] == int(opens)
    assert store.claim_sending("w", limit=10, lease=30, now=opens - 1)[0] == []  # never early
    assert [r.to_number for r in store.claim_sending("w", limit=10, lease=30, now=opens)[0]] == [A]


def test_the_confirmation_goes_out_once_to_the_opted_out_number_and_nothing_else_can(tmp_path: Path) -> None:
    from bot.core.consent.replies import reply_request
    from bot.core.dispatch import Dispatcher

    book, service = book_and_service(tmp_path, sms_optout_confirmation="Unsubscribed. Reply START to resubscribe.")
    action = book.on_inbound_text(A, "sandbox", "STOP")
    reply = reply_request(action, A, "sandbox", "in-1")
    assert reply is not None and reply.consent_exempt and reply.conversation_reply
    mid, created = service.submit(reply)
    assert created and service.submit(reply) == (mid, False)  # a webhook retry sends nothing twice
    with pytest.raises(UserError, match="Only the opt-out confirmation"):
        service.submit(req(text="Buy now!", consent_exempt=True))
    provider = service.senders.get("sandbox")
    dispatcher = Dispatcher(service.store, service.senders, None, rates={"sandbox": 0.0})
    row = service.store.claim_one(mid, dispatcher.owner)
    assert row is not None and dispatcher.process(row) is not None
    assert [m.text for m in provider.sent] == ["Unsubscribed. Reply START to resubscribe."]  # type: ignore[union-attr]
    assert reply_request(book.on_inbound_text(A, "sandbox", "STOP"), A, "sandbox", "in-2") is None  # once
    dispatcher.stop(timeout=1)


def test_a_bad_quiet_hours_setting_says_what_to_fix() -> None:
    from bot.core.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match=r"^SMS_QUIET_HOURS: use HH:MM-HH:MM"):
        load_settings(_env_file=None, sms_quiet_hours="9pm to 8am")
    with pytest.raises(ConfigError, match="the start time 25:00 is not a time of day"):
        load_settings(_env_file=None, sms_quiet_hours="25:00-08:00")
    assert load_settings(_env_file=None, sms_quiet_hours=" 21:00 - 08:00 ").sms_quiet_hours == "21:00-08:00"
    assert load_settings(_env_file=None, sms_quiet_hours="").sms_quiet_hours is None


def test_a_draft_confirmed_after_quiet_hours_began_is_held_then(tmp_path: Path) -> None:
    from bot.core.bulk.draft import recheck_quiet
    from bot.core.bulk.engine import BulkEngine
    from bot.core.input.recipients import parse_pasted

    book, service = book_and_service(tmp_path, sms_quiet_hours="21:00-08:00")
    engine = BulkEngine(service.store, service.senders, consent=book, quiet=service.quiet)
    evening = datetime(2026, 12, 1, 1, 50, tzinfo=UTC).timestamp()  # 20:50 in Boston: open
    plan = engine.draft(parse_pasted(A), "Hi", "sandbox", allow_duplicates=False, when=None, idem_key="late",
                        now=evening)
    assert plan.quiet_waiting == 0
    assert recheck_quiet(engine.jobs, service.quiet, plan.job_id, evening, evening + 30, None) == 0  # soon: as drafted
    assert recheck_quiet(engine.jobs, service.quiet, plan.job_id, evening, evening + 1200, None) == 1  # 21:10
    [(_, _, due)] = engine.jobs.draft_rows(plan.job_id)
    assert datetime.fromtimestamp(due, UTC) == datetime(2026, 12, 1, 13, 0, tzinfo=UTC)  # 08:00 in Boston
