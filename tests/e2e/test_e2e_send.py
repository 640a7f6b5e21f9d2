"""End to end: signed Slack requests over HTTP to the real app and worker, fakes behind them."""

from __future__ import annotations

import json
import time

from tests.conftest import CHANNEL_KEYS, E2E, SOCIOCS_KEY
from tests.fakes.providers import Fault


def sociocs_sends(e2e: E2E) -> list:
    assert e2e.providers is not None
    return [r for r in e2e.providers.requests if r.path == "/message"]


def outcome_in_thread(e2e: E2E, contains: str, timeout: float = 5.0) -> dict:
    def find() -> dict | None:
        for call in e2e.thread_replies():
            if contains in call["params"].get("text", ""):
                return call
        return None

    return e2e.wait(find, timeout, what=f"a thread reply containing {contains!r}")


def test_quick_send_posts_visible_message_sends_and_reports_in_thread(e2e: E2E) -> None:
    resp = e2e.command("send +16175551212 Your order has shipped", user_id="U1", channel_id="C1")
    assert resp.status_code == 200
    announce = e2e.slack.wait_for("chat.postMessage", lambda c: not c["params"].get("thread_ts"))[0]
    assert announce["params"]["channel"] == "C1"
    assert announce["params"]["text"] == "<@U1> → +1 617-555-1212 via Twilio SMS: Your order has shipped"
    reply = outcome_in_thread(e2e, "Accepted by Twilio SMS")
    sends = sociocs_sends(e2e)
    assert len(sends) == 1
    assert sends[0].headers["apikey"] == SOCIOCS_KEY
    assert sends[0].json == {
        "provider": "twlo",
        "channel_key": CHANNEL_KEYS["twlo"],
        "to": "+16175551212",
        "text": "Your order has shipped",
    }
    assert reply["params"]["thread_ts"] == announce["response"]["ts"]
    row = e2e.rt.store.get(1)
    assert row is not None and row.status == "sent" and row.provider_message_id
    # The id in the thread is the one the provider answered with.
    assert f"message id `{row.provider_message_id}`" in reply["params"]["text"]
    assert row.provider_message_id in {m.get("message_id") or m.get("id") for m in e2e.providers.sociocs_messages.values()}


def test_national_number_and_sender_choice(e2e: E2E) -> None:
    e2e.open_whatsapp_window()
    e2e.command("send --via twlowa 0617 555 1212 Hi")
    outcome_in_thread(e2e, "Accepted by Twilio WhatsApp")
    body = sociocs_sends(e2e)[0].json
    assert body["provider"] == "twlowa" and body["to"] == "+16175551212" and body["text"] == "Hi"
    assert body["channel_key"] == CHANNEL_KEYS["twlowa"]


def test_bird_and_textus_requests_match_their_docs(e2e: E2E) -> None:
    from tests.conftest import BIRD_CH, BIRD_KEY, BIRD_WS, TEXTUS_ACCOUNT, TEXTUS_TOKEN

    e2e.command("send --via bird +16175551212 Hello from Bird")
    outcome_in_thread(e2e, "Accepted by Bird")
    bird = [r for r in e2e.providers.requests if r.path.startswith("/workspaces/")][0]
    assert bird.path == f"/workspaces/{BIRD_WS}/channels/{BIRD_CH}/messages"
    assert bird.headers["authorization"] == f"AccessKey {BIRD_KEY}"
    assert bird.json["receiver"] == {"contacts": [{"identifierKey": "phonenumber", "identifierValue": "+16175551212"}]}
    assert bird.json["body"] == {"type": "text", "text": {"text": "Hello from Bird"}}
    assert bird.json["reference"] == "smsbot-1"

    e2e.command("send --via textus +16175551212 Hello from TextUs")
    outcome_in_thread(e2e, "Accepted by TextUs")
    textus = [r for r in e2e.providers.requests if r.path == f"/{TEXTUS_ACCOUNT}/messages"][0]
    assert textus.headers["authorization"] == f"Bearer {TEXTUS_TOKEN}"
    assert textus.headers["accept"] == "application/vnd.textus+jsonld"
    assert textus.json == {"to": "+16175551212", "body": "Hello from TextUs"}


def test_provider_400_is_reported_in_words_and_not_retried(e2e: E2E) -> None:
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": "Invalid channel_key."}]})])
    e2e.command("send +16175551212 Hi")
    reply = outcome_in_thread(e2e, "Not sent")
    assert "Invalid channel_key." in reply["params"]["text"]
    e2e.settle()  # the app did all it will do: the checks below are not a race
    assert len(sociocs_sends(e2e)) == 1
    assert e2e.rt.store.get(1).status == "failed"


def test_provider_401_names_the_variable_and_never_shows_the_key(e2e: E2E) -> None:
    e2e.providers.script("/message", [Fault(status=401, body={"status": "error", "errors": [{"msg": f"bad key {SOCIOCS_KEY}"}]})])
    e2e.command("send +16175551212 Hi")
    reply = outcome_in_thread(e2e, "Not sent")
    assert "SOCIOCS_API_KEY" in reply["params"]["text"]
    everything = json.dumps([c["params"] for c in e2e.slack.calls])
    assert SOCIOCS_KEY not in everything
    assert "sociocs-secret-key" not in everything


def test_429_then_success_is_retried_after_retry_after(e2e: E2E) -> None:
    # 2 s: above the shared parser's 1 s fallback, well below Sociocs's 5 s default, so a
    # retry that ignored the header (either default) lands outside the window.
    e2e.providers.script("/message", [Fault(status=429, headers={"Retry-After": "2"},
                                            body={"status": "error", "errors": [{"msg": "Too many requests"}]})])
    e2e.command("send +16175551212 Hi")
    outcome_in_thread(e2e, "Accepted by Twilio SMS", timeout=8)
    sends = sociocs_sends(e2e)
    assert len(sends) == 2
    assert 1.9 <= sends[1].time - sends[0].time < 4.0
    replies = [c for c in e2e.thread_replies()]
    assert len(replies) == 1  # one status line, not one per attempt


def test_5xx_is_unknown_and_not_retried(e2e: E2E) -> None:
    e2e.providers.script("/message", [Fault(status=503, body="upstream down")])
    e2e.command("send +16175551212 Hi")
    reply = outcome_in_thread(e2e, "Outcome unknown")
    assert "not retried" in reply["params"]["text"]
    e2e.settle()  # the app did all it will do: the checks below are not a race
    assert len(sociocs_sends(e2e)) == 1
    assert e2e.rt.store.get(1).status == "unknown"


def test_timeout_after_sending_is_unknown_and_not_retried(e2e: E2E) -> None:
    e2e.providers.script("/message", [Fault(delay=3.0)])  # the app's client times out at 2 s
    e2e.command("send +16175551212 Hi")
    outcome_in_thread(e2e, "Outcome unknown", timeout=8)
    e2e.settle()  # the app did all it will do: the checks below are not a race
    assert len(sociocs_sends(e2e)) == 1


def test_slack_retry_of_the_same_command_sends_once(e2e: E2E) -> None:
    from tests.fakes.slack_requests import slash_command_body

    body = slash_command_body(text="send +16175551212 Once only", trigger_id="trig-123",
                              response_url=e2e.slack.response_url())
    first = e2e.sender.post(body, "application/x-www-form-urlencoded")
    again = e2e.sender.post(body, "application/x-www-form-urlencoded", retry_num=1)
    assert first.status_code == 200 and again.status_code == 200
    outcome_in_thread(e2e, "Accepted by Twilio SMS")
    e2e.settle()  # the app did all it will do: the checks below are not a race
    assert len(sociocs_sends(e2e)) == 1
    assert len([c for c in e2e.slack.calls_to("chat.postMessage") if not c["params"].get("thread_ts")]) == 1


def test_bad_signature_and_stale_timestamp_get_401_and_do_nothing(e2e: E2E) -> None:
    from tests.fakes.slack_requests import slash_command_body

    body = slash_command_body(text="send +16175551212 Forged", response_url=e2e.slack.response_url())
    assert e2e.sender.post(body, "application/x-www-form-urlencoded", bad_signature=True).status_code == 401
    stale = int(time.time()) - 6 * 60
    assert e2e.sender.post(body, "application/x-www-form-urlencoded", timestamp=stale).status_code == 401
    e2e.settle()  # the app did all it will do: the checks below are not a race
    assert sociocs_sends(e2e) == []
    assert e2e.rt.store.counts_by_status() == {}


def test_invalid_number_gets_a_clear_ephemeral_error_and_nothing_is_stored(e2e: E2E) -> None:
    resp = e2e.command("send 555-12 Hello")
    assert resp.status_code == 200
    body = resp.json()
    assert body["response_type"] == "ephemeral"
    assert "not a valid phone number" in body["text"]
    assert e2e.rt.store.counts_by_status() == {}
    assert sociocs_sends(e2e) == []


def test_unsupported_content_for_the_provider_is_refused_before_storing(e2e: E2E) -> None:
    resp = e2e.command("send --via twlowa --image https://example.com/a.png +16175551212 Look")
    assert "Twilio WhatsApp cannot send images" in resp.json()["text"]
    assert e2e.rt.store.counts_by_status() == {}


def test_bot_not_in_channel_falls_back_to_a_dm(e2e: E2E) -> None:
    e2e.slack.add_channel("C9", "secret", member=False)
    e2e.command("send +16175551212 Hi", user_id="U7", channel_id="C9")
    dm = e2e.slack.wait_for("chat.postMessage", lambda c: c["params"].get("channel") == "U7")[0]
    assert "can't post in <#C9>" in json.dumps(dm["params"].get("blocks"))
    reply = outcome_in_thread(e2e, "Accepted by Twilio SMS")
    assert reply["params"]["channel"] == dm["response"]["channel"]


def test_people_outside_the_allowed_list_are_refused(e2e_factory) -> None:
    e2e = e2e_factory(sms_allowed_users="U1,U2")
    resp = e2e.command("send +16175551212 Hi", user_id="U9")
    assert "not allowed" in resp.json()["text"]
    assert e2e.rt.store.counts_by_status() == {}


def test_sandbox_is_the_default_without_providers(e2e_factory) -> None:
    e2e = e2e_factory(with_providers=False)
    e2e.command("send +16175551212 Trying it out")
    reply = outcome_in_thread(e2e, "sandbox: not sent")
    assert "sbx_" in reply["params"]["text"]
    assert e2e.providers.requests == []


def test_help_lists_every_subcommand(e2e: E2E) -> None:
    text = e2e.command("help").json()["text"]
    for sub in ("/sms send", "/sms list", "/sms cancel", "/sms bulk", "/sms template", "/sms status"):
        assert sub in text


def test_modal_opens_and_its_submission_sends_every_field(e2e: E2E) -> None:
    from tests.fakes.slack_requests import view_submission_body

    e2e.command("", trigger_id="trig-modal")
    opened = e2e.slack.wait_for("views.open")[0]
    view = opened["params"]["view"]
    if isinstance(view, str):
        view = json.loads(view)
    assert view["callback_id"] == "send_modal"
    block_ids = [b.get("block_id") for b in view["blocks"]]
    for needed in ("sender", "to", "name", "text", "images", "video", "file", "save_contact", "list_id", "extra_fields"):
        assert needed in block_ids
    values = {
        "sender": {"value": {"type": "static_select", "selected_option": {"value": "twlo"}}},
        "to": {"value": {"type": "plain_text_input", "value": "(617) 555-1212"}},
        "name": {"value": {"type": "plain_text_input", "value": "Jane Doe"}},
        "text": {"value": {"type": "plain_text_input", "value": "Your photos"}},
        "images": {"value": {"type": "plain_text_input", "value": "https://e.com/1.jpg\nhttps://e.com/2.jpg"}},
        "video": {"value": {"type": "plain_text_input", "value": None}},
        "file": {"value": {"type": "plain_text_input", "value": None}},
        "save_contact": {"value": {"type": "checkboxes", "selected_options": [{"value": "save"}]}},
        "list_id": {"value": {"type": "plain_text_input", "value": "12"}},
        "extra_fields": {"value": {"type": "plain_text_input", "value": "email_address=jane@example.com"}},
    }
    body = view_submission_body("send_modal", values, user_id="U1",
                                private_metadata=view["private_metadata"], view_id="V123")
    resp = e2e.sender.post(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 200 and not resp.content.strip(b"{} ")
    outcome_in_thread(e2e, "Accepted by Twilio SMS")
    sent = sociocs_sends(e2e)[0].json
    assert sent["to"] == "+16175551212" and sent["name"] == "Jane Doe" and sent["text"] == "Your photos"
    assert sent["image_urls"] == ["https://e.com/1.jpg", "https://e.com/2.jpg"]
    assert sent["contact_saving"] == {"save": True, "list_id": 12, "extra_fields": {"email_address": "jane@example.com"}}


def test_modal_with_a_bad_number_gets_a_field_error(e2e: E2E) -> None:
    from tests.fakes.slack_requests import view_submission_body

    values = {
        "sender": {"value": {"type": "static_select", "selected_option": {"value": "twlo"}}},
        "to": {"value": {"type": "plain_text_input", "value": "12345"}},
        "text": {"value": {"type": "plain_text_input", "value": "Hi"}},
    }
    body = view_submission_body("send_modal", values, private_metadata=json.dumps({"channel_id": "C1"}))
    resp = e2e.sender.post(body, "application/x-www-form-urlencoded")
    data = resp.json()
    assert data["response_action"] == "errors"
    assert "not a valid phone number" in data["errors"]["to"]
    assert e2e.rt.store.counts_by_status() == {}


def test_healthz_answers(e2e: E2E) -> None:
    import httpx

    resp = httpx.get(e2e.url + "/healthz")
    assert resp.status_code == 200 and resp.json() == {"ok": True}


def test_global_shortcut_opens_the_send_modal(e2e: E2E) -> None:
    from tests.fakes.slack_requests import shortcut_body

    resp = e2e.sender.post(shortcut_body("send_sms", user_id="U1", trigger_id="trig-short"),
                           "application/x-www-form-urlencoded")
    assert resp.status_code == 200
    opened = e2e.slack.wait_for("views.open")[0]
    assert opened["params"]["trigger_id"] == "trig-short"
    view = opened["params"]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "send_modal"


def test_wrong_bird_workspace_names_the_setting_to_fix(e2e_factory) -> None:
    e2e = e2e_factory(bird_workspace_id="00000000-0000-0000-0000-000000000000")
    e2e.command("send --via bird +16175551212 Hi")
    reply = outcome_in_thread(e2e, "Not sent")
    assert "BIRD_WORKSPACE_ID" in reply["params"]["text"]


def test_unreachable_provider_is_retried_then_given_up_without_duplicates(e2e_factory) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: connection refused, nothing sent
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    e2e = e2e_factory(textus_api_url=dead, sms_max_attempts=2)
    e2e.command("send --via textus +16175551212 Hi")
    reply = outcome_in_thread(e2e, "Not sent", timeout=8)
    assert "could not be reached" in reply["params"]["text"]
    assert "Gave up after 2 attempts" in reply["params"]["text"]
    row = e2e.rt.store.get(1)
    assert row.status == "failed" and row.attempts == 2


def test_contact_saving_with_a_sender_that_cannot_is_a_field_error(e2e: E2E) -> None:
    from tests.fakes.slack_requests import view_submission_body

    values = {
        "sender": {"value": {"type": "static_select", "selected_option": {"value": "bird"}}},
        "to": {"value": {"type": "plain_text_input", "value": "+16175551212"}},
        "text": {"value": {"type": "plain_text_input", "value": "Hi"}},
        "save_contact": {"value": {"type": "checkboxes", "selected_options": [{"value": "save"}]}},
    }
    body = view_submission_body("send_modal", values, private_metadata=json.dumps({"channel_id": "C1"}))
    data = e2e.sender.post(body, "application/x-www-form-urlencoded").json()
    assert data["response_action"] == "errors"
    assert "Bird SMS cannot save contacts" in data["errors"]["text"]
    assert e2e.rt.store.counts_by_status() == {}


def test_channel_message_shows_typed_text_literally_never_as_mentions_or_links(e2e: E2E) -> None:
    # Slack escapes &, < and > in command text; we unescape for the SMS and escape again for Slack.
    e2e.command("send --name &lt;!everyone&gt; +16175551212 hey &lt;!channel&gt; &lt;https://evil.example|bank.com&gt;")
    announce = e2e.slack.wait_for("chat.postMessage", lambda c: not c["params"].get("thread_ts"))[0]
    shown = announce["params"]["text"]
    assert "<!channel>" not in shown and "<!everyone>" not in shown and "<https://evil" not in shown
    assert "&lt;!channel&gt;" in shown and "&lt;!everyone&gt;" in shown
    outcome_in_thread(e2e, "Accepted by Twilio SMS")
    assert sociocs_sends(e2e)[0].json["text"] == "hey <!channel> <https://evil.example|bank.com>"
    assert sociocs_sends(e2e)[0].json["name"] == "<!everyone>"


def test_text_longer_than_1600_characters_is_refused_before_anything_happens(e2e: E2E) -> None:
    resp = e2e.command("send +16175551212 " + "x" * 1601)
    assert "The text is 1,601 characters; the limit is 1,600" in resp.json()["text"]
    assert e2e.rt.store.counts_by_status() == {}
    assert e2e.slack.calls_to("chat.postMessage") == []


def test_a_provider_error_echoing_any_configured_secret_is_redacted_everywhere(e2e_factory) -> None:
    e2e = e2e_factory(sociocs_webhook_secret="whsec-sociocs-xyz-123")
    echo = f"channel_key {CHANNEL_KEYS['twlo']} is not valid (webhook whsec-sociocs-xyz-123)"
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": echo}]})])
    e2e.command("send +16175551212 hello")
    outcome_in_thread(e2e, "Not sent")
    stored = e2e.rt.store.get(1)
    assert stored is not None and stored.error is not None
    assert CHANNEL_KEYS["twlo"] not in stored.error and "whsec-sociocs-xyz-123" not in stored.error
    status = e2e.command("status +16175551212").text
    assert "channel_key *** is not valid (webhook ***)" in status
    everything = status + json.dumps([c["params"] for c in e2e.slack.calls])
    assert CHANNEL_KEYS["twlo"] not in everything and "whsec-sociocs-xyz-123" not in everything
