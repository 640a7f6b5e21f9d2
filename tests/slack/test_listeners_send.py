"""`/sms send`, the Send SMS shortcut and the send modal's submission, handler by handler."""

from __future__ import annotations

from pathlib import Path

from bot.slack.blocks.send import SEND_MODAL
from bot.slack.listeners.send import fast_send, on_submit, open_from_shortcut
from tests.fakes.slack_requests import view_payload
from tests.slack.kit import FakeAck, FakeClient, command_body, make_ctx, stored

TO = "+16175551212"


def modal_body(values: dict[str, dict[str, object]], user_id: str = "U1") -> dict[str, object]:
    view = view_payload(callback_id=SEND_MODAL, values=values, private_metadata='{"channel_id": "C9"}')
    return {"type": "view_submission", "user": {"id": user_id, "username": "alice"}, "view": view}


def test_send_command_stores_the_message_and_answers_nothing(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    assert fast_send(ctx, command_body(), "617 555 1212 Your order has shipped") is None
    [row] = stored(ctx)
    assert (row.sender, row.to_number, row.payload["text"]) == ("sandbox", TO, "Your order has shipped")
    assert (row.created_by, row.channel_id, row.idem_key) == ("U1", "C1", "cmd:T1:trig-1")
    assert not row.scheduled


def test_send_command_with_at_answers_when_it_is_scheduled(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    answer = fast_send(ctx, command_body(), f'--at "tomorrow 9am" {TO} See you')
    [row] = stored(ctx)
    assert row.scheduled and row.user_tz == "America/New_York"
    assert answer.startswith(f":alarm_clock: Scheduled #{row.id} for ")


def test_send_command_retried_by_slack_is_stored_once(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    body = command_body()
    fast_send(ctx, body, f"{TO} once")
    assert fast_send(ctx, body, f"{TO} once") is None
    assert len(stored(ctx)) == 1


def test_send_command_with_a_bad_number_is_refused_in_words(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    answer = fast_send(ctx, command_body(), "hello there")
    assert answer == (":warning: 'hello' is not a phone number. Put the number first, e.g. "
                      "`/sms send +16175551212 Hello`.\nExample: `/sms send +16175551212 Your order has shipped`")
    assert stored(ctx) == []


def test_shortcut_opens_the_send_modal(tmp_path: Path) -> None:
    client = FakeClient()
    ctx = make_ctx(tmp_path, client)
    open_from_shortcut(ctx, {"trigger_id": "trig-9", "user": {"id": "U1"}}, client)
    [call] = client.to("views_open")
    assert call["trigger_id"] == "trig-9" and call["view"]["callback_id"] == SEND_MODAL


def test_modal_submission_acks_empty_and_stores(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ack = FakeAck()
    on_submit(ctx, ack, modal_body({"to": {"value": TO}, "text": {"value": "From the form"}}))
    assert ack.only == {}
    [row] = stored(ctx)
    assert (row.to_number, row.payload["text"], row.channel_id) == (TO, "From the form", "C9")


def test_modal_submission_with_a_bad_number_is_a_field_error(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ack = FakeAck()
    on_submit(ctx, ack, modal_body({"to": {"value": "12"}, "text": {"value": "x"}}))
    assert ack.only["response_action"] == "errors" and list(ack.only["errors"]) == ["to"]
    assert ack.only["errors"]["to"].startswith("'12' is not a valid phone number for region US.")
    assert stored(ctx) == []


def test_modal_submission_by_someone_not_allowed_is_refused_on_the_number(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, sms_allowed_users="U2")
    ack = FakeAck()
    on_submit(ctx, ack, modal_body({"to": {"value": TO}, "text": {"value": "x"}}))
    assert ctx.allowed("U1", "C9") is not None
    assert ack.only == {"response_action": "errors", "errors": {"to": ctx.allowed("U1", "C9")[:150]}}
    assert ack.only["errors"]["to"].startswith(":no_entry: You are not allowed")
    assert stored(ctx) == []
