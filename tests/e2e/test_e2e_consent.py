"""Consent end to end: `/sms optout`, then every send path over signed Slack requests, the
fake providers' request log proving nothing reached them; `/sms optin` restores; quiet hours."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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
from tests.e2e.test_e2e_schedules import schedule, thread_text, visible
from tests.e2e.test_e2e_templates import CATALOG

TO = "+16175551212"
OTHER = "+16175551213"


def provider_sends(e2e: E2E, number: str) -> list:
    assert e2e.providers is not None
    found = []
    for r in e2e.providers.requests:
        if r.method != "POST" or not isinstance(r.json, dict):
            continue
        body = r.json
        to = body.get("to") or (body.get("receiver") or {}).get("contacts", [{}])[0].get("identifierValue")
        if to == number or any(x.get("to") == number for x in body.get("recipients") or []):
            found.append(r)
    return found


def test_optout_stops_every_path_and_optin_restores(e2e_factory: Callable[..., E2E], tmp_path: Path) -> None:
    catalog = tmp_path / "templates.yml"
    catalog.write_text(CATALOG, encoding="utf-8")
    e2e = e2e_factory(sms_templates_file=str(catalog))
    engine(e2e)
    mid = schedule(e2e, 1.5)  # stored before the opt-out: the claim stops it at its time
    answer = e2e.command(f"optout {TO} asked by phone", user_id="U1").json()["text"]
    assert "+1 617-555-1212 is opted out (SMS, WhatsApp)" in answer

    single = e2e.command(f"send {TO} Hi again", user_id="U1", channel_id="C1").json()["text"]
    assert "opted out on" in single and "via a manual opt-out" in single and "nothing was sent" in single
    template = e2e.command(f"send --template appt-confirm {TO} 1=John 2=j@example.com 3=11-Jul-2024",
                           user_id="U1", channel_id="C1").json()["text"]
    assert "opted out on" in template and "(WhatsApp)" in template

    announce = visible(e2e, mid)
    day = datetime.now(UTC).strftime("%-d %b")
    thread_text(e2e, announce["response"]["ts"], f"Not sent: opted out on {day} via a manual opt-out", timeout=6)
    row = e2e.rt.store.get(mid)
    assert row is not None and row.status == "failed" and row.error_kind == "opted_out"

    form = open_form(e2e)
    conf = submit_form(e2e, form, form_values(pasted=f"{TO}, Ann\n{OTHER}, Bo", text="Hi {name}"))["view"]
    assert "1 opted out, excluded." in view_text(conf) and conf["submit"]["text"] == "Send to 1"
    confirm(e2e, conf)
    assert "1 sent, 0 failed, 0 unknown (of 1)" in summary_reply(e2e)["params"]["text"]
    e2e.settle()
    assert provider_sends(e2e, TO) == [] and len(provider_sends(e2e, OTHER)) == 1
    assert [e.action for e in e2e.rt.service.consent.queries.history(TO)] == ["opt_out", "opt_out"]  # sms, whatsapp

    status = e2e.command(f"status {TO}", user_id="U1").json()
    assert "via a manual opt-out (SMS)" in status["blocks"][0]["text"]["text"]
    listing = e2e.command("optouts", user_id="U1").json()["text"]
    assert "+1 617-555-1212 (SMS)" in listing and "via a manual opt-out by <@U1>: asked by phone" in listing
    assert "opted back in (SMS, WhatsApp)" in e2e.command(f"optin {TO}", user_id="U1").json()["text"]
    e2e.command(f"send {TO} Welcome back", user_id="U1", channel_id="C1")
    e2e.wait(lambda: provider_sends(e2e, TO), what="the send after the opt-in")


def test_a_recipients_own_optout_is_not_lifted_by_a_manager(e2e_factory: Callable[..., E2E]) -> None:
    e2e = e2e_factory(sms_bulk_users="UBOSS")
    e2e.rt.service.consent.on_inbound_text(TO, "twlo", "STOP")  # what the inbound path (issue 13) calls
    assert "Only managers" in e2e.command(f"optin {TO}", user_id="UOTHER").json()["text"]
    assert "only they can opt back in" in e2e.command(f"optin {TO}", user_id="UBOSS").json()["text"]
    answer = e2e.command(f"send {TO} Hi", user_id="UOTHER", channel_id="C1").json()["text"]
    assert "via STOP reply" in answer and "only they can opt back in (by replying START)" in answer
    e2e.settle()
    assert provider_sends(e2e, TO) == []


def _night_window(zone: str) -> tuple[str, datetime]:
    """Quiet hours that hold now in `zone` and open at least an hour later."""
    local = datetime.now(ZoneInfo(zone))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return f"{start:%H:%M}-{end:%H:%M}", end


def test_quiet_hours_hold_bulk_rows_and_ask_before_a_night_send(e2e_factory: Callable[..., E2E]) -> None:
    window, opens = _night_window("America/New_York")
    e2e = e2e_factory(sms_quiet_hours=window)
    engine(e2e)
    form = open_form(e2e)
    conf = submit_form(e2e, form, form_values(pasted=f"{TO}\n{OTHER}", text="Hi"))["view"]
    shown = view_text(conf)
    assert "2 recipients in quiet hours" in shown and "they wait for the window to open" in shown
    confirm(e2e, conf)
    e2e.slack.wait_for("chat.update", lambda c: "2 wait for quiet hours until" in c["params"].get("text", ""))
    e2e.settle()
    assert provider_sends(e2e, TO) == [] and provider_sends(e2e, OTHER) == []  # held, not dropped
    rows = [r for r in e2e.rt.store.since(0) if r.bulk_job_id]
    assert {r.status for r in rows} == {"pending"}
    assert {datetime.fromtimestamp(r.due_at, UTC).replace(second=0, microsecond=0) for r in rows} == {
        opens.astimezone(UTC).replace(second=0, microsecond=0)}

    resp = e2e.command(f"send {TO} Late night", user_id="U1", channel_id="C1").json()
    assert "for this recipient (quiet hours): send now, or send at" in resp["text"]
    assert [e["action_id"] for e in resp["blocks"][1]["elements"]] == ["quiet_send_now", "quiet_send_later"]
    e2e.settle()
    assert provider_sends(e2e, TO) == []
    from tests.e2e.test_e2e_schedules import click

    _, url = click(e2e, "quiet_send_now", resp["blocks"][1]["elements"][0]["value"], message_ts=str(time.time()),
                   ephemeral=True)
    e2e.wait(lambda: provider_sends(e2e, TO), what="the send the person chose to make now")
    assert url


def test_a_delivery_failure_meaning_opted_out_records_the_opt_out(e2e_factory: Callable[..., E2E]) -> None:
    from tests.e2e.test_e2e_webhooks import SOCIOCS_SECRET, sociocs_post

    e2e = e2e_factory(sociocs_webhook_secret=SOCIOCS_SECRET)
    e2e.command(f"send {TO} Hi", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.provider_message_id and r, what="the send")
    status = {"message_id": row.provider_message_id, "event": "status_update",
              "event_data": {"status": "failed", "error": {"code": 21610,
                                                           "message": "Attempt to send to unsubscribed recipient"}}}
    assert sociocs_post(e2e, status).status_code == 200
    state = e2e.wait(lambda: e2e.rt.service.consent.queries.state(TO, "sms"), what="the recorded opt-out")
    assert state.source == "provider_error_21610" and state.by_recipient
    answer = e2e.command(f"send {TO} Again", user_id="U1", channel_id="C1").json()["text"]
    assert "via Twilio error 21610 (unsubscribed recipient)" in answer
    e2e.settle()
    assert len(provider_sends(e2e, TO)) == 1


def test_a_textus_send_refused_as_opted_out_records_the_opt_out(e2e: E2E) -> None:
    from tests.fakes.providers import Fault

    assert e2e.providers is not None
    e2e.providers.script(f"/{'my_account'}/messages", [Fault(status=422, body={"errors": {"to": ["is opted out"]}})])
    e2e.command(f"send --via textus {TO} Hi", user_id="U1", channel_id="C1")
    state = e2e.wait(lambda: e2e.rt.service.consent.queries.state(TO, "sms"), what="the recorded opt-out")
    assert state.source == "provider_error_textus_opted_out"


def test_the_send_form_at_night_asks_once_then_sends_on_a_second_submit(e2e_factory: Callable[..., E2E]) -> None:
    import json

    from tests.fakes.slack_requests import view_submission_body

    window, _ = _night_window("America/New_York")
    e2e = e2e_factory(sms_quiet_hours=window)
    values = {"sender": {"value": {"selected_option": "twlo"}}, "to": {"value": TO}, "text": {"value": "Night"}}
    body = view_submission_body("send_modal", values, user_id="U1", view_id="VNIGHT",
                                private_metadata=json.dumps({"channel_id": "C1"}))
    first = e2e.sender.post(body, "application/x-www-form-urlencoded").json()
    assert first["response_action"] == "errors" and "Submit again to send now" in first["errors"]["to"]
    e2e.settle()
    assert provider_sends(e2e, TO) == []
    assert e2e.sender.post(body, "application/x-www-form-urlencoded").status_code == 200
    e2e.wait(lambda: provider_sends(e2e, TO), what="the send confirmed by the second submit")
