"""Bird Channels API: requests as the docs show them, the rules, and every answer over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

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
from providers.bird import BirdProvider, verify_bird_signature
from tests.fakes.providers import FakeProviders, Fault
from tests.providers.harness import BIRD_KEY, Case, assert_secret_kept, response, rows, run_case
from tests.providers.harness import live_bird as live

KEY = "bird-key-abcdef"
WS = "ws-1111"
CH = "ch-2222"
TO = "+31612345678"
URL = f"https://api.bird.com/workspaces/{WS}/channels/{CH}/messages"
IMG1 = "https://files.example.com/image2.avif?alt=media"
IMG2 = "https://files.example.com/image.png?alt=media"
VID = "https://files.example.com/video.mp4?alt=media"
RECEIVER = {"contacts": [{"identifierKey": "phonenumber", "identifierValue": TO}]}


def offline() -> BirdProvider:
    return BirdProvider(KEY, WS, CH)


# --------------------------------------------------------------------------- requests

BUILD_CASES = [
    pytest.param(
        OutboundMessage(to=TO, text="Single text message"),
        {"type": "text", "text": {"text": "Single text message"}},
        id="doc-sms-text",
    ),
    pytest.param(
        OutboundMessage(to=TO, image_urls=[IMG1]),
        {"type": "image", "image": {"images": [{"mediaUrl": IMG1}]}},
        id="doc-single-image",
    ),
    pytest.param(
        OutboundMessage(to=TO, image_urls=[IMG1, IMG2], text="Multiple images message", subject="Message subject"),
        {"type": "image", "image": {"images": [{"mediaUrl": IMG1}, {"mediaUrl": IMG2}],
                                    "text": "Multiple images message", "metadata": {"subject": "Message subject"}}},
        id="doc-images-text-title",
    ),
    pytest.param(
        OutboundMessage(to=TO, file_url=VID, file_content_type="video/mp4", text="Single file message"),
        {"type": "file", "file": {"files": [{"mediaUrl": VID, "contentType": "video/mp4"}],
                                  "text": "Single file message"}},
        id="doc-single-file-text",
    ),
    pytest.param(
        OutboundMessage(to=TO, video_url=VID),
        {"type": "file", "file": {"files": [{"mediaUrl": VID, "contentType": "video/mp4"}]}},
        id="video-type-from-mp4",
    ),
    pytest.param(
        OutboundMessage(to=TO, video_url="https://x.example/clip.MOV"),
        {"type": "file", "file": {"files": [{"mediaUrl": "https://x.example/clip.MOV",
                                             "contentType": "video/quicktime"}]}},
        id="video-type-from-mov",
    ),
    pytest.param(
        OutboundMessage(to=TO, video_url="https://x.example/stream", file_content_type="video/webm"),
        {"type": "file", "file": {"files": [{"mediaUrl": "https://x.example/stream", "contentType": "video/webm"}]}},
        id="video-type-given",
    ),
    pytest.param(
        OutboundMessage(to=TO, file_url="https://x.example/a.mp3", file_content_type="audio/mpeg",
                        video_url="https://x.example/v.3gp", text="Multiple files message", subject="S"),
        {"type": "file", "file": {"files": [{"mediaUrl": "https://x.example/a.mp3", "contentType": "audio/mpeg"},
                                            {"mediaUrl": "https://x.example/v.3gp", "contentType": "video/3gpp"}],
                                  "text": "Multiple files message", "metadata": {"subject": "S"}}},
        id="file-and-video",
    ),
]


@pytest.mark.parametrize(("msg", "body"), BUILD_CASES)
def test_build_request_bodies(msg: OutboundMessage, body: dict[str, Any]) -> None:
    req = offline().build_request(msg)
    assert req.method == "POST" and req.url == URL
    assert req.headers == {
        "Authorization": f"AccessKey {KEY}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    assert req.json_body == {"receiver": RECEIVER, "body": body}


def test_build_request_template_from_the_doc() -> None:
    msg = OutboundMessage(
        to=TO,
        template=TemplateSend(project_id="ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318", locale="en",
                              variables={"name": "Robert", "count": 3}),
    )
    assert offline().build_request(msg).json_body == {
        "receiver": RECEIVER,
        "template": {
            "projectId": "ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318",
            "version": "latest",
            "locale": "en",
            "parameters": [{"type": "string", "key": "name", "value": "Robert"},
                           {"type": "string", "key": "count", "value": "3"}],
        },
    }


def test_build_request_reference_and_schedule_in_utc() -> None:
    msg = OutboundMessage(to=TO, text="x", reference="job-42",
                          schedule=datetime(2024, 11, 21, 11, 14, 49, tzinfo=timezone(timedelta(hours=2))))
    body = offline().build_request(msg).json_body
    assert body is not None
    assert body["reference"] == "job-42"
    assert body["scheduledFor"] == "2024-11-21T09:14:49Z"


def test_build_get_request() -> None:
    req = offline().build_get_request("123e4567")
    assert (req.method, req.url, req.json_body) == ("GET", f"{URL}/123e4567", None)
    assert req.headers == {"Authorization": f"AccessKey {KEY}", "Accept": "application/json"}


def test_webhook_subscription_request() -> None:
    req = offline().build_webhook_subscription("https://bot.example.com/webhooks/bird", "sign-me")
    assert req.url == f"https://api.bird.com/workspaces/{WS}/webhook-subscriptions"
    assert req.headers["Authorization"] == f"AccessKey {KEY}"
    assert req.json_body == {
        "service": "channels",
        "event": "sms.outbound",
        "url": "https://bot.example.com/webhooks/bird",
        "signingKey": "sign-me",
        "eventFilters": [{"key": "channelId", "value": CH}],
    }


# --------------------------------------------------------------------------- rules

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
VALIDATION_CASES = [
    (OutboundMessage(to=TO, file_url="https://x.example/a.pdf"),
     ["Bird needs the file's content type (e.g. application/pdf); set it with the file URL."]),
    (OutboundMessage(to=TO, video_url="https://x.example/a.avi"),
     ["Bird needs the video's content type: use a URL ending in .mp4, .3gp or .mov, or give the type."]),
    (OutboundMessage(to=TO, text="x", template=TemplateSend(project_id="p", locale="en")),
     ["Bird sends either a template or a text/media message, not both; remove one."]),
    (OutboundMessage(to=TO, template=TemplateSend()),
     ["Bird templates need the template's project id (projectId).", "Bird templates need a locale such as en."]),
    (OutboundMessage(to=TO, image_urls=[IMG1], file_url="https://x.example/a.pdf", file_content_type="application/pdf"),
     ["Bird sends images or files in one message, not both; split them into two messages."]),
    (OutboundMessage(to=TO, image_urls=[IMG1] * 11), ["Bird SMS takes at most 10 image(s); you gave 11."]),
    (OutboundMessage(to=TO, text="x", schedule=NOW + timedelta(days=35, seconds=1)),
     ["Bird schedules at most 35 days ahead; choose an earlier time."]),
    (OutboundMessage(to=TO, text="x", schedule=datetime(2025, 1, 2)),
     ["The schedule needs a time zone, e.g. 2024-12-25T11:00:00-04:00."]),
    (OutboundMessage(to=TO, text="x", schedule=NOW + timedelta(days=35)), []),
    (OutboundMessage(to=TO, video_url=VID, text="x"), []),
]


@pytest.mark.parametrize(("msg", "problems"), VALIDATION_CASES)
def test_validation_messages(msg: OutboundMessage, problems: list[str]) -> None:
    assert offline().validate(msg, now=NOW) == problems


def test_capabilities() -> None:
    p = offline()
    assert (p.name, p.label) == ("bird", "Bird SMS")
    caps = p.capabilities
    assert caps.max_images == 10 and caps.video and caps.file and caps.templates and caps.native_schedule


# --------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("bird_status", "ours"),
    [("accepted", "accepted"), ("processing", "accepted"), ("scheduled", "scheduled"), ("sent", "sent"),
     ("delivered", "delivered"), ("deleted", "unknown")],
)
def test_status_mapping(bird_status: str, ours: str) -> None:
    result = offline().parse_response(response(202, {"id": "m-1", "status": bird_status}))
    assert (result.provider_message_id, result.status, result.provider_status) == ("m-1", ours, bird_status)


@pytest.mark.parametrize("bird_status", ["rejected", "sending_failed", "delivery_failed"])
def test_failed_statuses_are_rejected_with_the_description(bird_status: str) -> None:
    body = {"id": "m-1", "status": bird_status, "failure": {"description": "Unsupported media type",
                                                             "source": {"code": "x", "name": "y"}}}
    with pytest.raises(Rejected) as info:
        offline().parse_response(response(202, body))
    assert str(info.value) == "Bird refused the message: Unsupported media type"


def test_2xx_without_body_is_accepted_without_id() -> None:
    result = offline().parse_response(response(202))
    assert result.status == "accepted" and result.provider_message_id is None


X = OutboundMessage(to=TO, text="x")


def answer(id: str, **kw: Any) -> Case:
    kw.setdefault("msg", X)
    return Case(id, "bird", **kw)


ANSWERS = rows(
    answer("invalid-message-raised-before-sending", msg=OutboundMessage(to=TO, file_url="https://x.example/a.pdf"),
           error=InvalidMessage, requests=0),
    answer("send-echoes-reference", msg=OutboundMessage(to=TO, text="hello", reference="ref-7"),
           status="accepted", provider_status="accepted", id_pattern=".{36}", requests=1,
           headers={"authorization": f"AccessKey {BIRD_KEY}"}, body={"reference": "ref-7"},
           stored={"reference": "ref-7"}),
    answer("scheduled-send", msg=OutboundMessage(to=TO, text="later", schedule=datetime.now(UTC) + timedelta(days=2)),
           status="scheduled"),
    answer("422-rejected", fault=Fault(status=422, body={"code": "InvalidPayload", "message": "receiver is invalid"}),
           error=Rejected, message="Bird refused the message (422): receiver is invalid"),
    answer("400-rejected-description", fault=Fault(status=400, body={"description": "bad json"}),
           error=Rejected, message="Bird refused the message (400): bad json"),
    answer("400-rejected-plain-words", fault=Fault(status=400, body="plain words"),
           error=Rejected, message="Bird refused the message (400): plain words"),
    *[answer(f"{status}-auth-failed", fault=Fault(status=status), error=AuthFailed,
             message="Bird rejects the access key: check BIRD_API_KEY") for status in (401, 403)],
    answer("wrong-key-auth-failed-from-the-fake", settings={"api_key": "nope-nope"}, error=AuthFailed),
    *[answer(f"404-names-the-settings-{which}", settings={which: "00000000-0000-0000-0000-000000000000"}, error=NotFound,
             contains=("BIRD_WORKSPACE_ID", "BIRD_CHANNEL_ID")) for which in ("workspace_id", "channel_id")],
    answer("429-carries-retry-after", fault=Fault(status=429, headers={"Retry-After": "3"}), error=RateLimited,
           retry_after=3.0),
    answer("5xx-unknown", fault=Fault(status=503), error=UnknownOutcome, match=r"server error \(503\)"),
    answer("timeout-unknown", fault=Fault(delay=1.0), timeout=0.2, error=UnknownOutcome),
    answer("drop-unknown", fault=Fault(drop=True), error=UnknownOutcome),
    answer("refused-not-sent", refused=True, error=NotSent),
)


@pytest.mark.parametrize("case", ANSWERS)
def test_answers(fake: FakeProviders, case: Case) -> None:
    run_case(fake, case)


def test_fake_validation_reaches_us_as_rejected(fake: FakeProviders) -> None:
    p = live(fake)
    req = p.build_request(OutboundMessage(to=TO, text="x"))
    assert req.json_body is not None
    req.json_body["template"] = {"projectId": "p", "locale": "en"}  # both body and template
    with pytest.raises(Rejected, match="either body or template"):
        p.parse_response(p.execute(req))


# --------------------------------------------------------------------------- reconciliation


def test_get_message_follows_the_status(fake: FakeProviders) -> None:
    p = live(fake)
    sent = p.send(OutboundMessage(to=TO, text="x"))
    assert sent.provider_message_id is not None
    fake.set_bird_status(sent.provider_message_id, "delivered")
    got = p.get_message(sent.provider_message_id)
    assert (got.provider_message_id, got.status, got.provider_status) == (sent.provider_message_id, "delivered",
                                                                          "delivered")


def test_get_message_reports_failure_as_a_result(fake: FakeProviders) -> None:
    p = live(fake)
    sent = p.send(OutboundMessage(to=TO, text="x"))
    assert sent.provider_message_id is not None
    fake.set_bird_status(sent.provider_message_id, "delivery_failed", "Handset unreachable")
    got = p.get_message(sent.provider_message_id)
    assert (got.status, got.detail) == ("failed", "Handset unreachable")


def test_get_message_unknown_id_is_not_found(fake: FakeProviders) -> None:
    with pytest.raises(NotFound):
        live(fake).get_message("6f1d0000-0000-4000-8000-000000000000")


# --------------------------------------------------------------------------- signatures

SIG_KEY = "bird-signing-key"
SIG_TS = "1700000000"
SIG_URL = "https://bot.example.com/webhooks/bird"
SIG_BODY = b'{"id":"abc","status":"delivered"}'
# Computed with openssl, independently of our code:
#   printf '%s' "$BODY" | openssl dgst -sha256 -binary > d.bin
#   { printf '%s\n%s\n' "$TS" "$URL"; cat d.bin; } | openssl dgst -sha256 -hmac "$KEY" -binary | base64
SIG = "vK2y8Svpx9zYwIsnAWI2mfwAYD5MUaZVpUwNfh/lif0="


@pytest.mark.parametrize(
    ("key", "sig", "ts", "url", "body", "now", "ok"),
    [
        (SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, 1700000000.0, True),
        (SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, 1700000299.0, True),
        (SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, 1700000301.0, False),  # older than 5 minutes
        (SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, 1699999000.0, False),  # from the future
        (SIG_KEY, SIG, SIG_TS, SIG_URL + "?x=1", SIG_BODY, 1700000000.0, False),
        (SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY + b" ", 1700000000.0, False),
        ("other-key", SIG, SIG_TS, SIG_URL, SIG_BODY, 1700000000.0, False),
        (SIG_KEY, SIG, "1700000001", SIG_URL, SIG_BODY, 1700000000.0, False),
        (SIG_KEY, "not base64!", SIG_TS, SIG_URL, SIG_BODY, 1700000000.0, False),
        (SIG_KEY, None, SIG_TS, SIG_URL, SIG_BODY, 1700000000.0, False),
        (SIG_KEY, SIG, None, SIG_URL, SIG_BODY, 1700000000.0, False),
        (SIG_KEY, SIG, "yesterday", SIG_URL, SIG_BODY, 1700000000.0, False),
    ],
)
def test_signature(key: str, sig: str | None, ts: str | None, url: str, body: bytes, now: float, ok: bool) -> None:
    assert verify_bird_signature(key, sig, ts, url, body, now=now) is ok


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=422, body={"message": "key bird-access-7c1e2d is not allowed"}),
        Fault(status=404, body="AccessKey bird-access-7c1e2d"),
        Fault(status=401),
        Fault(status=500, body="bird-access-7c1e2d"),
        Fault(drop=True),
    ],
)
def test_no_error_reveals_the_key(fake: FakeProviders, fault: Fault) -> None:
    assert fake.bird_access_key == "bird-access-7c1e2d"
    assert_secret_kept(fake, "bird", fault, (BIRD_KEY,))
