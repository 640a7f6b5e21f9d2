"""QA of conversations and consent with hostile inputs, end to end over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import E2E
from tests.e2e.test_e2e_conversations import (
    NUMBER,
    bird_inbound,
    flush,
    make,
    posts_in,
    sociocs_inbound,
    textus_inbound,
)
from tests.e2e.test_e2e_webhooks import bird_post, sent_row, sociocs_post, textus_post

__all__ = ["make"]


def _escaped(text: str) -> str:
    """The text as a JSON string literal that keeps \\u0000 and lone surrogates as escapes."""
    return json.dumps(text)


@pytest.mark.parametrize("via, post, payload", [
    ("twlo", sociocs_post, sociocs_inbound("@TEXT@")),
    ("bird", bird_post, bird_inbound({"type": "text", "text": {"text": "@TEXT@"}})),
    ("textus", textus_post, textus_inbound("@TEXT@")),
])
def test_nul_and_lone_surrogates_in_a_reply_are_stored_and_shown_not_a_503(
        make: Callable[..., E2E], via: str, post: Any, payload: dict[str, Any]) -> None:
    """GSM's '@' is 0x00: a provider that decodes it badly sends \\u0000, which PostgreSQL refuses
    in text, and a lone surrogate escape cannot be encoded as UTF-8: both once answered 503 for
    ever (the provider retrying a message nobody would see)."""
    e2e = make()
    row = sent_row(e2e, f"send --via {via} {NUMBER} Your table is ready")
    raw = json.dumps(payload).replace('"@TEXT@"', _escaped("meet at\u0000 8 \ud800 ok")).encode()
    resp = _post_raw(post, e2e, raw)
    assert resp.status_code == 200, resp.text
    found = posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "meet at")
    text = found[-1]["params"]["text"]
    assert "meet at 8 \ufffd ok" in text and "\x00" not in text
    flush(e2e)


def _post_raw(post: Any, e2e: E2E, raw: bytes) -> Any:
    """The providers' signed post, with a body given as bytes."""
    import hashlib
    import hmac
    import time

    import httpx

    from tests.e2e.test_e2e_webhooks import BIRD_SIGNING_KEY, SOCIOCS_SECRET, TEXTUS_SECRET, bird_signature

    if post is sociocs_post:
        return sociocs_post(e2e, None, raw=raw)
    if post is textus_post:
        sig = hmac.new(TEXTUS_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        return httpx.post(f"{e2e.url}/webhooks/textus", content=raw,
                          headers={"Content-Type": "application/json", "X-TextUs-Signature": sig})
    stamp = str(int(time.time()))
    url = f"{e2e.url}/webhooks/bird"
    assert SOCIOCS_SECRET
    return httpx.post(url, content=raw, headers={"Content-Type": "application/json", "messagebird-request-timestamp": stamp,
                                                "messagebird-signature": bird_signature(BIRD_SIGNING_KEY, stamp, url, raw)})


@pytest.mark.parametrize("payload, reason", [
    (sociocs_inbound("hi", image_urls="https://x.example/a.png"), "image_urls is not a list"),
    (sociocs_inbound("hi", frm="1617555121"), "is not a possible phone number"),
])
def test_an_inbound_message_that_cannot_be_read_is_logged_with_why_and_no_number(
        make: Callable[..., E2E], caplog: pytest.LogCaptureFixture, payload: dict[str, Any], reason: str) -> None:
    """The operator learns why a customer's message was not shown (not "no usable number or id"
    when the number was fine), and the log holds no phone number."""
    e2e = make()
    with caplog.at_level("WARNING", logger="smsbot.webhooks"):
        assert sociocs_post(e2e, payload).status_code == 200
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "smsbot.webhooks")
    assert reason in logged and "ignored" in logged
    assert "617555" not in logged and "5551212" not in logged


# Relative stamps are computed in the test: parameters must be the same in every collecting process.
@pytest.mark.parametrize("ahead_ms", [
    365 * 86400 * 1000,  # a provider clock a year ahead
    None,  # 9999-12-31: the 24-hour window after it is past datetime's range
], ids=["a-year-ahead", "9999-12-31"])
def test_a_provider_time_in_the_future_counts_as_now(make: Callable[..., E2E], ahead_ms: int | None) -> None:
    """Otherwise the WhatsApp window stays open until then (free text to someone who never wrote
    in the last 24 hours), and a date near the end of the calendar failed every post for ever."""
    e2e = make(sms_inbox_channel="C2")
    before = time.time()
    stamp_ms = 253402300799999 if ahead_ms is None else int(before * 1000) + ahead_ms
    payload = sociocs_inbound("from the future", mid="F1", sender="twlowa", timestamp=stamp_ms)
    assert sociocs_post(e2e, payload).status_code == 200
    post = e2e.slack.wait_for("chat.postMessage", lambda c: "from the future" in c["params"].get("text", ""))
    assert post[-1]["params"]["channel"] == "C2"
    flush(e2e)
    (received,) = e2e.rt.store.conn.execute("SELECT received_at FROM inbound_messages").fetchone()
    assert before - 1 <= received <= time.time() + 1


def test_bird_attachments_are_capped_and_only_web_urls_are_linked(make: Callable[..., E2E]) -> None:
    """Each Bird attachment is fetched and uploaded, or posted as a link: a payload listing
    hundreds would flood the thread (and Slack's rate limits); a javascript: URL is no link."""
    e2e = make(sms_inbox_channel="C2")
    images = [{"mediaUrl": "javascript:alert(1)"}] + [{"mediaUrl": f"https://cdn.test/{i}.png"} for i in range(60)]
    assert bird_post(e2e, bird_inbound({"type": "image", "image": {"images": images}}, mid="bmany")).status_code == 200
    e2e.slack.wait_for("chat.postMessage", lambda c: "more attachment" in c["params"].get("text", ""))
    flush(e2e)
    texts = [c["params"].get("text", "") for c in e2e.slack.calls_to("chat.postMessage")]
    assert len([t for t in texts if t.startswith("Attachment ")]) <= 20
    assert not any("<javascript:" in t for t in texts)


def test_optout_and_optin_take_a_number_written_in_pieces_like_send(make: Callable[..., E2E]) -> None:
    """`/sms send 0617 555 1212 Hi` works, so a manager types `/sms optout 617 555 1213 ...` too."""
    e2e = make()
    said = e2e.command("optout 617 555 1213 asked  by phone").json()["text"]
    assert "+1 617-555-1213 is opted out" in said, said
    listed = e2e.command("optouts").json()["text"]
    assert "asked  by phone" in listed
    assert "is opted back in" in e2e.command("optin (617) 555-1213").json()["text"]
    assert "'hello' is not" in e2e.command("optout hello 555 1213").json()["text"]
    assert "'617' is not" in e2e.command("optout 617 asked by phone").json()["text"]
