"""The fake Slack must answer the real slack_sdk client (and a real Bolt app) the way Slack does."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn
from slack_bolt import App
from slack_bolt.adapter.starlette import SlackRequestHandler
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from tests.fakes.slack import DEFAULT_TOKEN, FakeSlack
from tests.fakes.slack_requests import (
    SlackSender,
    app_home_opened_event,
    block_actions_body,
    event_body,
    shortcut_body,
    sign,
    slash_command_body,
    view_submission_body,
)

SECRET = "fake-signing-secret"
MODAL = {"type": "modal", "title": {"type": "plain_text", "text": "Send SMS"}, "blocks": []}


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=DEFAULT_TOKEN, base_url=fake.base_url, timeout=5)


def slack_error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return excinfo.value.response["error"]


# ---------------------------------------------------------------------- messages


def test_post_message_answers_like_slack_with_unique_increasing_ts(
    fake: FakeSlack, client: WebClient
) -> None:
    first = client.chat_postMessage(channel="C1", text="one")
    second = client.chat_postMessage(channel="C1", text="two")

    assert first["channel"] == "C1"
    assert first["message"]["text"] == "one"
    assert first["message"]["bot_id"] == "BBOT"
    assert first["ts"] == first["message"]["ts"]
    seconds, micros = first["ts"].split(".")
    assert seconds.isdigit() and len(micros) == 6
    assert float(second["ts"]) > float(first["ts"])
    [call, _] = fake.wait_for("chat.postMessage", count=2)
    assert call.token == DEFAULT_TOKEN and call.params["text"] == "one"
    assert call["params"]["channel"] == "C1"  # dict-style access works too


def test_threaded_reply_is_recorded_with_thread_ts(fake: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C1", text="parent")
    reply = client.chat_postMessage(channel="C1", text="reply", thread_ts=parent["ts"])

    assert reply["message"]["thread_ts"] == parent["ts"]
    [call] = fake.wait_for("chat.postMessage", lambda c: c.params.get("thread_ts") == parent["ts"])
    assert call.params["text"] == "reply"
    assert [m["text"] for m in fake.messages("C1", thread_ts=parent["ts"])] == ["parent", "reply"]


def test_blocks_are_recorded_decoded_from_json_and_form_bodies(fake: FakeSlack, client: WebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    client.chat_postMessage(channel="C1", text="hi", blocks=blocks)  # slack_sdk sends JSON here
    client.api_call("chat.postMessage", params={"channel": "C1", "text": "hi", "blocks": json.dumps(blocks)})

    as_json, as_form = fake.calls_to("chat.postMessage")
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert as_form.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert as_json.params["blocks"] == as_form.params["blocks"] == blocks
    assert as_form.ok


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_channel_errors(fake: FakeSlack, client: WebClient) -> None:
    fake.add_channel("C9", "private-ops", member=False)

    with pytest.raises(SlackApiError) as not_in:
        client.chat_postMessage(channel="C9", text="hi")
    with pytest.raises(SlackApiError) as unknown:
        client.chat_postMessage(channel="C404", text="hi")
    with pytest.raises(SlackApiError) as empty:
        client.chat_postMessage(channel="C1", text="")

    assert slack_error(not_in) == "not_in_channel"
    assert slack_error(unknown) == "channel_not_found"
    assert slack_error(empty) == "no_text"
    assert [c.error for c in fake.calls_to("chat.postMessage")] == [
        "not_in_channel",
        "channel_not_found",
        "no_text",
    ]


def test_more_than_50_blocks_is_refused(client: WebClient) -> None:
    blocks = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C1", text="long", blocks=blocks)
    assert slack_error(excinfo) == "invalid_blocks"


def test_dm_to_a_user_id_goes_to_the_im_channel(fake: FakeSlack, client: WebClient) -> None:
    posted = client.chat_postMessage(channel="U2", text="psst")
    opened = client.conversations_open(users="U2")

    assert posted["channel"].startswith("D")
    assert opened["channel"]["id"] == posted["channel"] == fake.im_channel("U2")


def test_update_delete_and_permalink(client: WebClient) -> None:
    posted = client.chat_postMessage(channel="C1", text="draft")

    updated = client.chat_update(channel="C1", ts=posted["ts"], text="final")
    link = client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    client.chat_delete(channel="C1", ts=posted["ts"])
    with pytest.raises(SlackApiError) as gone:
        client.chat_update(channel="C1", ts=posted["ts"], text="again")

    assert updated["message"]["text"] == "final"
    assert link["permalink"].endswith("/archives/C1/p" + posted["ts"].replace(".", ""))
    assert slack_error(gone) == "message_not_found"


def test_post_ephemeral_returns_message_ts(client: WebClient) -> None:
    answer = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert answer["message_ts"]


# ---------------------------------------------------------------------- auth, faults


def test_token_checks(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as bad:
        WebClient(token="xoxb-wrong", base_url=fake.base_url).auth_test()
    missing = httpx.post(fake.base_url + "auth.test").json()
    ok = WebClient(token=DEFAULT_TOKEN, base_url=fake.base_url).auth_test()

    assert slack_error(bad) == "invalid_auth"
    assert missing == {"ok": False, "error": "not_authed"}
    assert (ok["user_id"], ok["bot_id"], ok["team_id"]) == ("UBOT", "BBOT", "T1")
    assert [c.error for c in fake.calls_to("auth.test")] == ["invalid_auth", "not_authed", None]


def test_token_in_form_body_is_accepted_but_not_in_json_body(fake: FakeSlack) -> None:
    form = httpx.post(fake.base_url + "auth.test", data={"token": DEFAULT_TOKEN}).json()
    in_json = httpx.post(fake.base_url + "auth.test", json={"token": DEFAULT_TOKEN}).json()
    assert form["ok"] is True
    assert in_json["error"] == "not_authed"


def test_unknown_method_is_answered_and_recorded(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("bookmarks.add", params={"name": "tada"})
    assert slack_error(excinfo) == "unknown_method"
    assert fake.calls_to("bookmarks.add")[0].params == {"name": "tada"}


def test_rate_limit_is_retried_after_retry_after(fake: FakeSlack, client: WebClient) -> None:
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=1))
    fake.fail_next("chat.postMessage", retry_after=1)

    answer = client.chat_postMessage(channel="C1", text="eventually")

    assert answer["ok"]
    first, second = fake.calls_to("chat.postMessage")
    assert (first.status, first.error) == (429, "ratelimited")
    assert second.status == 200 and second.ok
    assert second.monotonic - first.monotonic >= 0.95


def test_rate_limit_without_retry_handler_raises_with_retry_after(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C1", text="x")
    assert excinfo.value.response.status_code == 429
    assert excinfo.value.response.headers["Retry-After"] == "7"


def test_fail_next_with_status_200_answers_ok_false_then_recovers(fake: FakeSlack, client: WebClient) -> None:
    fake.fail_next("chat.postMessage", error="internal_error", status=200, times=2)
    errors = []
    for _ in range(2):
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(channel="C1", text="x")
        errors.append(slack_error(excinfo))
    assert errors == ["internal_error", "internal_error"]
    assert client.chat_postMessage(channel="C1", text="x")["ok"]
    assert "Retry-After" not in fake.calls_to("chat.postMessage")[0].response


def test_latency_delays_answers(fake: FakeSlack, client: WebClient) -> None:
    fake.latency = 0.2
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 0.2


def test_wait_for_reports_what_was_received(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="the one we got")
    with pytest.raises(AssertionError) as excinfo:
        fake.wait_for("chat.postMessage", lambda c: c.params["text"] == "never", timeout=0.1)
    assert "the one we got" in str(excinfo.value)


def test_wait_for_sees_calls_from_other_threads(fake: FakeSlack, client: WebClient) -> None:
    threading.Timer(0.05, lambda: client.chat_postMessage(channel="C2", text="later")).start()
    [call] = fake.wait_for("chat.postMessage", timeout=2)
    assert call.params["channel"] == "C2"


def test_reset_forgets_calls_and_faults(fake: FakeSlack, client: WebClient) -> None:
    client.auth_test()
    fake.fail_next("auth.test")
    fake.reset()
    assert fake.calls == []
    assert client.auth_test()["ok"]


# ---------------------------------------------------------------------- users, views


def test_users_info_returns_configured_tz(fake: FakeSlack, client: WebClient) -> None:
    fake.users["U2"] = {"tz": "Europe/London", "real_name": "Bea"}

    default = client.users_info(user="U1")["user"]
    configured = client.users_info(user="U2")["user"]

    assert default["tz"] == "America/New_York"
    assert default["tz_offset"] in (-18000, -14400)
    assert default["tz_label"].startswith("Eastern")
    assert configured["tz"] == "Europe/London"
    assert configured["tz_offset"] in (0, 3600)
    assert configured["real_name"] == "Bea"


def test_views_open_requires_an_unused_trigger_id(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as missing:
        client.views_open(view=MODAL)
    opened = client.views_open(trigger_id="111.222.abc", view=MODAL)
    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id="111.222.abc", view=MODAL)

    assert slack_error(missing) == "invalid_arguments"
    assert opened["view"]["id"].startswith("V") and opened["view"]["hash"]
    assert slack_error(reused) == "exchanged_trigger_id"


def test_views_reject_what_slack_rejects(client: WebClient) -> None:
    long_title = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    input_without_submit = {**MODAL, "blocks": [{"type": "input", "element": {}, "label": {}}]}
    for trigger, view in (("t1", long_title), ("t2", input_without_submit)):
        with pytest.raises(SlackApiError) as excinfo:
            client.views_open(trigger_id=trigger, view=view)
        assert slack_error(excinfo) == "invalid_arguments"
        assert excinfo.value.response["response_metadata"]["messages"]


def test_views_update_honours_hash(client: WebClient) -> None:
    opened = client.views_open(trigger_id="t-hash", view=MODAL)["view"]

    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)["view"]
    with pytest.raises(SlackApiError) as stale:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=MODAL)

    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    assert slack_error(stale) == "hash_conflict"


def test_views_push_and_publish(fake: FakeSlack, client: WebClient) -> None:
    pushed = client.views_push(trigger_id="t-push", view=MODAL)
    home = client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    assert pushed["view"]["id"].startswith("V")
    assert fake.home_views["U1"]["id"] == home["view"]["id"]


# ---------------------------------------------------------------------- files, response_url


def test_files_upload_v2_into_a_thread(fake: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(channel="C1", text="report follows")
    content = b"phone,status\n+16175551212,delivered\n"

    answer = client.files_upload_v2(
        content=content,
        filename="report.csv",
        title="Delivery report",
        channel="C1",
        thread_ts=parent["ts"],
        initial_comment="Here is the report",
    )

    file_id = answer["file"]["id"]
    assert fake.file_content(file_id) == content
    [done] = fake.calls_to("files.completeUploadExternal")
    assert done.params["channel_id"] == "C1"
    assert done.params["thread_ts"] == parent["ts"]
    assert done.params["initial_comment"] == "Here is the report"
    assert done.params["files"] == [{"id": file_id, "title": "Delivery report"}]
    [shared] = fake.messages("C1", thread_ts=parent["ts"])[1:]
    assert shared["text"] == "Here is the report"


def test_upload_into_a_channel_the_bot_is_not_in_fails(fake: FakeSlack, client: WebClient) -> None:
    fake.add_channel("C9", member=False)
    with pytest.raises(SlackApiError) as excinfo:
        client.files_upload_v2(content=b"x", filename="a.txt", channel="C9")
    assert slack_error(excinfo) == "not_in_channel"


def test_added_file_downloads_only_with_the_bearer_token(fake: FakeSlack, client: WebClient) -> None:
    fake.add_file("F123", "numbers.csv", b"phone\n+16175551212\n")
    url = client.files_info(file="F123")["file"]["url_private_download"]

    allowed = httpx.get(url, headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})
    anonymous = httpx.get(url)
    wrong = httpx.get(url, headers={"Authorization": "Bearer xoxb-wrong"})
    followed = httpx.get(url, follow_redirects=True)

    assert allowed.status_code == 200 and allowed.content == b"phone\n+16175551212\n"
    assert anonymous.status_code == 302 and wrong.status_code == 302
    # What Slack does too: without the header a redirect-following client gets an HTML page.
    assert followed.headers["content-type"].startswith("text/html")


def test_files_info_unknown_file(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.files_info(file="F404")
    assert slack_error(excinfo) == "file_not_found"


def test_response_url_records_posted_json(fake: FakeSlack) -> None:
    url = fake.response_url()
    other = fake.response_url()
    WebhookClient(url).send(text="Queued #1", response_type="ephemeral")

    assert url != other
    assert fake.responses == [{"text": "Queued #1", "response_type": "ephemeral"}]
    assert fake.responses_to(other) == []
    assert fake.wait_for_response(lambda p: p["text"].startswith("Queued"))


# ---------------------------------------------------------------------- signed requests


def test_sign_verifies_with_slack_sdk() -> None:
    body = slash_command_body(text="send +16175551212 hi")
    headers = sign(SECRET, body)
    verifier = SignatureVerifier(SECRET)

    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)
    assert not SignatureVerifier("other-secret").is_valid_request(body, headers)


def test_sign_with_an_old_timestamp_is_rejected() -> None:
    body = b'{"type":"event_callback"}'
    stale = sign(SECRET, body, timestamp=int(time.time()) - 600)
    assert not SignatureVerifier(SECRET).is_valid_request(body, stale)


def test_slash_command_body_has_slacks_fields_in_order() -> None:
    fields = parse_qsl(slash_command_body(text="help", response_url="http://x/response/1").decode())
    names = [name for name, _ in fields]
    assert names == [
        "token", "team_id", "team_domain", "channel_id", "channel_name", "user_id", "user_name",
        "command", "text", "api_app_id", "is_enterprise_install", "response_url", "trigger_id",
    ]  # fmt: skip
    values = dict(fields)
    assert values["command"] == "/sms" and values["text"] == "help"
    assert values["trigger_id"] != dict(parse_qsl(slash_command_body().decode()))["trigger_id"]


def test_interactive_bodies_parse_in_bolt() -> None:
    submission = view_submission_body(
        "send_modal",
        {
            "to": {"to": "+16175551212"},
            "sender": {"sender": {"selected_option": "twlo"}},
            "when": {"date": {"selected_date": "2030-01-02"}, "time": {"selected_time": "09:30"}},
        },
        private_metadata='{"channel_id": "C1"}',
    )
    action = block_actions_body("schedule_cancel", value="42", message_ts="1700000000.000100")
    shortcut = shortcut_body("new_sms")

    view = BoltRequest(body=submission.decode(), headers=sign(SECRET, submission)).body["view"]
    values = view["state"]["values"]
    assert values["to"]["to"] == {"type": "plain_text_input", "value": "+16175551212"}
    assert values["sender"]["sender"]["type"] == "static_select"
    assert values["sender"]["sender"]["selected_option"]["value"] == "twlo"
    assert values["when"]["date"] == {"type": "datepicker", "selected_date": "2030-01-02"}
    assert json.loads(view["private_metadata"]) == {"channel_id": "C1"}
    clicked = BoltRequest(body=action.decode()).body
    assert (
        clicked["actions"][0]["value"] == "42" and clicked["container"]["message_ts"] == "1700000000.000100"
    )
    assert clicked["channel"]["id"] == "C1" and clicked["response_url"]
    assert BoltRequest(body=shortcut.decode()).body["callback_id"] == "new_sms"


def test_event_bodies_have_unique_event_ids() -> None:
    first = json.loads(event_body(app_home_opened_event("U1")))
    second = json.loads(event_body(app_home_opened_event("U1")))
    assert first["type"] == "event_callback" and first["event"]["type"] == "app_home_opened"
    assert first["event_id"] != second["event_id"]
    assert json.loads(event_body({"type": "x"}, event_id="Ev1"))["event_id"] == "Ev1"


# ---------------------------------------------------------------------- a real Bolt app in between


@pytest.fixture
def bolt_url(fake: FakeSlack) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A small Bolt app under uvicorn whose Web API client points at the fake."""
    seen: list[dict[str, Any]] = []
    app = App(
        client=WebClient(token=DEFAULT_TOKEN, base_url=fake.base_url),
        signing_secret=SECRET,
        process_before_response=True,  # listeners finish before the HTTP answer: no sleeps
    )

    @app.command("/sms")
    def sms(ack: Any, respond: Any, command: dict[str, Any]) -> None:
        ack()
        respond(text=f"got {command['text']}")

    @app.event("app_home_opened")
    def home(event: dict[str, Any], client: WebClient, request: BoltRequest) -> None:
        seen.append({"user": event["user"], "retry": (request.headers.get("x-slack-retry-num") or [None])[0]})
        client.views_publish(user_id=event["user"], view={"type": "home", "blocks": []})

    handler = SlackRequestHandler(app)

    async def endpoint(request: Request) -> Any:
        return await handler.handle(request)

    web = Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(web, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", seen
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


def test_sender_drives_a_bolt_app_against_the_fake(
    fake: FakeSlack, bolt_url: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = bolt_url
    assert fake.calls_to("auth.test"), "Bolt checks its token at start-up"
    with SlackSender(url, SECRET) as sender:
        command = sender.command("status", response_url=fake.response_url())
        forged = sender.command("status", bad_signature=True)
        stale = sender.command("status", timestamp=int(time.time()) - 600)
        event = sender.event(app_home_opened_event("U7"), event_id="Ev42", retry_num=1)

    assert command.status_code == 200
    assert fake.responses == [{"text": "got status"}]
    assert forged.status_code == 401 and stale.status_code == 401
    assert event.status_code == 200
    assert seen == [{"user": "U7", "retry": "1"}]
    assert "U7" in fake.home_views
