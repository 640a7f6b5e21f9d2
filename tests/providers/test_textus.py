"""TextUs: requests as the docs show them, the rules, and every answer over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from providers.base import (
    AuthFailed,
    InvalidMessage,
    NotFound,
    NotSent,
    OutboundMessage,
    RateLimited,
    Rejected,
    TemplateSend,
    UnknownOutcome,
)
from providers.textus import TEMPLATE_422, TextusProvider, verify_textus_signature
from tests.fakes.providers import FakeProviders, Fault
from tests.providers.harness import TEXTUS_TOKEN, Case, assert_secret_kept, response, rows, run_case
from tests.providers.harness import live_textus as live

TOKEN = "tok-abcdef123456"
TO = "+13035551234"
TYPE = "application/vnd.textus+jsonld"


def offline() -> TextusProvider:
    return TextusProvider(TOKEN, "my_account")


# --------------------------------------------------------------------------- requests

BUILD_CASES = [
    pytest.param(OutboundMessage(to=TO, text="New phone who dis?"), {"to": TO, "body": "New phone who dis?"},
                 id="doc-sending-a-message"),
    pytest.param(
        OutboundMessage(to=TO, text="New phone who dis?", image_urls=["https://example.com/example.png"]),
        {"to": TO, "body": "New phone who dis?",
         "attachments": [{"media_url": "https://example.com/example.png", "content_type": "image/png"}]},
        id="doc-attachment",
    ),
    pytest.param(
        OutboundMessage(to=TO, text="Thanks for reaching out!", channel="whatsapp"),
        {"to": TO, "body": "Thanks for reaching out!", "channel": "whatsapp"},
        id="doc-whatsapp-body",
    ),
    pytest.param(
        OutboundMessage(to=TO, template=TemplateSend(id="dkDdrbR",
                                                     variables={"appt_date": "1/1", "appt_time": "12:00"})),
        {"to": TO, "channel": "whatsapp",
         "template": {"id": "dkDdrbR", "variable_values": {"appt_date": "1/1", "appt_time": "12:00"}}},
        id="doc-whatsapp-template",
    ),
    pytest.param(
        OutboundMessage(to=TO, file_url="https://x.example/menu.PDF?v=2"),
        {"to": TO, "attachments": [{"media_url": "https://x.example/menu.PDF?v=2", "content_type": "application/pdf"}]},
        id="type-from-suffix-ignoring-query",
    ),
    pytest.param(
        OutboundMessage(to=TO, file_url="https://x.example/download?id=9", file_content_type="text/calendar"),
        {"to": TO, "attachments": [{"media_url": "https://x.example/download?id=9", "content_type": "text/calendar"}]},
        id="type-given",
    ),
    pytest.param(
        OutboundMessage(to=TO, text="card", file_url="https://x.example/me.vcard", channel="sms"),
        {"to": TO, "body": "card", "attachments": [{"media_url": "https://x.example/me.vcard",
                                                    "content_type": "text/vcard"}]},
        id="vcard-sms",
    ),
]


@pytest.mark.parametrize(("msg", "body"), BUILD_CASES)
def test_build_request_matches_the_docs(msg: OutboundMessage, body: dict[str, Any]) -> None:
    req = offline().build_request(msg)
    assert req.method == "POST"
    assert req.url == "https://next.textus.com/my_account/messages"
    assert req.headers == {"Authorization": f"Bearer {TOKEN}", "Accept": TYPE, "Content-Type": TYPE}
    assert req.json_body == body


ALLOWED = ".png, .jpg/.jpeg, .gif, .rtf, .pdf, .ics and .vcf/.vcard"
VALIDATION_CASES = [
    (OutboundMessage(to=TO, image_urls=["https://x.example/a.png"], file_url="https://x.example/b.pdf"),
     ["TextUs takes one attachment per message; you gave 2."]),
    (OutboundMessage(to=TO, image_urls=["https://x.example/a.png", "https://x.example/b.png"]),
     ["TextUs takes at most 1 image(s); you gave 2."]),
    (OutboundMessage(to=TO, file_url="https://x.example/a.docx"),
     [f"TextUs accepts only {ALLOWED} attachments; cannot tell the type of https://x.example/a.docx."]),
    (OutboundMessage(to=TO, file_url="https://x.example/a", file_content_type="application/zip"),
     [f"TextUs accepts only {ALLOWED} attachments; application/zip is not one of them."]),
    (OutboundMessage(to=TO, text="x", video_url="https://x.example/a.mp4"),
     ["TextUs cannot send a video; remove the video URL or choose another sender."]),
    (OutboundMessage(to=TO, text="hi", template=TemplateSend(id="dkDdrbR")),
     ["TextUs sends a template on its own (the text is not used); remove the text/attachment."]),
    (OutboundMessage(to=TO, template=TemplateSend(id="")), ["The WhatsApp template needs its TextUs template id."]),
    (OutboundMessage(to=TO, text="x", schedule=datetime(2030, 1, 1, tzinfo=UTC)),
     ["TextUs cannot schedule through its API; leave the provider schedule empty."]),
    (OutboundMessage(to=TO, image_urls=["https://x.example/a.jpeg"]), []),
]


@pytest.mark.parametrize(("msg", "problems"), VALIDATION_CASES)
def test_validation_messages(msg: OutboundMessage, problems: list[str]) -> None:
    assert offline().validate(msg) == problems


def test_capabilities() -> None:
    p = offline()
    assert (p.name, p.label) == ("textus", "TextUs")
    caps = p.capabilities
    assert caps.max_images == 1 and caps.file and not caps.video and caps.templates
    assert caps.file_content_types is not None and "application/pdf" in caps.file_content_types


# --------------------------------------------------------------------------- answers


X = OutboundMessage(to=TO, text="x")


def answer(id: str, **kw: Any) -> Case:
    kw.setdefault("msg", X)
    return Case(id, "textus", **kw)


ANSWERS = rows(
    answer("201-gives-the-message-id", msg=OutboundMessage(to=TO, text="hi", image_urls=["https://x.example/a.gif"]),
           status="accepted", id_pattern="/messages/.*", provider_status="queued", requests=1,
           path="/my_account/messages", headers={"accept": TYPE, "content-type": TYPE}),
    answer("template-goes-through", id_pattern=".+", msg=OutboundMessage(
        to=TO, template=TemplateSend(id="dkDdrbR", variables={"appt_date": "1/1", "appt_time": "12:00"}))),
    answer("422-explains-the-template-not-approved", msg=OutboundMessage(to=TO, template=TemplateSend(id="pndTmpl")),
           error=Rejected, message=TEMPLATE_422),
    answer("422-explains-the-template-missing-variable", error=Rejected, message=TEMPLATE_422,
           msg=OutboundMessage(to=TO, template=TemplateSend(id="dkDdrbR", variables={"appt_date": "1/1"}))),
    answer("400-rejected", fault=Fault(status=400, body={"message": "to can't be blank"}), error=Rejected,
           match=r"TextUs refused the message \(400\)"),
    answer("401-names-the-setting", settings={"token": "wrong-token"}, error=AuthFailed,
           message="TextUs rejects the API token: check TEXTUS_API_TOKEN"),
    answer("404-names-the-account-setting", settings={"account": "someone_else"}, error=NotFound,
           match="TEXTUS_ACCOUNT"),
    answer("429-with-retry-after", fault=Fault(status=429, headers={"Retry-After": "7"}), error=RateLimited,
           retry_after=7.0),
    answer("5xx-unknown", fault=Fault(status=500), error=UnknownOutcome),
    answer("timeout-unknown", fault=Fault(delay=1.0), timeout=0.2, error=UnknownOutcome),
    answer("drop-unknown", fault=Fault(drop=True), error=UnknownOutcome),
    answer("refused-not-sent", refused=True, error=NotSent),
    answer("invalid-message-never-reaches-textus", msg=OutboundMessage(to=TO, file_url="https://x.example/a.exe"),
           error=InvalidMessage, requests=0),
)


@pytest.mark.parametrize("case", ANSWERS)
def test_answers(fake: FakeProviders, case: Case) -> None:
    run_case(fake, case)


def test_template_422_words() -> None:
    assert TEMPLATE_422 == (
        "TextUs refused the message: the WhatsApp template is not approved or its variables are missing/invalid (422)"
    )


def test_201_doc_example_body() -> None:
    result = offline().parse_response(response(201, {"@type": "Message", "id": "/messages/QNDkpL",
                                                     "deliveryState": "delivered"}))
    assert (result.provider_message_id, result.status, result.provider_status) == (
        "/messages/QNDkpL", "delivered", "delivered")


@pytest.mark.parametrize("status", [201, 202])
def test_answers_without_body_are_accepted_without_id(status: int) -> None:
    result = offline().parse_response(response(status))
    assert result.status == "accepted" and result.provider_message_id is None and result.detail


def test_429_with_rate_limit_reset_epoch(fake: FakeProviders) -> None:
    reset = int(time.time()) + 42
    fake.script("/messages", [Fault(status=429, headers={"X-RateLimit-Reset": str(reset),
                                                         "X-RateLimit-Remaining": "0"})])
    with pytest.raises(RateLimited) as info:
        live(fake).send(OutboundMessage(to=TO, text="x"))
    assert info.value.retry_after is not None and 39 <= info.value.retry_after <= 42


def test_429_without_hints_uses_the_default() -> None:
    with pytest.raises(RateLimited) as info:
        offline().parse_response(response(429))
    assert info.value.retry_after == 30.0


# --------------------------------------------------------------------------- signature

TX_SECRET = "textus-webhook-secret"
TX_BODY = b'{"@type":"WebhookDelivery","action":"message.delivered"}'
# printf '%s' "$BODY" | openssl dgst -sha256 -hmac 'textus-webhook-secret'
TX_SIG = "5d5f4fb23a142d50d47d7af1e892224b66f61fe16169e8590185615c7002e7c0"


@pytest.mark.parametrize(
    ("secret", "body", "header", "ok"),
    [
        (TX_SECRET, TX_BODY, TX_SIG, True),
        (TX_SECRET, TX_BODY, f" {TX_SIG.upper()} ", True),
        (TX_SECRET, TX_BODY + b"\n", TX_SIG, False),
        ("other", TX_BODY, TX_SIG, False),
        (TX_SECRET, TX_BODY, None, False),
        (TX_SECRET, TX_BODY, TX_SIG[:-1], False),
    ],
)
def test_signature(secret: str, body: bytes, header: str | None, ok: bool) -> None:
    assert verify_textus_signature(secret, body, header) is ok


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=400, body="Bearer textus-token-5b8e11 is not allowed here"),
        Fault(status=404, body={"error": "textus-token-5b8e11"}),
        Fault(status=401),
        Fault(status=503, body="textus-token-5b8e11"),
        Fault(drop=True),
    ],
)
def test_no_error_reveals_the_token(fake: FakeProviders, fault: Fault) -> None:
    assert fake.textus_token == "textus-token-5b8e11"
    assert_secret_kept(fake, "textus", fault, (TEXTUS_TOKEN,))


def test_422_with_a_reason_reports_that_reason_not_the_template_guess() -> None:
    provider = TextusProvider(token="t0ken-abcdef", account="acct")
    response = httpx.Response(422, json={"errors": {"to": ["is opted out"]}})
    with pytest.raises(Rejected) as err:
        provider.parse_response(response)
    assert "is opted out" in str(err.value)
    assert "template" not in str(err.value)
