"""End to end: /slack/events and /webhooks/<provider> under hostile or absurd HTTP input.

Size is capped while streaming (413, nothing buffered past SMS_MAX_BODY_BYTES), Slack's
signature is checked before any parsing (401), malformed signed bodies get 400, a listener
that raises answers 400 (or an ephemeral apology for a slash command), never 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import E2E, SIGNING_SECRET
from tests.fakes.slack_requests import FORM, JSON, event_body, view_submission_body

CAP = 64 * 1024  # a small SMS_MAX_BODY_BYTES keeps these tests quick


@pytest.fixture
def app(e2e_factory: Callable[..., E2E]) -> E2E:
    return e2e_factory(sms_max_body_bytes=CAP, sociocs_webhook_secret="sociocs-webhook-secret")


def raw_exchange(e2e: E2E, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes on a socket and read the status line and headers, without finishing the body."""
    port = int(e2e.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def no_traceback_nor_body(caplog: pytest.LogCaptureFixture, *fragments: str) -> None:
    for record in caplog.records:
        assert record.exc_info is None, f"traceback logged: {record.getMessage()}"
        for fragment in fragments:
            assert fragment not in record.getMessage()


def post_signed(e2e: E2E, body: bytes, content_type: str) -> httpx.Response:
    """Signed over the raw bytes (slack_sdk's signer only takes UTF-8)."""
    stamp = str(int(time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}
    return httpx.post(e2e.url + "/slack/events", content=body, headers=headers)


# ---------------------------------------------------------------- size


@pytest.mark.parametrize("path", ["/slack/events", "/webhooks/sociocs"])
def test_declared_oversized_body_gets_413_before_it_is_sent(app: E2E, path: str) -> None:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {CAP + 1}\r\n\r\n").encode()
    # The body never comes: only an answer from the header alone keeps this from hanging.
    assert raw_exchange(app, head).startswith(b"HTTP/1.1 413")


def test_unsigned_chunked_body_without_end_gets_413_at_the_cap(app: E2E) -> None:
    head = (b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"{" * 16384
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(CAP // len(piece) + 1))
    # No terminating chunk: the app must answer without waiting for the end of the body.
    assert raw_exchange(app, head, chunks).startswith(b"HTTP/1.1 413")


def test_unsigned_streamed_body_is_refused_without_being_buffered(app: E2E) -> None:
    total = 24 * 1024 * 1024

    def stream() -> Iterator[bytes]:  # no Content-Length: httpx sends it chunked
        for _ in range(total // 65536):
            yield b"payload=" + b"x" * (65536 - 8)

    tracemalloc.start()
    try:
        resp = httpx.post(app.url + "/slack/events", content=stream(), headers={"Content-Type": FORM}, timeout=30)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert resp.status_code == 413 and resp.json() == {"ok": False, "error": "too large"}
    # The server discards what comes after the cap: far less than the body is ever held.
    assert peak < total // 4, f"peak {peak} bytes while receiving {total}"
    assert app.rt.store.counts_by_status() == {}


def test_a_lying_content_length_does_not_let_the_reader_past_the_cap(app: E2E) -> None:
    # What a server that trusted Content-Length would hand the app: far more than declared.
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"x" * 4096, "more_body": pulled < 100_000}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/slack/events", "raw_path": b"/slack/events", "query_string": b"",
             "root_path": "", "headers": [(b"content-length", b"10"), (b"host", b"x")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    asyncio.run(app.rt.web(scope, receive, send))
    assert sent[0]["status"] == 413
    assert pulled * 4096 <= CAP + 4096  # stopped reading right after the cap


def test_the_cap_is_the_setting_and_bodies_under_it_still_work(app: E2E) -> None:
    body = json.dumps({"event": "x", "pad": "y" * (CAP + 10)}).encode()
    assert httpx.post(app.url + "/webhooks/sociocs", content=body).status_code == 413
    assert app.sender.post(body, JSON).status_code == 413
    assert app.command("help").status_code == 200


# ---------------------------------------------------------------- signature before parsing


@pytest.mark.parametrize(("body", "content_type"), [(b"payload=%7B", FORM), (b"{not json", JSON),
                                                    (b"\xff\xfe", FORM), (b"[1, 2]", JSON),
                                                    (b'{"type": "event_callback", "event": "hi"}', JSON)])
def test_malformed_body_is_401_unsigned_and_400_signed_without_traceback(
    app: E2E, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    caplog.set_level(logging.INFO)
    unsigned = httpx.post(app.url + "/slack/events", content=body, headers={"Content-Type": content_type})
    assert unsigned.status_code == 401 and unsigned.json()["error"] == "invalid signature"
    signed = post_signed(app, body, content_type)
    assert signed.status_code == 400 and signed.json()["error"] == "malformed payload"
    no_traceback_nor_body(caplog, "not json", "%7B")
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 2  # one line per request


def test_a_timestamp_that_is_not_a_number_is_401(app: E2E, caplog: pytest.LogCaptureFixture) -> None:
    resp = httpx.post(app.url + "/slack/events", content=b"{}",
                      headers={"Content-Type": JSON, "X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=1"})
    assert resp.status_code == 401
    no_traceback_nor_body(caplog)


def test_without_a_signing_secret_http_requests_are_401_and_never_parsed(
    e2e_factory: Callable[..., E2E], caplog: pytest.LogCaptureFixture
) -> None:
    e2e = e2e_factory(slack_signing_secret=None, slack_app_token="xapp-1-test")
    resp = e2e.sender.post(b"payload=%7B", FORM)  # signed with a secret the app does not have
    assert resp.status_code == 401
    no_traceback_nor_body(caplog)


# ---------------------------------------------------------------- absurd signed payloads (defect 7)


def send_values(**extra: Any) -> dict[str, Any]:
    return {"sender": {"value": {"type": "static_select", "selected_option": {"value": "twlo"}}},
            "to": {"value": "+16175551212"}, "text": {"value": "hi"}, **extra}


@pytest.mark.parametrize("epoch", [1e20, "1e20", -1e20, "soon", 253402300800])
def test_an_absurd_send_later_time_is_a_field_error(app: E2E, epoch: Any) -> None:
    values = send_values(when_dt={"value": {"type": "datetimepicker", "selected_date_time": epoch}})
    resp = app.sender.post(view_submission_body("send_modal", values, private_metadata="{}"), FORM)
    assert resp.status_code == 200
    assert resp.json() == {"response_action": "errors",
                           "errors": {"when_date": "That date and time is not one we can schedule; pick it again."}}
    assert app.rt.store.counts_by_status() == {}


@pytest.mark.parametrize("meta", ["{nope-meta", "[\"list-meta\"]", "\"string-meta\""])
def test_private_metadata_that_is_not_ours_is_400(app: E2E, meta: str, caplog: pytest.LogCaptureFixture) -> None:
    resp = app.sender.post(view_submission_body("send_modal", send_values(), private_metadata=meta), FORM)
    assert resp.status_code == 400
    assert app.rt.store.counts_by_status() == {}
    no_traceback_nor_body(caplog, meta)


@pytest.mark.parametrize("event", ["hello", 5, ["app_home_opened"]])
def test_an_event_that_is_not_an_object_is_400(app: E2E, event: Any) -> None:
    body = json.loads(event_body({"type": "app_home_opened", "user": "U1"}))
    body["event"] = event
    resp = app.sender.post(json.dumps(body).encode(), JSON)
    assert resp.status_code == 400


def test_a_listener_that_raises_answers_400_not_500(app: E2E, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.rt.ctx, "allowed", broken)
    values = send_values()
    resp = app.sender.post(view_submission_body("send_modal", values, private_metadata="{}"), FORM)
    assert resp.status_code == 400
    # A slash command says so to the person instead of Slack's bare "failed" notice.
    resp = app.command("send +16175551212 hi")
    assert resp.status_code == 200 and "Something went wrong" in resp.json()["text"]
    assert app.rt.store.counts_by_status() == {}

