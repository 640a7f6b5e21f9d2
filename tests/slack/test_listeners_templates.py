"""WhatsApp template listeners (the /sms template subcommands, shortcut, options and submission),
handler by handler, with a fake ack and client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.core.templates import Catalog, parse_catalog
from bot.slack.blocks.templates import CHOOSE_BLOCK, TEMPLATE_MODAL, TO_BLOCK, ModalMeta
from bot.slack.context import AppContext
from bot.slack.listeners.templates import (
    NO_TEMPLATES,
    fast_template,
    on_submit,
    open_from_shortcut,
    search_templates,
    slow_template,
)
from tests.fakes.slack_requests import view_payload
from tests.slack.kit import FakeAck, FakeClient, command_body, make_ctx, stored

TO = "+16175551212"
CATALOG = parse_catalog("""\
templates:
  - name: hello
    sender: sandbox
    body: Hello {{1}}
    variables:
      - {key: 1, label: Name}
""")


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def ctx(tmp_path: Path, client: FakeClient) -> AppContext:
    return make_ctx(tmp_path, client)


def submission(values: dict[str, Any], template: str | None = "hello", user_id: str = "U1") -> dict[str, Any]:
    meta = ModalMeta(channel_id="C9", template=template).dump()
    return {"type": "view_submission", "user": {"id": user_id, "username": "alice"},
            "view": view_payload(callback_id=TEMPLATE_MODAL, values=values, private_metadata=meta)}


FILLED = {"tpl": {"tpl_choose": {"selected_option": "hello"}}, "v|hello|1": {"tpl_var": "Ann"}, "to": {"value": TO}}


def test_template_without_a_catalog_says_how_to_add_one(ctx: AppContext) -> None:
    assert fast_template(Catalog(), ctx, command_body(), "") == f":warning: {NO_TEMPLATES}"


def test_template_with_an_unknown_name_lists_the_known_ones(ctx: AppContext, client: FakeClient) -> None:
    answer = fast_template(CATALOG, ctx, command_body(), "nope")
    assert answer == ":warning: Unknown template 'nope'. Available templates: `hello` (see `/sms templates`)."
    slow_template(CATALOG, ctx, command_body(), "nope", client)
    assert client.to("views_open") == []


def test_template_with_a_name_opens_the_form_on_it(ctx: AppContext, client: FakeClient) -> None:
    assert fast_template(CATALOG, ctx, command_body(), "hello") is None
    slow_template(CATALOG, ctx, command_body(), "hello", client)
    [call] = client.to("views_open")
    assert call["trigger_id"] == "trig-1" and call["view"]["callback_id"] == TEMPLATE_MODAL
    assert ModalMeta.load(call["view"]["private_metadata"]) == ModalMeta(
        channel_id="C1", response_url="https://hooks.slack.test/resp/1", template="hello")


def test_shortcut_by_someone_not_allowed_is_told_by_dm_and_no_form_opens(tmp_path: Path) -> None:
    client = FakeClient()
    ctx = make_ctx(tmp_path, client, sms_allowed_users="U2")
    open_from_shortcut(ctx, CATALOG, {"trigger_id": "t", "user": {"id": "U1"}}, client)
    [dm] = client.to("chat_postMessage")
    assert dm["channel"] == "U1" and dm["text"].startswith(":no_entry: You are not allowed")
    assert client.to("views_open") == []


def test_options_listener_answers_the_matching_templates(ctx: AppContext) -> None:
    ack = FakeAck()
    search_templates(ctx, CATALOG, ack, {"value": "hel"})
    assert [o["value"] for o in ack.only["options"]] == ["hello"]


def test_submission_acks_empty_and_stores_the_template(ctx: AppContext) -> None:
    ack = FakeAck()
    on_submit(ctx, CATALOG, ack, submission(FILLED))
    assert ack.only == {}
    [row] = stored(ctx)
    assert (row.sender, row.to_number, row.channel_id, row.summary) == ("sandbox", TO, "C9", "[template hello]")
    assert row.payload["template"]["variables"] == {"1": "Ann"}


def test_submission_without_a_template_is_a_field_error(ctx: AppContext) -> None:
    ack = FakeAck()
    on_submit(ctx, CATALOG, ack, submission({"to": {"value": TO}}, template=None))
    assert ack.only == {"response_action": "errors", "errors": {CHOOSE_BLOCK: "Choose a template."}}
    assert stored(ctx) == []


def test_submission_by_someone_not_allowed_is_refused_on_the_number(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, sms_allowed_users="U2")
    ack = FakeAck()
    on_submit(ctx, CATALOG, ack, submission(FILLED))
    refusal = ctx.allowed("U1", "C9")
    assert refusal is not None
    assert ack.only == {"response_action": "errors", "errors": {TO_BLOCK: refusal[:150]}}
    assert stored(ctx) == []
