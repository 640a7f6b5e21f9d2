"""TextUs: requests as the docs show them, the rules, and every answer over real HTTP."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
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
    ProviderError,
    RateLimited,
    Rejected,
    TemplateSend,
    UnknownOutcome,
)
from providers.textus import TEMPLATE_422, TextusProvider, verify_textus_signature
from tests.fakes.providers import FakeProviders, Fault

TOKEN = "tok-abcdef123456"
TO = "+13035551234"
TYPE = "application/vnd.textus+jsonld"


def offline() -> TextusProvider:
    return TextusProvider(TOKEN, "my_account")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake: FakeProviders) -> None:
    fake.reset()


def live(fake: FakeProviders, timeout: float = 5.0, **kw: Any) -> TextusProvider:
    args: dict[str, Any] = {
        "token": fake.textus_token,
        "account": fake.textus_account,
        "base_url": fake.url,
        "client": httpx.Client(timeout=httpx.Timeout(timeout, connect=1.0)),
    }
    args.update(kw)
    return TextusProvider(**args)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers or {})


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


def test_201_gives_the_message_id(fake: FakeProviders) -> None:
    result = live(fake).send(OutboundMessage(to=TO, text="hi", image_urls=["https://x.example/a.gif"]))
    assert result.status == "accepted"
    assert result.provider_message_id is not None and result.provider_message_id.startswith("/messages/")
    assert result.provider_status == "queued"
    (req,) = fake.requests
    assert req.path == f"/{fake.textus_account}/messages"
    assert req.headers["accept"] == TYPE and req.headers["content-type"] == TYPE


def test_201_doc_example_body() -> None:
    result = offline().parse_response(response(201, {"@type": "Message", "id": "/messages/QNDkpL",
                                                     "deliveryState": "delivered"}))
    assert (result.provider_message_id, result.status, result.provider_status) == (
        "/messages/QNDkpL", "delivered", "delivered")


@pytest.mark.parametrize("status", [201, 202])
def test_answers_without_body_are_accepted_without_id(status: int) -> None:
    result = offline().parse_response(response(status))
    assert result.status == "accepted" and result.provider_message_id is None and result.detail


def test_template_goes_through(fake: FakeProviders) -> None:
    msg = OutboundMessage(to=TO, template=TemplateSend(id="dkDdrbR",
                                                       variables={"appt_date": "1/1", "appt_time": "12:00"}))
    assert live(fake).send(msg).provider_message_id


@pytest.mark.parametrize(
    "template",
    [TemplateSend(id="pndTmpl"), TemplateSend(id="dkDdrbR", variables={"appt_date": "1/1"})],
    ids=["not-approved", "missing-variable"],
)
def test_422_explains_the_template(fake: FakeProviders, template: TemplateSend) -> None:
    with pytest.raises(Rejected) as info:
        live(fake).send(OutboundMessage(to=TO, template=template))
    assert str(info.value) == TEMPLATE_422
    assert TEMPLATE_422 == (
        "TextUs refused the message: the WhatsApp template is not approved or its variables are missing/invalid (422)"
    )


def test_400_is_rejected(fake: FakeProviders) -> None:
    fake.script("/messages", [Fault(status=400, body={"message": "to can't be blank"})])
    with pytest.raises(Rejected, match=r"TextUs refused the message \(400\)"):
        live(fake).send(OutboundMessage(to=TO, text="x"))


def test_401_names_the_setting(fake: FakeProviders) -> None:
    with pytest.raises(AuthFailed) as info:
        live(fake, token="wrong-token").send(OutboundMessage(to=TO, text="x"))
    assert str(info.value) == "TextUs rejects the API token: check TEXTUS_API_TOKEN"


def test_404_names_the_account_setting(fake: FakeProviders) -> None:
    with pytest.raises(NotFound, match="TEXTUS_ACCOUNT"):
        live(fake, account="someone_else").send(OutboundMessage(to=TO, text="x"))


def test_429_with_retry_after(fake: FakeProviders) -> None:
    fake.script("/messages", [Fault(status=429, headers={"Retry-After": "7"})])
    with pytest.raises(RateLimited) as info:
        live(fake).send(OutboundMessage(to=TO, text="x"))
    assert info.value.retry_after == 7.0


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


def test_5xx_is_unknown(fake: FakeProviders) -> None:
    fake.script("/messages", [Fault(status=500)])
    with pytest.raises(UnknownOutcome):
        live(fake).send(OutboundMessage(to=TO, text="x"))


def test_timeout_is_unknown(fake: FakeProviders) -> None:
    fake.script("/messages", [Fault(delay=1.0)])
    with pytest.raises(UnknownOutcome):
        live(fake, timeout=0.2).send(OutboundMessage(to=TO, text="x"))


def test_drop_is_unknown(fake: FakeProviders) -> None:
    fake.script("/messages", [Fault(drop=True)])
    with pytest.raises(UnknownOutcome):
        live(fake).send(OutboundMessage(to=TO, text="x"))


def test_refused_is_not_sent() -> None:
    with pytest.raises(NotSent):
        TextusProvider(TOKEN, "acct", base_url=closed_port_url()).send(OutboundMessage(to=TO, text="x"))


def test_invalid_message_never_reaches_textus(fake: FakeProviders) -> None:
    with pytest.raises(InvalidMessage):
        live(fake).send(OutboundMessage(to=TO, file_url="https://x.example/a.exe"))
    assert fake.requests == []


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
    fake.script("/messages", [fault])
    p = live(fake)
    with pytest.raises(ProviderError) as info:
        p.send(OutboundMessage(to=TO, text="x"))
    assert fake.textus_token not in str(info.value)
    assert fake.textus_token not in repr(info.value)
    assert fake.textus_token not in repr(p)


def test_422_with_a_reason_reports_that_reason_not_the_template_guess() -> None:
    import httpx

    from providers.textus import TextusProvider

    provider = TextusProvider(token="t0ken-abcdef", account="acct")
    response = httpx.Response(422, json={"errors": {"to": ["is opted out"]}})
    with pytest.raises(Rejected) as err:
        provider.parse_response(response)
    assert "is opted out" in str(err.value)
    assert "template" not in str(err.value)
