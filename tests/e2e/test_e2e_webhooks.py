"""End to end: signed provider webhooks over HTTP -> store -> the thread and the notify channel."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import E2E
from tests.fakes.providers import Fault

SOCIOCS_SECRET = "sociocs-webhook-secret-123"
BIRD_SIGNING_KEY = "bird-signing-key-456"
TEXTUS_SECRET = "textus-webhook-secret-789"
SECRETS = dict(sociocs_webhook_secret=SOCIOCS_SECRET, bird_webhook_signing_key=BIRD_SIGNING_KEY,
               textus_webhook_secret=TEXTUS_SECRET)


# ---------------------------------------------------------------- signing, as the providers do


def sociocs_post(e2e: E2E, payload: Any, secret: str = SOCIOCS_SECRET, raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{e2e.url}/webhooks/sociocs", content=body,
                      headers={"Content-Type": "application/json", "X-Sociocs-Signature": sig})


def sociocs_status(message_id: str, status: str, error: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"status": status}
    if error:
        data["error"] = {"code": 30006, "message": error}
    return {"message_id": message_id, "event": "status_update", "event_data": data}


def bird_signature(key: str, ts: str, url: str, body: bytes) -> str:
    signed = f"{ts}\n{url}\n".encode() + hashlib.sha256(body).digest()
    return base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha256).digest()).decode()


def bird_post(e2e: E2E, payload: Any, *, ts: float | None = None, signed_url: str | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
    body = json.dumps(payload).encode()
    stamp = str(int(time.time() if ts is None else ts))
    url = signed_url or f"{e2e.url}/webhooks/bird"
    sent = {"Content-Type": "application/json", "messagebird-request-timestamp": stamp,
            "messagebird-signature": bird_signature(BIRD_SIGNING_KEY, stamp, url, body), **(headers or {})}
    return httpx.post(f"{e2e.url}/webhooks/bird", content=body, headers=sent)


def textus_post(e2e: E2E, payload: Any) -> httpx.Response:
    body = json.dumps(payload).encode()
    sig = hmac.new(TEXTUS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return httpx.post(f"{e2e.url}/webhooks/textus", content=body,
                      headers={"Content-Type": "application/json", "X-TextUs-Signature": sig})


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Iterator[Callable[..., E2E]]:
    made: list[E2E] = []

    def build(**settings: Any) -> E2E:
        values = {**SECRETS, "sms_notify_channel": "C2", **settings}
        e2e = e2e_factory(**{k: v for k, v in values.items() if v is not None})
        made.append(e2e)
        return e2e

    yield build
    for e2e in made:
        e2e.rt.ctx.delivery.stop()


def sent_row(e2e: E2E, text: str = "send +16175551212 Your order has shipped", message_id: int = 1) -> Any:
    """Send through the app and wait until its status line is in the thread."""
    e2e.command(text, user_id="U1", channel_id="C1")
    return e2e.wait(lambda: (r := e2e.rt.store.get(message_id)) and r.status_ts and r, 5, "the status line")


def updates_of(e2e: E2E, ts: str) -> list[dict[str, Any]]:
    return [c for c in e2e.slack.calls_to("chat.update") if c["params"].get("ts") == ts and c.ok]


def wait_update(e2e: E2E, ts: str, contains: str, timeout: float = 5.0) -> dict[str, Any]:
    return e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == ts and c.ok
                              and contains in c["params"].get("text", ""), timeout=timeout)[-1]


def channel_posts(e2e: E2E, channel: str) -> list[str]:
    return [c["params"]["text"] for c in e2e.slack.calls_to("chat.postMessage")
            if c["params"].get("channel") == channel and not c["params"].get("thread_ts")]


def delivery(e2e: E2E) -> Any:
    return e2e.rt.ctx.delivery


# ---------------------------------------------------------------- the tests


def test_delivered_updates_the_status_line_in_place_and_notifies_all(make: Callable[..., E2E]) -> None:
    e2e = make(sms_notify_on="all")
    row = sent_row(e2e)
    replies_before = len(e2e.thread_replies())
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "sent")).status_code == 200
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered")).status_code == 200
    update = wait_update(e2e, row.status_ts, "Status: delivered")
    assert update["params"]["channel"] == row.thread_channel
    assert update["params"]["text"].startswith(":white_check_mark: Accepted by Twilio SMS")
    notice = e2e.wait(lambda: [t for t in channel_posts(e2e, "C2") if "delivered" in t], 5, "a channel notice")
    assert notice[0].startswith(":white_check_mark: #1 to +1 617-555-1212 via Twilio SMS by <@U1>: delivered")
    assert delivery(e2e).outbox.flush()
    assert len(e2e.thread_replies()) == replies_before  # updated in place, no new reply
    assert e2e.rt.store.get(1).delivery == "delivered"


def test_failed_says_why_mentions_the_sender_and_notifies_failures(make: Callable[..., E2E]) -> None:
    e2e = make()  # SMS_NOTIFY_ON defaults to failures
    row = sent_row(e2e)
    sociocs_post(e2e, sociocs_status(row.provider_message_id, "failed", "Unknown destination handset"))
    update = wait_update(e2e, row.status_ts, "delivery failed")
    assert update["params"]["text"].startswith(":x:")
    assert "Unknown destination handset (code 30006)" in update["params"]["text"]
    reply = e2e.wait(lambda: [c for c in e2e.thread_replies() if "<@U1>" in c["params"]["text"]], 5, "a mention")
    assert reply[0]["params"]["text"] == (
        ":x: <@U1> your message to +1 617-555-1212 via Twilio SMS was not delivered: "
        "Unknown destination handset (code 30006)")
    assert reply[0]["params"]["thread_ts"] == row.thread_ts
    notice = e2e.wait(lambda: channel_posts(e2e, "C2"), 5, "a channel notice")
    assert "delivery failed: Unknown destination handset" in notice[0]


def test_only_failures_reach_the_channel_by_default(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e)
    sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered"))
    wait_update(e2e, row.status_ts, "Status: delivered")
    assert delivery(e2e).outbox.flush()
    assert channel_posts(e2e, "C2") == []


def test_duplicate_and_out_of_order_events_change_nothing(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.open_whatsapp_window()
    row = sent_row(e2e, "send --via twlowa +16175551212 Hi")
    pid = row.provider_message_id
    for status in ("delivered", "delivered", "sent", "delivered"):
        assert sociocs_post(e2e, sociocs_status(pid, status)).status_code == 200
    wait_update(e2e, row.status_ts, "Status: delivered")
    assert delivery(e2e).outbox.flush()  # the held update and anything after it went out
    assert len(updates_of(e2e, row.status_ts)) == 1  # the late "sent" and the duplicates did nothing
    assert e2e.rt.store.get(1).delivery == "delivered"
    events = e2e.rt.store.conn.execute("SELECT status FROM delivery_events ORDER BY id").fetchall()
    assert [e[0] for e in events] == ["delivered", "sent"]
    # WhatsApp's "read" still moves it on.
    sociocs_post(e2e, sociocs_status(pid, "read"))
    assert wait_update(e2e, row.status_ts, "Status: read")["params"]["text"].startswith(":eyes:")


def test_event_for_an_unknown_message_is_recorded_and_ignored(make: Callable[..., E2E]) -> None:
    e2e = make()
    resp = sociocs_post(e2e, sociocs_status("not-ours-123", "delivered"))
    assert resp.status_code == 200
    assert delivery(e2e).outbox.flush()  # ingest ran before the reply: anything due is queued
    assert e2e.slack.calls_to("chat.update") == [] and e2e.slack.calls_to("chat.postMessage") == []
    stored = e2e.rt.store.conn.execute("SELECT provider_message_id, message_id FROM delivery_events").fetchall()
    assert [tuple(r) for r in stored] == [("not-ours-123", None)]


def test_event_before_the_send_recorded_its_id_is_applied_later(make: Callable[..., E2E]) -> None:
    # Bird can report faster than our send call returns: the event waits for its row.
    e2e = make()
    e2e.providers.script("/messages", [Fault(delay=0.6)])
    e2e.command("send --via bird +16175551212 Quick", user_id="U1", channel_id="C1")
    sent = e2e.wait(lambda: e2e.providers.bird_messages.values(), 5, "Bird to store the message")
    message = sent[0]
    assert bird_post(e2e, {**message, "status": "delivered"}).status_code == 200
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the status line")
    wait_update(e2e, row.status_ts, "Status: delivered")


def test_unsigned_forged_and_unconfigured_webhooks_get_401_and_change_nothing(make: Callable[..., E2E],
                                                                              caplog: Any) -> None:
    e2e = make(textus_webhook_secret=None)
    row = sent_row(e2e)
    payload = sociocs_status(row.provider_message_id, "failed", "nope")
    body = json.dumps(payload).encode()
    assert httpx.post(f"{e2e.url}/webhooks/sociocs", content=body).status_code == 401
    assert sociocs_post(e2e, payload, secret="wrong-secret").status_code == 401
    caplog.set_level(logging.WARNING, logger="smsbot")
    for _ in range(3):
        assert textus_post(e2e, {"@type": "WebhookDelivery", "action": "message.delivered",
                                 "payload": {"id": "/messages/1"}}).status_code == 401
    assert [r.getMessage() for r in caplog.records].count(
        "refusing textus webhooks: TEXTUS_WEBHOOK_SECRET is not set") == 1
    assert delivery(e2e).outbox.flush()  # ingest ran before the reply: anything due is queued
    assert e2e.rt.store.conn.execute("SELECT count(*) FROM delivery_events").fetchone()[0] == 0
    assert e2e.slack.calls_to("chat.update") == []
    assert e2e.rt.store.get(1).delivery == "accepted"


def test_bird_signature_covers_the_public_url_and_refuses_stale_timestamps(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.command("send --via bird +16175551212 Hello", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the status line")
    message = e2e.providers.bird_messages.get(row.provider_message_id)
    failed = {**message, "status": "delivery_failed", "failure": {"description": "Carrier rejected"}}
    stale = bird_post(e2e, failed, ts=time.time() - 6 * 60)
    assert stale.status_code == 401
    wrong_url = bird_post(e2e, failed, signed_url="https://elsewhere.example/webhooks/bird")
    assert wrong_url.status_code == 401
    assert e2e.rt.store.get(1).delivery == "accepted"
    # Behind a proxy Bird signed https://bot.example.com/...: the app rebuilds that URL.
    proxied = bird_post(e2e, failed, signed_url="https://bot.example.com/webhooks/bird",
                        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bot.example.com"})
    assert proxied.status_code == 200
    update = wait_update(e2e, row.status_ts, "delivery failed")
    assert "Carrier rejected" in update["params"]["text"]


def test_textus_delivered(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.command("send --via textus +16175551212 Hello", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the status line")
    resp = textus_post(e2e, {"@type": "WebhookDelivery", "timestamp": "2024-01-01T00:00:00Z",
                             "action": "message.delivered", "payload": {"id": row.provider_message_id}})
    assert resp.status_code == 200
    wait_update(e2e, row.status_ts, "Status: delivered")


def test_malformed_bodies_get_400_and_are_logged_without_content(make: Callable[..., E2E], caplog: Any) -> None:
    e2e = make()
    caplog.set_level(logging.INFO)
    secret_text = "+16175559999 private words"
    assert sociocs_post(e2e, None, raw=f"{{not json {secret_text}".encode()).status_code == 400
    assert sociocs_post(e2e, {"event": "status_update", "text": secret_text}).status_code == 400
    assert sociocs_post(e2e, [secret_text]).status_code == 400
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "malformed" in logged and secret_text not in logged and "private" not in logged
    # An incoming message event is not an error: 200, nothing stored.
    assert sociocs_post(e2e, {"event": "message", "message_id": "m1", "text": "hi"}).status_code == 200
    assert e2e.rt.store.conn.execute("SELECT count(*) FROM delivery_events").fetchone()[0] == 0


def test_rate_limited_thread_updates_are_coalesced_and_the_last_state_wins(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.open_whatsapp_window()
    row = sent_row(e2e, "send --via twlowa +16175551212 Hi")
    e2e.slack.fail_next("chat.update", status=429, retry_after=1)
    for status in ("sent", "delivered", "read"):
        sociocs_post(e2e, sociocs_status(row.provider_message_id, status))
        time.sleep(0.05)
    final = wait_update(e2e, row.status_ts, "Status: read", timeout=6)
    assert delivery(e2e).outbox.flush()
    calls = [c for c in e2e.slack.calls_to("chat.update") if c["params"].get("ts") == row.status_ts]
    assert calls[0].status == 429
    assert calls[-1] is final
    assert len(calls) <= 3  # 3 events, one 429: never one call per event plus retries
    assert final.time - calls[0].time >= 0.9  # Retry-After honoured


def test_without_a_webhook_secret_the_thread_says_reports_are_off(make: Callable[..., E2E]) -> None:
    e2e = make(sociocs_webhook_secret=None)
    row = sent_row(e2e)
    update = wait_update(e2e, row.status_ts, "Delivery reports are off")
    assert "Status: accepted by provider" in update["params"]["text"]
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered")).status_code == 401


def test_sandbox_shows_the_whole_flow_without_any_account(make: Callable[..., E2E]) -> None:
    e2e = make(with_providers=False)
    e2e.command("send +16175551212 Try me", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the status line")
    update = wait_update(e2e, row.status_ts, "Simulated status: delivered")
    assert update["params"]["text"].startswith(":white_check_mark: sandbox: not sent")
    assert e2e.rt.store.get(1).delivery == "delivered"


def test_bird_report_with_our_reference_settles_an_unknown_send(make: Callable[..., E2E]) -> None:
    e2e = make()
    e2e.providers.script("/messages", [Fault(status=502, body="bad gateway")])
    e2e.command("send --via bird +16175551212 Hi", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status == "unknown" and r.status_ts and r, 5, "unknown")
    report = {"id": "bird-msg-42", "status": "delivered", "reference": "smsbot-1", "direction": "outgoing"}
    assert bird_post(e2e, {"service": "channels", "event": "sms.outbound", "payload": report}).status_code == 200
    update = wait_update(e2e, row.status_ts, "Status: delivered")
    assert "message id `bird-msg-42`" in update["params"]["text"]
    assert "reported this message (reference smsbot-1), so it was sent" in update["params"]["text"]
    fresh = e2e.rt.store.get(1)
    assert fresh.status == "sent" and fresh.delivery == "delivered"


# ---------------------------------------------------------------- customer and provider text stays text

RAW_MARKUP = ("<!channel>", "<!here>", "<https://evil.example|click>", "<https://evil.example")


def slack_payloads(e2e: E2E) -> str:
    """Everything the app sent to Slack, as one string (text, blocks, views)."""
    return "\n".join(json.dumps(c.params) for c in e2e.slack.calls)


def test_customer_and_provider_text_cannot_ping_or_inject_links_anywhere(make: Callable[..., E2E]) -> None:
    e2e = make(sms_notify_on="all")
    # What Slack sends for typed `<`, `>`: entities, undone by the command parser.
    e2e.command('send --name "&lt;!channel&gt; Bob &lt;https://evil.example|click&gt;" +16175551212 '
                "Hi &lt;!here&gt; see &lt;https://evil.example|click&gt;", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the status line")
    assert row.name == "<!channel> Bob <https://evil.example|click>"  # stored as typed
    failure = "<!channel> call <https://evil.example|click> & <!here>"
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "failed", failure)).status_code == 200

    shown = "&lt;!channel&gt; call &lt;https://evil.example|click&gt; &amp; &lt;!here&gt; (code 30006)"
    line = wait_update(e2e, row.status_ts, "delivery failed")["params"]["text"]
    assert line.endswith(f"Status: delivery failed: {shown}.")
    reply = e2e.wait(lambda: [c for c in e2e.thread_replies() if "not delivered" in c["params"]["text"]], 5,
                     "the failure reply")[0]["params"]["text"]
    name = "&lt;!channel&gt; Bob &lt;https://evil.example|click&gt;"
    assert reply == f":x: <@U1> your message to {name} (+1 617-555-1212) via Twilio SMS was not delivered: {shown}"
    notice = e2e.wait(lambda: channel_posts(e2e, "C2"), 5, "the channel notice")[0]
    assert notice == (f":x: #1 to {name} (+1 617-555-1212) via Twilio SMS by <@U1>: delivery failed: {shown}"
                      " — Hi &lt;!here&gt; see &lt;https://evil.example|click&gt;")

    # `/sms status` and the App Home show the same row.
    from tests.fakes.slack_requests import app_home_opened_event

    status = e2e.command("status +16175551212", user_id="U1", channel_id="C1").json()
    history = json.dumps(status)
    assert f"delivery failed: {shown}" in history
    assert "Hi &lt;!here&gt; see &lt;https://evil.example|click&gt;" in history
    assert e2e.sender.event(app_home_opened_event("U1")).status_code == 200
    view = e2e.slack.wait_for("views.publish")[0]["params"]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    failures = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"
                and b["text"]["text"].startswith(":x: *#1*")]
    assert len(failures) == 1
    assert failures[0].endswith(f" to {name} (+1 617-555-1212) via Twilio SMS by <@U1>: delivery failed: {shown}")

    assert delivery(e2e).outbox.flush()
    sent = slack_payloads(e2e)
    for markup in RAW_MARKUP:
        assert markup not in sent, markup
        assert markup not in history, markup
    assert "<@U1>" in sent  # the mentions we make ourselves still work


# ---------------------------------------------------------------- bodies that must not hurt


def test_deeply_nested_json_is_malformed_not_a_crash(make: Callable[..., E2E], caplog: Any) -> None:
    e2e = make()
    caplog.set_level(logging.INFO)
    resp = sociocs_post(e2e, None, raw=b"[" * 100_000)  # signed, so it reaches the parser
    assert resp.status_code == 400
    assert resp.json() == {"ok": False, "error": "malformed payload"}
    logged = [r.getMessage() for r in caplog.records]
    assert "sociocs webhook refused: malformed (100000 bytes, RecursionError)" in logged
    assert not [r for r in caplog.records if r.exc_info] and "[[[" not in " ".join(logged)
    # The app still answers.
    assert sociocs_post(e2e, sociocs_status("not-ours", "delivered")).status_code == 200


def _raw_exchange(e2e: E2E, head: bytes, body: bytes = b"") -> bytes:
    """Send raw bytes (no client fixing the framing) and read the answer."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(e2e.url)
    with socket.create_connection((where.hostname, where.port), timeout=5) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_too_large_by_content_length_is_refused_before_reading(make: Callable[..., E2E]) -> None:
    e2e = make()
    MAX_BODY = e2e.rt.settings.sms_max_body_bytes  # noqa: N806

    # The body is never sent: the answer comes from the header alone (else this would hang).
    head = (f"POST /webhooks/sociocs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {MAX_BODY + 1}\r\n\r\n").encode()
    answer = _raw_exchange(e2e, head)
    assert answer.startswith(b"HTTP/1.1 413")


def test_too_large_without_content_length_stops_reading_at_the_limit(make: Callable[..., E2E]) -> None:
    e2e = make()
    MAX_BODY = e2e.rt.settings.sms_max_body_bytes  # noqa: N806

    head = (b"POST /webhooks/sociocs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(MAX_BODY // len(piece) + 1))
    # No terminating chunk: the app must answer without waiting for the end of the body.
    answer = _raw_exchange(e2e, head, chunks)
    assert answer.startswith(b"HTTP/1.1 413")
    # A normal chunked delivery report still works.
    row = sent_row(e2e)
    body = json.dumps(sociocs_status(row.provider_message_id, "delivered")).encode()
    sig = hmac.new(SOCIOCS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    resp = httpx.post(f"{e2e.url}/webhooks/sociocs", content=iter([body[:10], body[10:]]),
                      headers={"Content-Type": "application/json", "X-Sociocs-Signature": sig})
    assert resp.status_code == 200 and "content-length" not in resp.request.headers
    wait_update(e2e, row.status_ts, "Status: delivered")
