"""Bird Channels API: SMS/MMS through one workspace channel.

Contract: /work/shared/api-docs/bird-channels-send-message.md and provider-notes.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .base import (
    Capabilities,
    DeliveryStatus,
    OutboundMessage,
    PreparedRequest,
    Provider,
    Rejected,
    SendResult,
    UnknownOutcome,
    short_body,
    url_suffix,
)
from .checks import CredentialCheck, probe

MAX_SCHEDULE_AHEAD = timedelta(days=35)  # Bird rejects scheduledFor farther ahead
# Bird documents 500 POST/s per workspace but no Retry-After default; a 429 is safe to retry.
DEFAULT_RETRY_AFTER = 1.0

# Bird needs a contentType for every file. A video has no safe default (guessing video/mp4
# for a .mov would mislabel it), so it comes from file_content_type or one of these suffixes.
VIDEO_TYPES_BY_SUFFIX = {".mp4": "video/mp4", ".3gp": "video/3gpp", ".mov": "video/quicktime"}

_STATUS: dict[str, DeliveryStatus] = {
    "accepted": "accepted",
    "processing": "accepted",
    "scheduled": "scheduled",
    "sent": "sent",
    "delivered": "delivered",
    "rejected": "failed",
    "sending_failed": "failed",
    "delivery_failed": "failed",
}
# `smsbot doctor` looks this message up: no message has the nil UUID, so a valid key gets 404.
PROBE_MESSAGE_ID = "00000000-0000-0000-0000-000000000000"
FAILED_STATUSES = frozenset({"rejected", "sending_failed", "delivery_failed"})


def video_content_type(msg: OutboundMessage) -> str | None:
    """The content type Bird gets for msg.video_url, or None when it cannot be known."""
    if not msg.video_url:
        return None
    # file_content_type speaks for the video only when there is no separate file.
    if msg.file_content_type and not msg.file_url:
        return msg.file_content_type
    return VIDEO_TYPES_BY_SUFFIX.get(url_suffix(msg.video_url))


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _failure_text(message: dict[str, Any]) -> str | None:
    failure = message.get("failure")
    if isinstance(failure, dict):
        text = failure.get("description")
        if not text and isinstance(failure.get("source"), dict):
            text = failure["source"].get("name")
        if text:
            return str(text)
    for key in ("reason", "details"):
        if message.get(key):
            return str(message[key])
    return None


class BirdProvider(Provider):
    name = "bird"
    label = "Bird SMS"
    vendor = "Bird"
    auth_hint = "Bird rejects the access key: check BIRD_API_KEY"
    not_found_hint = "check BIRD_WORKSPACE_ID and BIRD_CHANNEL_ID"
    default_retry_after = DEFAULT_RETRY_AFTER
    family = "bird"
    secret_attrs = ("_api_key",)
    repr_attrs = ("workspace_id", "channel_id")
    webhooks_note = (
        "can't tell: the Bird pages we follow document creating webhook subscriptions, "
        "not listing them; see Bird's Developer settings -> Webhooks for this workspace."
    )
    capabilities = Capabilities(
        channel="sms",
        max_images=10,  # "up to an array of 10 media URLs"
        video=True,  # sent as a file with its content type
        file=True,
        templates=True,
        native_bulk=False,
        native_schedule=True,
        status_webhooks=True,
    )

    def __init__(
        self,
        api_key: str,
        workspace_id: str,
        channel_id: str,
        base_url: str = "https://api.bird.com",
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(client, base_url=base_url)
        self._api_key = api_key
        self.workspace_id = workspace_id
        self.channel_id = channel_id

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/workspaces/{self.workspace_id}/channels/{self.channel_id}/messages"

    def _headers(self, with_body: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"AccessKey {self._api_key}", "Accept": "application/json"}
        if with_body:
            headers["Content-Type"] = "application/json"
        return headers

    # ------------------------------------------------------------------ validation

    def validate(self, msg: OutboundMessage, now: datetime | None = None) -> list[str]:
        problems = super().validate(msg)
        has_body = bool(msg.text or msg.image_urls or msg.video_url or msg.file_url)
        if msg.template is not None:
            if has_body:
                problems.append("Bird sends either a template or a text/media message, not both; remove one.")
            if not msg.template.project_id:
                problems.append("Bird templates need the template's project id (projectId).")
            if not msg.template.locale:
                problems.append("Bird templates need a locale such as en.")
        if msg.image_urls and (msg.file_url or msg.video_url):
            problems.append("Bird sends images or files in one message, not both; split them into two messages.")
        if msg.file_url and not msg.file_content_type:
            problems.append("Bird needs the file's content type (e.g. application/pdf); set it with the file URL.")
        if msg.video_url and video_content_type(msg) is None:
            problems.append(
                "Bird needs the video's content type: use a URL ending in .mp4, .3gp or .mov, or give the type."
            )
        if msg.schedule is not None:
            if msg.schedule.utcoffset() is None:
                problems.append("The schedule needs a time zone, e.g. 2024-12-25T11:00:00-04:00.")
            elif msg.schedule - (now or datetime.now(UTC)) > MAX_SCHEDULE_AHEAD:
                problems.append("Bird schedules at most 35 days ahead; choose an earlier time.")
        return problems

    # ------------------------------------------------------------------ requests

    def _body(self, msg: OutboundMessage) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if msg.text:
            extra["text"] = msg.text
        if msg.subject:
            extra["metadata"] = {"subject": msg.subject}
        if msg.image_urls:
            return {"type": "image", "image": {"images": [{"mediaUrl": u} for u in msg.image_urls], **extra}}
        files: list[dict[str, str]] = []
        if msg.file_url:
            files.append({"mediaUrl": msg.file_url, "contentType": msg.file_content_type or ""})
        if msg.video_url:
            files.append({"mediaUrl": msg.video_url, "contentType": video_content_type(msg) or ""})
        if files:
            return {"type": "file", "file": {"files": files, **extra}}
        # A subject is an MMS title: plain SMS text goes without it.
        return {"type": "text", "text": {"text": msg.text or ""}}

    def build_request(self, msg: OutboundMessage) -> PreparedRequest:
        body: dict[str, Any] = {
            "receiver": {"contacts": [{"identifierKey": "phonenumber", "identifierValue": msg.to}]}
        }
        if msg.reference:
            body["reference"] = msg.reference
        if msg.template is not None:
            body["template"] = {
                "projectId": msg.template.project_id,
                "version": msg.template.version,
                "locale": msg.template.locale,
                "parameters": [
                    {"type": "string", "key": key, "value": str(value)}
                    for key, value in msg.template.variables.items()
                ],
            }
        else:
            body["body"] = self._body(msg)
        if msg.schedule is not None:
            body["scheduledFor"] = _rfc3339(msg.schedule)
        return PreparedRequest(method="POST", url=self.messages_url, headers=self._headers(), json_body=body)

    def build_get_request(self, message_id: str) -> PreparedRequest:
        return PreparedRequest(
            method="GET", url=f"{self.messages_url}/{message_id}", headers=self._headers(with_body=False)
        )

    def build_webhook_subscription(
        self, url: str, signing_key: str, event: str = "sms.outbound", channel_id: str | None = None
    ) -> PreparedRequest:
        """Pure: POST /workspaces/{ws}/webhook-subscriptions for this channel's events."""
        body = {
            "service": "channels",
            "event": event,
            "url": url,
            "signingKey": signing_key,
            "eventFilters": [{"key": "channelId", "value": channel_id or self.channel_id}],
        }
        return PreparedRequest(
            method="POST",
            url=f"{self.base_url}/workspaces/{self.workspace_id}/webhook-subscriptions",
            headers=self._headers(),
            json_body=body,
        )

    # ------------------------------------------------------------------ responses

    def _raise_for_error(self, response: httpx.Response, what: str) -> None:
        code = response.status_code
        if 200 <= code < 300:
            return
        detail = ""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            words = [str(payload[k]) for k in ("message", "description") if payload.get(k)]
            # The error code alone is better than nothing, noise next to a sentence.
            detail = "; ".join(words) or str(payload.get("code") or "")
        detail = self.scrub(detail or short_body(response))
        self.raise_for_status(response, detail, what)

    def _message(self, response: httpx.Response) -> dict[str, Any] | None:
        try:
            payload = response.json()
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _result(self, message: dict[str, Any]) -> SendResult:
        raw = str(message.get("status") or "")
        detail = None
        if raw in FAILED_STATUSES:
            detail = self.scrub(_failure_text(message) or "") or None
        return SendResult(
            provider_message_id=str(message["id"]) if message.get("id") else None,
            status=_STATUS.get(raw, "unknown"),
            provider_status=raw or None,
            detail=detail,
        )

    def parse_response(self, response: httpx.Response) -> SendResult:
        self._raise_for_error(response, "message")
        message = self._message(response)
        if message is None:
            # 2xx means Bird took it; without the body we just cannot reconcile by id.
            return SendResult(status="accepted", detail="Bird accepted the message without returning it.")
        result = self._result(message)
        if message.get("status") in FAILED_STATUSES:
            reason = result.detail or str(message.get("status"))
            raise Rejected(f"Bird refused the message: {reason}", status_code=response.status_code)
        return result

    # ------------------------------------------------------------------ calls

    def get_message(self, message_id: str) -> SendResult:
        """The message's current state, for reconciliation. A failed message is a result
        (status "failed", detail = Bird's failure description), not an exception."""
        response = self.execute(self.build_get_request(message_id))
        self._raise_for_error(response, "lookup")
        message = self._message(response)
        if message is None:
            raise UnknownOutcome("Bird answered the lookup without a readable message.")
        return self._result(message)

    # ------------------------------------------------------------------ doctor

    def check_credentials(self) -> CredentialCheck:
        """GET a made-up message of the channel (the documented status lookup; read-only).

        A valid key gets 404 for the unknown message; a 404 naming the workspace or the channel
        points at those settings instead (Bird's error wording is inferred, not documented).
        """

        def interpret(response: httpx.Response) -> CredentialCheck:
            if response.status_code == 404:
                said = (self._message(response) or {}).get("message")
                words = str(said or "").lower()
                for part, var in (("workspace", "BIRD_WORKSPACE_ID"), ("channel", "BIRD_CHANNEL_ID")):
                    if part in words:
                        return CredentialCheck(
                            sender=self.name, status="other",
                            message=f"Bird accepted BIRD_API_KEY but does not know the {part}: check {var}.",
                        )
                return CredentialCheck(
                    sender=self.name, status="ok",
                    message="Bird accepted BIRD_API_KEY (a status lookup of a made-up message answered 404).",
                )
            self._raise_for_error(response, "lookup")
            return CredentialCheck(sender=self.name, status="ok", message="Bird accepted BIRD_API_KEY.")

        return probe(
            self, self.build_get_request(PROBE_MESSAGE_ID), "Bird message lookup", interpret,
            "check BIRD_API_URL and the network",
        )


def verify_bird_signature(
    signing_key: str,
    signature_b64: str | None,
    timestamp: str | None,
    url: str,
    body: bytes,
    now: float | None = None,
    tolerance: float = 300,
) -> bool:
    """`messagebird-signature` check: base64 HMAC-SHA256(key, ts + "\\n" + url + "\\n" + sha256(body)).

    The last part is the raw digest bytes. Timestamps outside `tolerance` seconds (either
    way) are refused, which stops replays of old deliveries.
    """
    if not signing_key or not signature_b64 or not timestamp:
        return False
    try:
        ts = float(timestamp)
        given = base64.b64decode(signature_b64.strip(), validate=True)
    except (ValueError, binascii.Error):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    signed = f"{timestamp}\n{url}\n".encode() + hashlib.sha256(body).digest()
    expected = hmac.new(signing_key.encode(), signed, hashlib.sha256).digest()
    return hmac.compare_digest(expected, given)
