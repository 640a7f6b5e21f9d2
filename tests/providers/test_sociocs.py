"""Sociocs: requests as the docs show them, the rules, and every answer over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from providers.base import (
    AuthFailed,
    BulkRecipient,
    ContactSaving,
    InvalidMessage,
    NotFound,
    NotSent,
    OutboundMessage,
    RateLimited,
    Rejected,
    TemplateSend,
    UnknownOutcome,
)
from providers.sociocs import SociocsProvider, verify_sociocs_signature
from tests.fakes.providers import FakeProviders, Fault
from tests.providers.harness import (
    SOCIOCS_KEY,
    Case,
    assert_clean,
    assert_secret_kept,
    closed_port_url,
    rows,
    run_case,
)
from tests.providers.harness import live_sociocs as live

KEY = "apiuser:apisecret-123"
TO = "+16175551212"
EDT = timezone(timedelta(hours=-4))
IMG = "https://fastly.picsum.photos/id/1068/200/300.jpg?hmac=ICIwYXRGTpDxBPZAI7V8YxGtBBanV8Dfbe_DLNKtYcE"


def offline(code: str = "twlo") -> SociocsProvider:
    return SociocsProvider(code, KEY, "your_channel_key")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- requests

BUILD_CASES = [
    pytest.param(
        "twlo",
        OutboundMessage(to="phone_number", name="recipient_name", text="message"),
        {"provider": "twlo", "channel_key": "your_channel_key", "to": "phone_number", "name": "recipient_name",
         "text": "message"},
        id="doc-text-only",
    ),
    pytest.param(
        "twlo",
        OutboundMessage(to="phone_number", name="recipient_name", text="message", image_urls=[IMG]),
        {"provider": "twlo", "channel_key": "your_channel_key", "to": "phone_number", "name": "recipient_name",
         "text": "message", "image_url": IMG},
        id="doc-text-and-image",
    ),
    pytest.param(
        "twlo",
        OutboundMessage(to=TO, image_urls=["https://a.example/1.png", "https://a.example/2.png"]),
        {"provider": "twlo", "channel_key": "your_channel_key", "to": TO,
         "image_urls": ["https://a.example/1.png", "https://a.example/2.png"]},
        id="older-doc-several-images",
    ),
    pytest.param(
        "twlo",
        OutboundMessage(to=TO, video_url="https://a.example/v.mp4", file_url="https://a.example/f.pdf"),
        {"provider": "twlo", "channel_key": "your_channel_key", "to": TO, "video_url": "https://a.example/v.mp4",
         "file_url": "https://a.example/f.pdf"},
        id="video-and-file",
    ),
    pytest.param(
        "twlowa",
        OutboundMessage(
            to=TO,
            template=TemplateSend(id="HX123", variables={"1": "John", "2": "john@example.com", "3": "11-Jul-2024"}),
        ),
        {"provider": "twlowa", "channel_key": "your_channel_key", "to": TO,
         "template": {"id": "HX123", "variables": {"1": "John", "2": "john@example.com", "3": "11-Jul-2024"}}},
        id="twlowa-template",
    ),
    pytest.param(
        "gswa",
        OutboundMessage(
            to=TO,
            template=TemplateSend(
                id="gs-tpl-1",
                variables={
                    "MEDIA_URL": "https://placehold.co/600x400",
                    "Header": {"1": "John"},
                    "Body": {"1": "john@example.com", "2": "11-Jul-2024"},
                    "Buttons": {"1": "Quick Reply Text"},
                },
            ),
        ),
        {"provider": "gswa", "channel_key": "your_channel_key", "to": TO,
         "template": {"id": "gs-tpl-1", "variables": {
             "MEDIA_URL": "https://placehold.co/600x400", "Header": {"1": "John"},
             "Body": {"1": "john@example.com", "2": "11-Jul-2024"}, "Buttons": {"1": "Quick Reply Text"}}}},
        id="gswa-template",
    ),
    pytest.param(
        "twlowa",
        OutboundMessage(to=TO, template=TemplateSend(id="HX9")),
        {"provider": "twlowa", "channel_key": "your_channel_key", "to": TO, "template": {"id": "HX9"}},
        id="template-without-variables",
    ),
    pytest.param(
        "twlo",
        OutboundMessage(
            to=TO,
            text="hi",
            contact_saving=ContactSaving(save=True, list_id=7, extra_fields={"email_address": "john@example.com",
                                                                           "id": 987123}),
            schedule=datetime(2006, 1, 2, 15, 4, 5, tzinfo=EDT),
            user_id="u_42",
        ),
        {"provider": "twlo", "channel_key": "your_channel_key", "to": TO, "text": "hi",
         "contact_saving": {"save": True, "list_id": 7,
                            "extra_fields": {"email_address": "john@example.com", "id": 987123}},
         "schedule": "2006-01-02T15:04:05-04:00", "user_id": "u_42"},
        id="contact-saving-schedule-user",
    ),
]


@pytest.mark.parametrize(("code", "msg", "body"), BUILD_CASES)
def test_build_request_matches_the_docs(code: str, msg: OutboundMessage, body: dict[str, Any]) -> None:
    req = offline(code).build_request(msg)
    assert req.method == "POST"
    assert req.url == "https://api.sociocs.com/message"
    assert req.headers == {"apikey": KEY, "Content-Type": "application/json", "Accept": "application/json"}
    assert req.json_body == body


def test_build_request_uses_the_base_url_without_double_slash() -> None:
    p = SociocsProvider("twlo", KEY, "ck", base_url="http://127.0.0.1:9/")
    assert p.build_request(OutboundMessage(to=TO, text="x")).url == "http://127.0.0.1:9/message"


@pytest.mark.parametrize(
    ("code", "label", "channel", "images", "templates"),
    [
        ("twlo", "Twilio SMS", "sms", 10, False),
        ("twlowa", "Twilio WhatsApp", "whatsapp", 0, True),
        ("gswa", "Gupshup WhatsApp", "whatsapp", 0, True),
    ],
)
def test_names_and_capabilities(code: str, label: str, channel: str, images: int, templates: bool) -> None:
    p = offline(code)
    caps = p.capabilities
    assert (p.name, p.label, caps.channel, caps.max_images, caps.templates) == (code, label, channel, images, templates)
    assert caps.video is caps.file is (code == "twlo")
    assert caps.native_bulk and caps.status_webhooks


def test_unknown_code_is_refused() -> None:
    with pytest.raises(ValueError, match="tlnx"):
        SociocsProvider("tlnx", KEY, "ck")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- rules

VALIDATION_CASES = [
    ("twlo", OutboundMessage(to=TO, text="   "), ["Add a text, a media URL or a template: the message is empty."]),
    ("twlowa", OutboundMessage(to=TO, image_urls=["https://a.example/x.png"]),
     ["Twilio WhatsApp cannot send images; remove the image URL or choose another sender."]),
    ("gswa", OutboundMessage(to=TO, text="x", video_url="https://a.example/x.mp4"),
     ["Gupshup WhatsApp cannot send a video; remove the video URL or choose another sender."]),
    ("twlowa", OutboundMessage(to=TO, text="x", file_url="https://a.example/x.pdf"),
     ["Twilio WhatsApp cannot send a file; remove the file URL or choose another sender."]),
    ("twlo", OutboundMessage(to=TO, template=TemplateSend(id="HX1")),
     ["Twilio SMS does not send templates; choose a WhatsApp sender."]),
    ("twlo", OutboundMessage(to=TO, image_urls=[f"https://a.example/{i}.png" for i in range(11)]),
     ["Twilio SMS takes at most 10 image(s); you gave 11."]),
    ("twlowa", OutboundMessage(to=TO, template=TemplateSend(id="")),
     ["The template needs its Twilio content SID (HX...)."]),
    ("gswa", OutboundMessage(to=TO, template=TemplateSend(id="")), ["The template needs its Gupshup template id."]),
    ("gswa", OutboundMessage(to=TO, template=TemplateSend(id="t", variables={"1": "x", "Body": {"1": "y"}})),
     ["Gupshup template variables take MEDIA_URL, Header, Body and Buttons; not 1."]),
    ("gswa", OutboundMessage(to=TO, template=TemplateSend(id="t", variables={"Body": "y"})),
     ['Gupshup template "Body" must map numbers to values, e.g. {"1": "John"}.']),
    ("twlo", OutboundMessage(to=TO, text="x", schedule=datetime(2030, 1, 1, 9, 0)),
     ["The schedule needs a time zone, e.g. 2024-12-25T11:00:00-04:00."]),
    ("twlo", OutboundMessage(to=TO, file_url="ftp://a.example/x.pdf"),
     ["Media URL must be a public http(s) URL: ftp://a.example/x.pdf"]),
    ("twlo", OutboundMessage(to=TO, text="fine", image_urls=["https://a.example/1.png"] * 10), []),
    ("gswa", OutboundMessage(to=TO, template=TemplateSend(id="t", variables={"MEDIA_URL": "https://x/y.png"})), []),
]


@pytest.mark.parametrize(("code", "msg", "problems"), VALIDATION_CASES)
def test_validation_messages(code: str, msg: OutboundMessage, problems: list[str]) -> None:
    assert offline(code).validate(msg) == problems


# --------------------------------------------------------------------------- answers over HTTP

X = OutboundMessage(to=TO, text="x")
ERROR_BODY = {"status": "error", "errors": [{"msg": "Slow"}]}


def answer(id: str, **kw: Any) -> Case:
    kw.setdefault("msg", X)
    return Case(id, kw.pop("sender", "twlo"), **kw)


ANSWERS = rows(
    answer("invalid-message-never-sent", sender="twlowa", msg=OutboundMessage(to=TO, image_urls=["https://a.example/x.png"]),
           error=InvalidMessage, match="cannot send images", requests=0),
    answer("success-returns-the-message-id", msg=OutboundMessage(to=TO, name="Ann", text="hello", image_urls=[IMG]),
           status="accepted", id_pattern=".+", stored={}, requests=1, path="/message",
           headers={"apikey": SOCIOCS_KEY, "content-type": "application/json"}, body={"image_url": IMG}),
    answer("whatsapp-template-goes-through", sender="gswa",
           msg=OutboundMessage(to=TO, template=TemplateSend(id="t1", variables={"Body": {}})), id_pattern=".+"),
    answer("400-rejected-with-the-providers-words", settings={"channel_key": "not-the-key"}, error=Rejected,
           message="Sociocs refused the message (400): Invalid channel_key.", status_code=400, retryable=False),
    answer("several-error-messages-joined", error=Rejected, match=r"Invalid to\.; Text too long\.",
           fault=Fault(status=400, body={"status": "error", "errors": [{"msg": "Invalid to."},
                                                                       {"msg": "Text too long."}]})),
    answer("200-with-status-error-rejected", error=Rejected, message="Sociocs refused the message: Blocked contact.",
           fault=Fault(status=200, body={"status": "error", "errors": [{"msg": "Blocked contact."}]})),
    answer("401-says-which-setting-to-check", settings={"api_key": "wrong:key-0000"}, error=AuthFailed,
           message="Sociocs rejects the API key: check SOCIOCS_API_KEY", status_code=401),
    answer("404-not-found", url_suffix="/v9", error=NotFound, match="Sociocs answered 404"),
    *[answer(f"429-retry-after-{name}", fault=Fault(status=429, headers=headers, body=ERROR_BODY), error=RateLimited,
             retry_after=wait, retryable=True)
      for name, headers, wait in [("1", {"Retry-After": "1"}, 1.0), ("missing", {}, 5.0),
                                  ("soon", {"Retry-After": "soon"}, 5.0)]],
    *[answer(f"{status}-unknown-outcome", fault=Fault(status=status, body="<html>oops</html>"), error=UnknownOutcome,
             match=f"server error \\({status}\\)", retryable=False)
      for status in (500, 502, 503, 511)],
    answer("200-without-json-unknown-outcome", fault=Fault(status=200, body="OK"), error=UnknownOutcome),
    # It did arrive (one request): that is why the outcome is unknown.
    answer("timeout-after-sending-unknown-outcome", fault=Fault(delay=1.0), timeout=0.2, error=UnknownOutcome,
           match="did not answer in time", requests=1),
    answer("dropped-connection-unknown-outcome", fault=Fault(drop=True), error=UnknownOutcome,
           match="connection to Twilio SMS broke"),
    answer("connection-refused-not-sent", refused=True, error=NotSent, retryable=True),
)


@pytest.mark.parametrize("case", ANSWERS)
def test_answers(fake: FakeProviders, case: Case) -> None:
    run_case(fake, case)


# --------------------------------------------------------------------------- bulk


def test_build_bulk_request_matches_the_doc_sample() -> None:
    req = offline().build_bulk_request(
        [BulkRecipient(to="phone_number_1", name="recipient_name_1"),
         BulkRecipient(to="phone_number_2", name="recipient_name_2")],
        OutboundMessage(to="ignored", text="message"),
        schedule=datetime(2023, 12, 25, 11, 0, tzinfo=EDT),
    )
    assert req.url == "https://api.sociocs.com/messages/bulk"
    assert req.headers["apikey"] == KEY
    assert req.json_body == {
        "provider": "twlo",
        "channel_key": "your_channel_key",
        "recipients": [{"to": "phone_number_1", "name": "recipient_name_1"},
                       {"to": "phone_number_2", "name": "recipient_name_2"}],
        "text": "message",
        "duplicates_allowed": False,
        "schedule": "2023-12-25T11:00:00-04:00",
    }


def test_build_bulk_request_media_duplicates_and_user() -> None:
    req = offline().build_bulk_request(
        [BulkRecipient(to=TO)],
        OutboundMessage(to="ignored", video_url="https://a.example/v.mp4", user_id="from-msg"),
        duplicates_allowed=True,
        user_id="u_7",
    )
    assert req.json_body == {
        "provider": "twlo", "channel_key": "your_channel_key", "recipients": [{"to": TO}],
        "video_url": "https://a.example/v.mp4", "duplicates_allowed": True, "user_id": "u_7",
    }


def test_send_bulk_returns_the_job(fake: FakeProviders) -> None:
    recipients = [BulkRecipient(to=f"+1617555{i:04d}") for i in range(3)]
    result = live(fake).send_bulk(recipients, OutboundMessage(to="", text="hi all"))
    assert result.count == 3
    assert fake.sociocs_jobs.get(result.job_id) is not None
    assert fake.requests[0].path == "/messages/bulk"


@pytest.mark.parametrize(
    ("code", "recipients", "msg", "problem"),
    [
        ("twlowa", [BulkRecipient(to=TO)], OutboundMessage(to="", template=TemplateSend(id="HX1")),
         "Sociocs bulk sends take text and media only; send templates one by one."),
        ("twlo", [], OutboundMessage(to="", text="x"), "Add at least one recipient for the bulk send."),
        ("gswa", [BulkRecipient(to=TO)], OutboundMessage(to="", file_url="https://a.example/x.pdf"),
         "Gupshup WhatsApp cannot send a file; remove the file URL or choose another sender."),
    ],
)
def test_send_bulk_rules(
    fake: FakeProviders, code: str, recipients: list[BulkRecipient], msg: OutboundMessage, problem: str
) -> None:
    with pytest.raises(InvalidMessage) as info:
        live(fake, code).send_bulk(recipients, msg)
    assert problem in str(info.value)
    assert fake.requests == []


def test_send_bulk_maps_errors(fake: FakeProviders) -> None:
    fake.script("/messages/bulk", [Fault(status=429, headers={"Retry-After": "2"})])
    with pytest.raises(RateLimited) as info:
        live(fake).send_bulk([BulkRecipient(to=TO)], OutboundMessage(to="", text="x"))
    assert info.value.retry_after == 2.0


# --------------------------------------------------------------------------- reconciliation


def test_list_messages_finds_what_was_sent(fake: FakeProviders) -> None:
    p = live(fake)
    ids = {p.send(OutboundMessage(to=TO, text=f"m{i}")).provider_message_id for i in range(2)}
    now = datetime.now(UTC)
    found = p.list_messages(now - timedelta(minutes=5), now + timedelta(minutes=5))
    assert {m["message_id"] for m in found} == ids
    req = fake.requests[-1]
    assert req.method == "GET" and req.path == "/messages"
    assert set(req.query) == {"start_date", "end_date"}


def test_list_messages_refuses_more_than_31_days() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="31 days"):
        offline().list_messages(start, start + timedelta(days=32))


def test_build_list_request() -> None:
    req = offline().build_list_request(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 31, 12, tzinfo=UTC))
    assert req.method == "GET" and req.url == "https://api.sociocs.com/messages" and req.json_body is None
    # Sociocs's GET /messages page: YYYY-MM-DD dates, both days included.
    assert req.params == {"start_date": "2024-01-01", "end_date": "2024-01-31"}
    assert "Content-Type" not in req.headers


# --------------------------------------------------------------------------- webhooks


def test_webhook_subscription_request() -> None:
    req = offline("twlowa").build_webhook_subscription(
        "https://bot.example.com/webhooks/sociocs", "s3cret", "smsbot-twlowa", subevents=["delivered"]
    )
    assert req.url == "https://api.sociocs.com/webhook-subscriptions"
    assert req.json_body == {
        "platform": "smsbot",
        "provider": "twlowa",
        "channel_key": "your_channel_key",
        "subscriber_reference_id": "smsbot-twlowa",
        "webhook_url": "https://bot.example.com/webhooks/sociocs",
        "events": ["messages", "status_updates"],
        "subevents": ["delivered"],
        "secret": "s3cret",
    }


@pytest.mark.parametrize(
    ("secret", "body", "header", "ok"),
    [
        ("My Shared Secret", b"Hello, World!", "a52954ef969a496aeed237f48b03c6df7ea43cd0f6e595d06dfe7a8b14b5d891", True),
        ("My Shared Secret", b"Hello, World!", "A52954EF969A496AEED237F48B03C6DF7EA43CD0F6E595D06DFE7A8B14B5D891", True),
        ("My Shared Secret", b"Hello, World?", "a52954ef969a496aeed237f48b03c6df7ea43cd0f6e595d06dfe7a8b14b5d891", False),
        ("Other Secret", b"Hello, World!", "a52954ef969a496aeed237f48b03c6df7ea43cd0f6e595d06dfe7a8b14b5d891", False),
        ("My Shared Secret", b"Hello, World!", None, False),
        ("My Shared Secret", b"Hello, World!", "", False),
        ("My Shared Secret", b"Hello, World!", "zé", False),
        ("", b"Hello, World!", "a52954ef969a496aeed237f48b03c6df7ea43cd0f6e595d06dfe7a8b14b5d891", False),
    ],
)
def test_signature_vector(secret: str, body: bytes, header: str | None, ok: bool) -> None:
    assert verify_sociocs_signature(secret, body, header) is ok


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=400, body={"status": "error", "errors": [{"msg": "Bad key socuser:socsecret-9f3a given"}]}),
        Fault(status=404, body="no route for apikey=socuser:socsecret-9f3a"),
        Fault(status=401, body={"status": "error", "errors": [{"msg": "socsecret-9f3a"}]}),
        Fault(status=500, body="socsecret-9f3a"),
        Fault(status=429),
        Fault(drop=True),
    ],
)
def test_no_error_reveals_the_api_key(fake: FakeProviders, fault: Fault) -> None:
    assert fake.sociocs_api_key == "socuser:socsecret-9f3a"
    # The whole `user:secret` key and its secret half; the user name alone is not a secret.
    assert_secret_kept(fake, "twlo", fault, (SOCIOCS_KEY, SOCIOCS_KEY.rpartition(":")[2]))


def test_transport_errors_do_not_reveal_the_api_key() -> None:
    p = SociocsProvider("twlo", KEY, "ck", base_url=closed_port_url())
    with pytest.raises(NotSent) as info:
        p.send(OutboundMessage(to=TO, text="x"))
    assert_clean(info.value, (KEY, KEY.rpartition(":")[2]))
    assert info.value.__cause__ is None and info.value.__suppress_context__
