"""Consent from customers' messages end to end (issues 13 + 14): a STOP over each provider's
signed webhook stops every send path (the fake providers' request log proves it), the thread
and the person are told why; START restores; TextUs opt-out events; HELP and the confirmation
text are sent once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from storage.consent import ConsentQueries
from tests.conftest import E2E
from tests.e2e.test_e2e_bulk import (
    confirm,
    engine,
    form_values,
    open_form,
    submit_form,
    summary_reply,
    view_text,
)
from tests.e2e.test_e2e_consent import provider_sends
from tests.e2e.test_e2e_conversations import (
    bird_inbound,
    flush,
    make,
    posts_in,
    sociocs_inbound,
    textus_inbound,
)
from tests.e2e.test_e2e_conversations_replies import reply
from tests.e2e.test_e2e_schedules import schedule, thread_text, visible
from tests.e2e.test_e2e_templates import CATALOG
from tests.e2e.test_e2e_webhooks import bird_post, sent_row, sociocs_post, textus_post

__all__ = ["make"]

TO = "+16175551212"
OTHER = "+16175551213"
HELP = "Acme Bistro: reply STOP to opt out. Help: 617-555-0100."
BYE = "Acme Bistro: you will get no more texts. Reply START to opt back in."
TEMPLATE = f"send --template appt-confirm {TO} 1=John 2=j@example.com 3=11-Jul-2024"


def inbound(via: str, text: str, mid: str) -> tuple[Callable[..., Any], dict[str, Any]]:
    """(how to post it, the payload) for a customer's SMS over `via`'s webhook."""
    if via == "bird":
        return bird_post, bird_inbound({"type": "text", "text": {"text": text}}, mid=mid)
    if via == "textus":
        return textus_post, textus_inbound(text, mid=f"/messages/{mid}")
    return sociocs_post, sociocs_inbound(text, mid=mid, sender=via)


def customer_says(e2e: E2E, via: str, text: str, mid: str) -> dict[str, Any]:
    post, payload = inbound(via, text, mid)
    resp = post(e2e, payload)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def texts_to(e2e: E2E, number: str) -> list[str]:
    """What the providers were asked to send to `number` (text or the request body)."""
    return [str((r.json or {}).get("text") or r.raw.decode()) for r in provider_sends(e2e, number)]


def textus_event(action: str, ref: str, when: datetime | None = None) -> dict[str, Any]:
    return {"@type": "WebhookDelivery", "id": ref, "action": action,
            "timestamp": (when or datetime.now(UTC)).isoformat(), "contact": {"phoneNumber": TO}}


@pytest.mark.parametrize("via", ["twlo", "bird", "textus"])
def test_a_stop_from_each_provider_stops_every_path_and_start_restores(
        make: Callable[..., E2E], tmp_path: Path, via: str) -> None:
    catalog = tmp_path / "templates.yml"
    catalog.write_text(CATALOG, encoding="utf-8")
    e2e = make(sms_templates_file=str(catalog))
    engine(e2e)
    due = schedule(e2e, 3.0)  # stored before the STOP: the claim stops it at its time
    row = sent_row(e2e, f"send --via {via} {TO} Your table is ready", message_id=2)  # the newest thread
    channel, thread = str(row.thread_channel), str(row.thread_ts)
    assert customer_says(e2e, via, "  Stop! ", "in1")["result"] == "stored"
    note = posts_in(e2e, channel, thread, "opted out")[-1]["params"]["text"]
    assert "replied STOP: opted out (SMS)" in note
    e2e.settle()
    assert len(provider_sends(e2e, TO)) == 1  # the first send only

    single = e2e.command(f"send --via {via} {TO} Hi again", user_id="U1", channel_id="C1").json()["text"]
    assert "opted out on" in single and "via STOP reply" in single and "nothing was sent" in single
    reply(e2e, channel, thread, "Are you sure?")
    refusal = e2e.slack.wait_for("chat.postEphemeral", lambda c: "Not sent:" in c["params"].get("text", ""))
    assert "via STOP reply" in refusal[-1]["params"]["text"]
    day = datetime.now(UTC).strftime("%-d %b")
    thread_text(e2e, visible(e2e, due)["response"]["ts"], f"Not sent: opted out on {day} via STOP reply", timeout=6)

    conf = submit_form(e2e, open_form(e2e), form_values(sender="twlo", pasted=f"{TO}, Ann\n{OTHER}, Bo"))["view"]
    assert "1 opted out, excluded." in view_text(conf)
    confirm(e2e, conf)
    assert "1 sent, 0 failed, 0 unknown (of 1)" in summary_reply(e2e)["params"]["text"]
    flush(e2e)
    assert len(provider_sends(e2e, TO)) == 1 and len(provider_sends(e2e, OTHER)) == 1

    # Families: an SMS STOP leaves WhatsApp open (an approved template here).
    e2e.command(TEMPLATE, user_id="U1", channel_id="C1")
    e2e.wait(lambda: len(provider_sends(e2e, TO)) == 2, 5, "the WhatsApp template")

    customer_says(e2e, via, "start", "in2")
    assert "replied START: opted back in (SMS)" in posts_in(e2e, channel, thread, "opted back in")[-1]["params"]["text"]
    e2e.command(f"send --via {via} {TO} Welcome back", user_id="U1", channel_id="C1")
    e2e.wait(lambda: len(provider_sends(e2e, TO)) == 3, 5, "the send after START")


def test_a_whatsapp_stop_refuses_the_template_and_leaves_sms_open(make: Callable[..., E2E], tmp_path: Path) -> None:
    catalog = tmp_path / "templates.yml"
    catalog.write_text(CATALOG, encoding="utf-8")
    e2e = make(sms_templates_file=str(catalog))
    customer_says(e2e, "twlowa", "STOP", "wa1")
    answer = e2e.command(TEMPLATE, user_id="U1", channel_id="C1").json()["text"]
    assert "via STOP reply" in answer and "(WhatsApp)" in answer and "nothing was sent" in answer
    e2e.command(f"send {TO} An SMS still goes", user_id="U1", channel_id="C1")
    e2e.wait(lambda: provider_sends(e2e, TO), 5, "the SMS")
    flush(e2e)
    assert texts_to(e2e, TO) == ["An SMS still goes"]


def test_a_textus_opt_out_event_does_what_stop_does(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e, f"send --via textus {TO} Your table is ready")
    event = textus_event("contact.opted_out", "/deliveries/d1")
    assert textus_post(e2e, event).json()["result"] == "consent"
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "via a TextUs opt-out event")
    answer = e2e.command(f"send --via textus {TO} Hi", user_id="U1", channel_id="C1").json()["text"]
    assert "via a TextUs opt-out event" in answer and "nothing was sent" in answer
    textus_post(e2e, textus_event("contact.opted_in", "/deliveries/d2"))
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "opted back in")
    assert textus_post(e2e, event).status_code == 200  # a late retry of the opt-out changes nothing
    e2e.command(f"send --via textus {TO} Welcome back", user_id="U1", channel_id="C1")
    e2e.wait(lambda: len(provider_sends(e2e, TO)) == 2, 5, "the send after the opt-in")
    # The opt-out API's own shape (OptOutWebhookDelivery) is read too, not refused with a 400.
    opt = {"@type": "OptOutWebhookDelivery", "id": "/deliveries/d3", "optOut": {"type": "opt-out", "phoneNumber": TO}}
    assert textus_post(e2e, opt).status_code == 200
    state = ConsentQueries(e2e.rt.store).state(TO, "sms")
    assert state is not None and state.opted_out and state.source == "textus_event"
    assert 'smsbot_opt_outs_total{provider="textus"} 2.0' in httpx.get(f"{e2e.url}/metrics").text


def test_help_is_answered_once_even_when_the_webhook_comes_twice(make: Callable[..., E2E]) -> None:
    e2e = make(sms_help_text=HELP)
    for _ in range(2):
        customer_says(e2e, "twlo", "HELP", "h1")
    customer_says(e2e, "bird", "info", "h2")
    e2e.wait(lambda: len(provider_sends(e2e, TO)) == 2, 5, "the HELP replies")
    flush(e2e)
    assert texts_to(e2e, TO)[0] == HELP and HELP in texts_to(e2e, TO)[1] and len(provider_sends(e2e, TO)) == 2


def test_the_confirmation_goes_once_per_opt_out(make: Callable[..., E2E]) -> None:
    e2e = make(sms_optout_confirmation=BYE, sms_inbox_channel="C3")
    e2e.slack.add_channel("C3", "sms-inbox", member=False)
    customer_says(e2e, "twlo", "STOP", "s1")
    customer_says(e2e, "twlo", "STOP", "s1")  # re-delivered
    customer_says(e2e, "twlo", "unsubscribe", "s2")  # already out: no second confirmation
    e2e.wait(lambda: provider_sends(e2e, TO), 5, "the confirmation")
    flush(e2e)
    assert texts_to(e2e, TO) == [BYE]
    e2e.slack.wait_for("chat.postMessage", lambda c: "except the one confirmation text" in c["params"].get("text", ""))
    customer_says(e2e, "twlo", "START", "s3")
    customer_says(e2e, "twlo", "STOP", "s4")  # a new opt-out: its own confirmation
    e2e.wait(lambda: len(provider_sends(e2e, TO)) == 2, 5, "the second confirmation")
    flush(e2e)
    assert texts_to(e2e, TO) == [BYE, BYE]
    assert 'smsbot_opt_outs_total{provider="sociocs"} 2.0' in httpx.get(f"{e2e.url}/metrics").text


def test_a_blocked_sociocs_contact_is_opted_out_before_its_text_is_read(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e, f"send {TO} Your table is ready")
    sociocs_post(e2e, sociocs_inbound("Why do you keep texting", mid="b1", contact={"is_blocked": 1}))
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "via a contact blocked in Sociocs")
    answer = e2e.command(f"send {TO} Hi", user_id="U1", channel_id="C1").json()["text"]
    assert "via a contact blocked in Sociocs" in answer
    # The same payload saying START: the fact first, then the text lifts it.
    sociocs_post(e2e, sociocs_inbound("START", mid="b2", contact={"is_blocked": 1}))
    state = ConsentQueries(e2e.rt.store).state(TO, "sms")
    assert state is not None and not state.opted_out


def test_simulate_inbound_stop_takes_the_webhook_path(make: Callable[..., E2E]) -> None:
    import argparse

    from bot.cli.simulate import run as simulate_run

    e2e = make(sms_optout_confirmation=BYE)
    row = sent_row(e2e, f"send {TO} Your table is ready")
    args = argparse.Namespace(via="twlo", from_number=TO, text="STOP", whatsapp=False)
    assert simulate_run(args, e2e.rt.settings) == 0  # another process: the running smsbot shows and sends
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "replied STOP: opted out (SMS)", timeout=8)
    e2e.wait(lambda: BYE in texts_to(e2e, TO), 8, "the confirmation, sent by the running smsbot")
    answer = e2e.command(f"send {TO} Hi", user_id="U1", channel_id="C1").json()["text"]
    assert "via STOP reply" in answer


def test_a_stop_that_could_not_be_recorded_is_retried_by_the_provider(make: Callable[..., E2E],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    e2e = make()
    book, calls = e2e.rt.service.consent, []
    real = book.on_inbound_text

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("database is locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(book, "on_inbound_text", flaky)
    post, payload = inbound("twlo", "STOP", "r1")
    assert post(e2e, payload).status_code == 503  # the provider retries
    assert ConsentQueries(e2e.rt.store).state(TO, "sms") is None
    assert post(e2e, payload).json()["result"] == "stored"  # the retry runs the hooks again
    state = ConsentQueries(e2e.rt.store).state(TO, "sms")
    assert state is not None and state.opted_out and state.source == "keyword_STOP"
    assert post(e2e, payload).json()["result"] == "duplicate"
    flush(e2e)
    assert len(calls) == 2
