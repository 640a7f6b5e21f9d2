"""WhatsApp templates end to end: signed Slack requests in, the exact template JSON each
provider fake received out, and what the person sees in Slack on the way."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from bot.app.runtime import build_runtime
from bot.core.templates import CatalogError
from tests.conftest import BIRD_CH, BIRD_WS, CHANNEL_KEYS, E2E, TEXTUS_ACCOUNT, make_settings
from tests.fakes.providers import Fault, RecordedRequest
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import (
    API_APP_ID,
    TEAM_ID,
    block_actions_body,
    option,
    shortcut_body,
    view_payload,
    view_submission_body,
)

SID = "HX0123456789abcdef0123456789abcdef"
GSWA_ID = "7c1f0a52-3d4e-4b8f-9a61-2e5d8c0b9f13"
BIRD_PROJECT = "ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318"
TO = "+16175551212"

CATALOG = f"""\
templates:
  - name: appt-confirm
    sender: twlowa
    template_id: {SID}
    body: |
      Hi {{{{1}}}}, your appointment is confirmed for {{{{3}}}}.
      Questions? Write to {{{{2}}}}.
    variables:
      - {{key: 1, label: Customer name, example: John}}
      - {{key: 2, label: Contact email}}
      - {{key: 3, label: Date}}
  - name: order-shipped
    sender: gswa
    template_id: {GSWA_ID}
    media: true
    body: |
      Hello {{{{Header.1}}}}
      Your order {{{{1}}}} ships on {{{{2}}}}.
      [Button: {{{{Buttons.1}}}}]
    variables:
      - {{key: 1, group: Header, label: Customer name}}
      - {{key: 1, group: Body, label: Order number}}
      - {{key: 2, group: Body, label: Ship date}}
      - {{key: 1, group: Buttons, label: Quick reply text, required: false}}
  - name: appt-reminder
    sender: textus
    template_id: dkDdrbR
    body: "Please confirm your appointment on {{{{appt_date}}}} at {{{{appt_time}}}}:"
    variables:
      - {{key: appt_date, label: Appointment date}}
      - {{key: appt_time, label: Appointment time}}
  - name: not-approved
    sender: textus
    template_id: pndTmpl
    body: "Pending template for {{{{who}}}}"
    variables:
      - {{key: who, label: Who}}
  - name: welcome
    sender: bird
    project_id: {BIRD_PROJECT}
    locale: en
    body: Welcome {{{{name}}}}! Your code is {{{{code}}}}.
    variables:
      - {{key: name, label: First name}}
      - {{key: code, label: Welcome code}}
"""

Factory = Callable[..., E2E]


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "templates.yml"
    path.write_text(CATALOG, encoding="utf-8")
    return path


@pytest.fixture
def app(e2e_factory: Factory, catalog_file: Path) -> E2E:
    return e2e_factory(sms_templates_file=str(catalog_file))


# --------------------------------------------------------------------------- driving the modal like Slack


def open_modal(e: E2E, text: str = "template") -> dict[str, Any]:
    response = e.command(text)
    assert response.status_code == 200 and response.text == ""
    [call] = e.slack.wait_for("views.open")
    assert call.ok, call.error
    return call.response["view"]


def state(name: str | None, fields: dict[str, str | None] | None = None, **extra: Any) -> dict[str, Any]:
    """view.state.values: the select, variable inputs (block id -> text) and other blocks."""
    values: dict[str, Any] = {}
    if name:
        values["tpl"] = {"tpl_choose": {"selected_option": name}}
    for block_id, text in (fields or {}).items():
        values[block_id] = {"tpl_var": text}
    values.update(extra)
    return values


def updates(slack: FakeSlack) -> int:
    return len(slack.calls_to("views.update"))


def act(e: E2E, view: dict[str, Any], action_id: str, block_id: str, values: dict[str, Any],
        **kw: Any) -> dict[str, Any]:
    """A block_actions from inside the modal; returns the view Slack holds after our views.update."""
    seen = updates(e.slack)
    response = e.sender.post(block_actions_body(action_id, block_id=block_id, view=view, state_values=values, **kw))
    assert response.status_code == 200
    call = e.slack.wait_for("views.update", count=seen + 1)[-1]
    assert call.ok, call.error
    # views.update names the view and passes the hash Slack sent, so a newer view is never overwritten.
    assert call.params["view_id"] == view["id"] and call.params["hash"] == view["hash"]
    return call.response["view"]


def choose(e: E2E, view: dict[str, Any], name: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    return act(e, view, "tpl_choose", "tpl", {**(values or {}), **state(name)},
               selected_option=option(name), action_type="static_select")


def submit(e: E2E, view: dict[str, Any], values: dict[str, Any]) -> Any:
    return e.sender.post(view_submission_body("template_modal", values, view=view))


def input_ids(view: dict[str, Any]) -> list[str]:
    return [b["block_id"] for b in view["blocks"] if b["type"] == "input"]


def preview(view: dict[str, Any]) -> str:
    [block] = [b for b in view["blocks"] if b.get("block_id") == "tpl_preview"]
    return block["elements"][0]["text"]


def provider_request(e: E2E, path: str) -> RecordedRequest:
    assert e.providers is not None
    found = e.wait(lambda: [r for r in e.providers.requests if r.path == path], what=f"a request to {path}")
    assert len(found) == 1
    return found[0]


def thread_texts(e: E2E, count: int = 1) -> list[str]:
    e.wait(lambda: len(e.thread_replies()) >= count, what="the thread reply")
    return [c["params"]["text"] for c in e.thread_replies()]


TEXTUS_PATH = f"/{TEXTUS_ACCOUNT}/messages"
BIRD_PATH = f"/workspaces/{BIRD_WS}/channels/{BIRD_CH}/messages"


# --------------------------------------------------------------------------- the four shapes through the modal

CASES = [
    pytest.param(
        "appt-confirm",
        {"1": "John", "2": "john@example.com", "3": "11-Jul-2024"},
        "/message",
        lambda body: (body["provider"], body["channel_key"], body["to"], body["template"]),
        ("twlowa", CHANNEL_KEYS["twlowa"], TO,
         {"id": SID, "variables": {"1": "John", "2": "john@example.com", "3": "11-Jul-2024"}}),
        "*Preview*\n>Hi John, your appointment is confirmed for 11-Jul-2024.\n>Questions? Write to john@example.com.",
        "Twilio WhatsApp",
        id="twlowa",
    ),
    pytest.param(
        "order-shipped",
        {"MEDIA_URL": "https://example.com/box.jpg", "Header.1": "John", "Body.1": "A-1042",
         "Body.2": "11-Jul-2024", "Buttons.1": "Track my order"},
        "/message",
        lambda body: (body["provider"], body["channel_key"], body["to"], body["template"]),
        ("gswa", CHANNEL_KEYS["gswa"], TO,
         {"id": GSWA_ID, "variables": {"MEDIA_URL": "https://example.com/box.jpg", "Header": {"1": "John"},
                                       "Body": {"1": "A-1042", "2": "11-Jul-2024"},
                                       "Buttons": {"1": "Track my order"}}}),
        "*Preview*\n>Hello John\n>Your order A-1042 ships on 11-Jul-2024.\n>[Button: Track my order]",
        "Gupshup WhatsApp",
        id="gswa",
    ),
    pytest.param(
        "appt-reminder",
        {"appt_date": "1/1", "appt_time": "12:00"},
        TEXTUS_PATH,
        lambda body: (body["to"], body["channel"], body["template"], "body" in body),
        (TO, "whatsapp", {"id": "dkDdrbR", "variable_values": {"appt_date": "1/1", "appt_time": "12:00"}}, False),
        "*Preview*\n>Please confirm your appointment on 1/1 at 12:00:",
        "TextUs",
        id="textus",
    ),
    pytest.param(
        "welcome",
        {"name": "Robert", "code": "WELCOME10"},
        BIRD_PATH,
        lambda body: (body["receiver"], body["template"], "body" in body),
        ({"contacts": [{"identifierKey": "phonenumber", "identifierValue": TO}]},
         {"projectId": BIRD_PROJECT, "version": "latest", "locale": "en",
          "parameters": [{"type": "string", "key": "name", "value": "Robert"},
                         {"type": "string", "key": "code", "value": "WELCOME10"}]}, False),
        "*Preview*\n>Welcome Robert! Your code is WELCOME10.",
        "Bird SMS",
        id="bird",
    ),
]


@pytest.mark.parametrize(("name", "typed", "path", "pick", "expected", "shown", "label"), CASES)
def test_modal_sends_each_template_shape(
    app: E2E, name: str, typed: dict[str, str], path: str, pick: Callable[[dict[str, Any]], Any],
    expected: Any, shown: str, label: str,
) -> None:
    opened = open_modal(app)
    assert input_ids(opened) == ["tpl", "to", "name", "when_dt", "when_date", "when_time"]

    # The number typed first keeps its block and action ids, so Slack keeps it across the update.
    form = choose(app, opened, name, {"to": {"value": TO}})
    fields = {f"v|{name}|{ref}": value for ref, value in typed.items()}
    assert input_ids(form) == ["tpl", *fields, "to", "name", "when_dt", "when_date", "when_time"]

    # Typing a value redraws the live preview with the same ids.
    form = act(app, form, "tpl_var", next(iter(fields)), state(name, fields, to={"value": TO}))
    assert input_ids(form) == ["tpl", *fields, "to", "name", "when_dt", "when_date", "when_time"]
    assert preview(form) == shown

    response = submit(app, form, state(name, fields, to={"value": TO}))
    assert response.status_code == 200 and response.text == ""

    request = provider_request(app, path)
    assert pick(request.json) == expected
    assert [c["params"]["text"] for c in app.slack.calls_to("chat.postMessage") if not c["params"].get("thread_ts")
            ] == [f"<@U1> → +1 617-555-1212 via {label}: [template {name}]"]
    [status] = thread_texts(app)
    assert status.startswith(f":white_check_mark: Accepted by {label}")


def test_shortcut_opens_the_same_form(app: E2E) -> None:
    response = app.sender.post(shortcut_body("send_template"))
    assert response.status_code == 200
    [call] = app.slack.wait_for("views.open")
    assert call.ok
    view = call.response["view"]
    assert view["callback_id"] == "template_modal"
    assert [o["value"] for o in view["blocks"][0]["element"]["options"]] == [
        "appt-confirm", "order-shipped", "appt-reminder", "not-approved", "welcome"]


def test_command_with_a_name_opens_the_form_on_that_template(app: E2E) -> None:
    view = open_modal(app, "template welcome")
    assert input_ids(view)[:3] == ["tpl", "v|welcome|name", "v|welcome|code"]
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "welcome"


def test_scheduled_template_is_held_until_its_time(app: E2E) -> None:
    form = choose(app, open_modal(app), "welcome")
    due = int(time.time()) + 3600
    values = state("welcome", {"v|welcome|name": "Robert", "v|welcome|code": "W10"}, to={"value": TO},
                   when_dt={"value": {"type": "datetimepicker", "selected_date_time": due}})
    assert submit(app, form, values).status_code == 200
    [call] = app.slack.wait_for("chat.postMessage")
    assert call.params["text"].startswith(":alarm_clock: Scheduled for ")
    assert call.params["text"].endswith("via Bird SMS: [template welcome]")
    assert app.providers is not None and app.providers.requests == []


# --------------------------------------------------------------------------- refusals in the modal


def test_missing_required_variable_is_a_field_error_and_nothing_is_sent(app: E2E) -> None:
    form = choose(app, open_modal(app), "order-shipped")
    values = state("order-shipped", {"v|order-shipped|Header.1": "John", "v|order-shipped|Body.1": "A-1"},
                   to={"value": TO})
    response = submit(app, form, values)
    assert response.status_code == 200
    assert response.json() == {"response_action": "errors", "errors": {
        "v|order-shipped|Body.2": "Required: Ship date",
        "v|order-shipped|MEDIA_URL": "Required: media URL",
    }}
    app.settle()
    assert app.providers is not None and app.providers.requests == []
    assert app.slack.calls_to("chat.postMessage") == []


def test_submit_while_the_form_still_shows_another_template_is_refused(app: E2E) -> None:
    # The person picked "welcome" but the redraw for it has not landed: the inputs are appt-confirm's.
    form = choose(app, open_modal(app), "appt-confirm")
    values = state("welcome", {"v|appt-confirm|1": "John"}, to={"value": TO})
    assert submit(app, form, values).json() == {"response_action": "errors", "errors": {
        "tpl": "The form is still switching to 'welcome'; check its fields and press Send again."}}


def test_bad_number_is_a_field_error_on_the_number(app: E2E) -> None:
    form = choose(app, open_modal(app), "welcome")
    values = state("welcome", {"v|welcome|name": "R", "v|welcome|code": "C"}, to={"value": "12"})
    body = submit(app, form, values).json()
    assert body["response_action"] == "errors" and list(body["errors"]) == ["to"]


def test_template_for_an_unconfigured_sender_is_refused_before_sending(
    e2e_factory: Factory, catalog_file: Path
) -> None:
    e = e2e_factory(sms_templates_file=str(catalog_file), textus_api_token=None)
    form = choose(e, open_modal(e), "appt-reminder")
    assert "not configured here" in json.dumps(form["blocks"])
    values = state("appt-reminder", {"v|appt-reminder|appt_date": "1/1", "v|appt-reminder|appt_time": "12:00"},
                   to={"value": TO})
    assert submit(e, form, values).json() == {"response_action": "errors", "errors": {"tpl": (
        "Template 'appt-reminder' is sent by textus (textus), which is not configured here, so it cannot be sent. "
        "Configured senders: bird, gswa, sandbox, twlo, twlowa.")}}

    response = e.command(f"send --template appt-reminder {TO} appt_date=1/1 appt_time=12:00")
    assert response.json()["text"].startswith(":warning: Template 'appt-reminder' is sent by textus")
    e.settle()
    assert e.providers is not None and e.providers.requests == []


# --------------------------------------------------------------------------- provider refusals, in plain words


def test_textus_not_approved_template_is_explained_in_the_thread(app: E2E) -> None:
    form = choose(app, open_modal(app), "not-approved")
    assert submit(app, form, state("not-approved", {"v|not-approved|who": "Ann"}, to={"value": TO})).text == ""
    request = provider_request(app, TEXTUS_PATH)
    assert request.json["template"] == {"id": "pndTmpl", "variable_values": {"who": "Ann"}}
    assert thread_texts(app) == [
        ":x: Not sent by TextUs: TextUs refused the message: the WhatsApp template is not approved "
        "or its variables are missing/invalid (422)"
    ]


def test_sociocs_template_refusal_is_explained_in_the_thread(app: E2E) -> None:
    assert app.providers is not None
    app.providers.script("/message", [Fault(status=400, body={
        "status": "error", "errors": [{"msg": "Template HX0123 is not approved for this sender."}]})])
    response = app.command(f"send --template appt-confirm {TO} 1=John 2=j@example.com 3=11-Jul-2024")
    assert response.status_code == 200 and response.text == ""
    assert thread_texts(app) == [
        ":x: Not sent by Twilio WhatsApp: Sociocs refused the message (400): "
        "Template HX0123 is not approved for this sender."
    ]


# --------------------------------------------------------------------------- commands


def test_send_command_with_template_sends_without_the_modal(app: E2E) -> None:
    response = app.command(f'send --template appt-confirm {TO} 1=John 2=john@example.com "3=11 Jul 2024"')
    assert response.status_code == 200 and response.text == ""
    request = provider_request(app, "/message")
    assert request.json["provider"] == "twlowa"
    assert request.json["template"] == {"id": SID, "variables": {"1": "John", "2": "john@example.com",
                                                                 "3": "11 Jul 2024"}}
    assert app.slack.calls_to("views.open") == []


def test_send_command_values_reach_the_provider_exactly_as_typed(app: E2E) -> None:
    # The text as Slack sends it: the pasted link wrapped in <...> with & as &amp;, a typed
    # `&` as &amp;, apostrophes (straight and curly), backslashes and quotes that group words.
    text = (f"send --template order-shipped {TO} "
            "MEDIA_URL=<https://cdn.example.com/i.jpg?w=1&amp;region=us&amp;copy=2&amp;para=3&amp;not=4> "
            "Header.1=O'Brien 1=C:\\new\\path \u201c2=it\u2019s 11 Jul\u201d "
            'Buttons.1="Track &amp; reply"')
    response = app.command(text)
    assert response.status_code == 200 and response.text == ""
    request = provider_request(app, "/message")
    assert request.json["provider"] == "gswa"
    assert request.json["template"] == {"id": GSWA_ID, "variables": {
        "MEDIA_URL": "https://cdn.example.com/i.jpg?w=1&region=us&copy=2&para=3&not=4",
        "Header": {"1": "O'Brien"},
        "Body": {"1": "C:\\new\\path", "2": "it\u2019s 11 Jul"},
        "Buttons": {"1": "Track & reply"},
    }}


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        (f"send --template nope {TO} a=b",
         ":warning: Unknown template 'nope'. Available templates: `appt-confirm`, `order-shipped`, "
         "`appt-reminder`, `not-approved`, `welcome` (see `/sms templates`)."),
        (f"send --template appt-confirm {TO} 2=x",
         ":warning: Template 'appt-confirm': Missing required variables: Customer name (`1=`), Date (`3=`)."),
        (f"send --template welcome {TO} name=R code=C shoe=42",
         ":warning: Template 'welcome': Unknown variable `shoe`: 'welcome' takes `name` (First name), "
         "`code` (Welcome code)."),
        (f"send --template welcome {TO} name=R First_Name=S code=C",
         ":warning: Template 'welcome': Variable `name` (First name) is given twice (as `name=` and "
         "`First_Name=`); give it once."),
        ("template nope",
         ":warning: Unknown template 'nope'. Available templates:"),
    ],
)
def test_command_errors_come_back_as_ephemeral_text(app: E2E, text: str, starts: str) -> None:
    response = app.command(text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral" and body["text"].startswith(starts), body["text"]
    app.settle()
    assert app.slack.calls_to("views.open") == []
    assert app.providers is not None and app.providers.requests == []


def test_templates_lists_the_catalog(app: E2E) -> None:
    body = app.command("templates").json()
    lines = body["text"].splitlines()
    assert lines[0] == "*WhatsApp templates* (5)"
    assert lines[1] == "• `appt-confirm` via Twilio WhatsApp (twlowa): `1` Customer name, `2` Contact email, `3` Date"
    assert lines[5] == "• `welcome` via Bird SMS (bird): `name` First name, `code` Welcome code"


def test_without_a_catalog_template_commands_explain_how_to_add_one(e2e_factory: Factory) -> None:
    e = e2e_factory()
    text = e.command("template").json()["text"]
    assert text.startswith(":warning: No WhatsApp templates are set up")
    e.settle()
    assert e.slack.calls_to("views.open") == []


# --------------------------------------------------------------------------- many templates, broken catalogs


def test_more_than_100_templates_are_searched_through_the_options_listener(
    e2e_factory: Factory, tmp_path: Path
) -> None:
    entries = "\n".join(
        f"  - {{name: t{i:03d}, sender: textus, template_id: id{i}, body: 'Hi {{{{n}}}}', "
        "variables: [{key: n, label: Name}]}" for i in range(120)
    )
    path = tmp_path / "many.yml"
    path.write_text("templates:\n" + entries + "\n", encoding="utf-8")
    e = e2e_factory(sms_templates_file=str(path))
    view = open_modal(e)
    assert view["blocks"][0]["element"]["type"] == "external_select"
    payload = {
        "type": "block_suggestion", "user": {"id": "U1", "username": "alice", "team_id": TEAM_ID},
        "team": {"id": TEAM_ID, "domain": "fake-team"}, "api_app_id": API_APP_ID, "token": "t",
        "container": {"type": "view", "view_id": view["id"]}, "action_id": "tpl_choose", "block_id": "tpl",
        "value": "t11", "view": view_payload(view),
    }
    response = e.sender.post(urlencode({"payload": json.dumps(payload)}).encode())
    assert response.status_code == 200
    assert [o["value"] for o in response.json()["options"]] == [f"t{i}" for i in range(110, 120)]


def test_broken_catalog_stops_start_up_with_file_line_and_problem(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("templates:\n  - name: x\n    sender: twlo\n    body: Hi\n", encoding="utf-8")
    settings = make_settings(tmp_path, fake_slack, None, sms_templates_file=str(path))
    with pytest.raises(CatalogError) as info:
        build_runtime(settings, with_worker=False)
    assert str(info.value) == (
        f"{path}:3: template 'x': sender 'twlo' (Twilio SMS) cannot send templates; use 'twlowa' for Twilio WhatsApp")


def test_named_catalog_that_does_not_exist_stops_start_up(tmp_path: Path, fake_slack: FakeSlack) -> None:
    settings = make_settings(tmp_path, fake_slack, None, sms_templates_file=str(tmp_path / "missing.yml"))
    with pytest.raises(CatalogError, match="missing.yml: file not found"):
        build_runtime(settings, with_worker=False)
