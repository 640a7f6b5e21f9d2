"""TextUs: SMS, and WhatsApp on accounts that have it, through `POST /{account}/messages`.

Contract: /work/shared/api-docs/textus-send-message.md and provider-notes.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time
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
    retry_after_seconds,
    short_body,
    url_suffix,
)
from .checks import CredentialCheck, probe

MEDIA_TYPE = "application/vnd.textus+jsonld"

# The documented attachment types: ".png, .jpg/.jpeg, .gif, .rtf, .pdf, .ics, and .vcf/.vcard".
CONTENT_TYPES_BY_SUFFIX = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".rtf": "application/rtf",
    ".pdf": "application/pdf",
    ".ics": "text/calendar",
    ".vcf": "text/vcard",
    ".vcard": "text/vcard",
}
# Common aliases of the same formats are accepted when given explicitly.
ALLOWED_CONTENT_TYPES = frozenset({*CONTENT_TYPES_BY_SUFFIX.values(), "text/rtf", "text/x-vcard"})
ALLOWED_TEXT = ".png, .jpg/.jpeg, .gif, .rtf, .pdf, .ics and .vcf/.vcard"

# Limit is 1,000 requests per 5 minutes per token; without any hint wait a fair slice of it.
DEFAULT_RETRY_AFTER = 30.0

# `smsbot doctor` searches the opt-outs for this: a harmless read that matches no number.
PROBE_QUERY = "smsbot-doctor"

TEMPLATE_422 = (
    "TextUs refused the message: the WhatsApp template is not approved or its variables are missing/invalid (422)"
)

# deliveryState values are not enumerated in the docs (the example shows "delivered");
# anything we do not recognise is reported as accepted with the raw word kept.
_STATES: dict[str, DeliveryStatus] = {"delivered": "delivered", "sent": "sent"}


def attachment_of(msg: OutboundMessage) -> tuple[str, str | None] | None:
    """(media_url, content_type or None when unknown) of the single attachment, if any."""
    urls = [*msg.image_urls, *([msg.file_url] if msg.file_url else [])]
    if not urls:
        return None
    url = urls[0]
    # An explicit type wins; there is only ever one attachment for it to describe.
    content_type = msg.file_content_type or CONTENT_TYPES_BY_SUFFIX.get(url_suffix(url))
    return url, content_type


class TextusProvider(Provider):
    name = "textus"
    label = "TextUs"
    vendor = "TextUs"
    auth_hint = "TextUs rejects the API token: check TEXTUS_API_TOKEN"
    not_found_hint = "check TEXTUS_ACCOUNT"
    default_retry_after = DEFAULT_RETRY_AFTER
    family = "textus"
    secret_attrs = ("_token",)
    repr_attrs = ("account", "base_url")
    webhooks_note = (
        "can't tell: TextUs documents no API listing webhooks; see the webhook settings of "
        "the TextUs account."
    )
    capabilities = Capabilities(
        channel="sms+whatsapp",
        max_images=1,  # one attachment per message
        video=False,
        file=True,
        file_content_types=ALLOWED_CONTENT_TYPES,
        templates=True,
        native_bulk=False,  # several `to` answer 202 without ids: useless for tracking
        native_schedule=False,
        status_webhooks=True,
    )

    def __init__(
        self,
        token: str,
        account: str,
        base_url: str = "https://next.textus.com",
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(client, base_url=base_url)
        self._token = token
        self.account = account

    # ------------------------------------------------------------------ validation

    def validate(self, msg: OutboundMessage) -> list[str]:
        problems = super().validate(msg)
        count = len(msg.image_urls) + (1 if msg.file_url else 0)
        if count > 1 and len(msg.image_urls) <= 1:  # several images are already reported above
            problems.append(f"TextUs takes one attachment per message; you gave {count}.")
        attachment = attachment_of(msg)
        if attachment is not None:
            url, content_type = attachment
            if content_type is None:
                problems.append(
                    f"TextUs accepts only {ALLOWED_TEXT} attachments; cannot tell the type of {url[:80]}."
                )
            elif content_type not in ALLOWED_CONTENT_TYPES:
                problems.append(f"TextUs accepts only {ALLOWED_TEXT} attachments; {content_type} is not one of them.")
        if msg.template is not None:
            if not msg.template.id:
                problems.append("The WhatsApp template needs its TextUs template id.")
            if msg.text or attachment is not None:
                problems.append("TextUs sends a template on its own (the text is not used); remove the text/attachment.")
        if msg.schedule is not None:
            problems.append("TextUs cannot schedule through its API; leave the provider schedule empty.")
        return problems

    # ------------------------------------------------------------------ requests

    def build_request(self, msg: OutboundMessage) -> PreparedRequest:
        body: dict[str, Any] = {"to": msg.to}
        if msg.text:
            body["body"] = msg.text
        attachment = attachment_of(msg)
        if attachment is not None:
            url, content_type = attachment
            body["attachments"] = [{"media_url": url, "content_type": content_type}]
        if msg.channel == "whatsapp" or msg.template is not None:
            body["channel"] = "whatsapp"
        if msg.template is not None:
            template: dict[str, Any] = {"id": msg.template.id}
            if msg.template.variables:
                template["variable_values"] = msg.template.variables
            body["template"] = template
        return PreparedRequest(
            method="POST",
            url=f"{self.base_url}/{self.account}/messages",
            headers={"Authorization": f"Bearer {self._token}", "Accept": MEDIA_TYPE, "Content-Type": MEDIA_TYPE},
            json_body=body,
        )

    # ------------------------------------------------------------------ responses

    def retry_after(self, response: httpx.Response) -> float:
        # Retry-After first (shared parsing), then TextUs's own X-RateLimit-Reset epoch.
        if response.headers.get("Retry-After"):
            return retry_after_seconds(response, DEFAULT_RETRY_AFTER)
        reset = response.headers.get("X-RateLimit-Reset")
        if reset:
            try:
                return max(0.0, float(reset) - time.time())
            except ValueError:
                pass
        return DEFAULT_RETRY_AFTER

    def parse_response(self, response: httpx.Response) -> SendResult:
        code = response.status_code
        if code in (200, 201):
            try:
                payload = response.json() if response.content else None
            except ValueError:
                payload = None
            if not isinstance(payload, dict) or not payload.get("id"):
                # The saved-reply example answers 201 with no body: taken, but no id to track.
                return SendResult(status="accepted", detail="TextUs accepted the message without returning it.")
            state = str(payload.get("deliveryState") or "") or None
            return SendResult(
                provider_message_id=str(payload["id"]),
                status=_STATES.get(state or "", "accepted"),
                provider_status=state,
            )
        if code == 202:
            return SendResult(status="accepted", detail="TextUs queued the message (202) without an id.")
        detail = self.scrub(short_body(response))
        if code == 422 and not detail:
            # The docs' template refusals (not approved, bad variables) come with no body.
            raise Rejected(TEMPLATE_422, status_code=code)
        self.raise_for_status(response, detail)

    # ------------------------------------------------------------------ doctor

    def build_opt_out_search(self, query: str = PROBE_QUERY) -> PreparedRequest:
        """Pure: GET /{account}/opt_outs?q= (the documented Opt Outs API; read-only)."""
        return PreparedRequest(
            method="GET",
            url=f"{self.base_url}/{self.account}/opt_outs",
            headers={"Authorization": f"Bearer {self._token}", "Accept": MEDIA_TYPE},
            params={"q": query},
        )

    def check_credentials(self) -> CredentialCheck:
        """Search the account's opt-outs for a word no number matches: 401 -> token, 404 -> account."""

        def interpret(response: httpx.Response) -> CredentialCheck:
            if 200 <= response.status_code < 300:
                return CredentialCheck(
                    sender=self.name, status="ok",
                    message="TextUs accepted TEXTUS_API_TOKEN for TEXTUS_ACCOUNT (GET opt_outs).",
                )
            self.raise_for_status(response, self.scrub(short_body(response)), "request")

        return probe(
            self, self.build_opt_out_search(), "TextUs GET opt_outs", interpret, "check TEXTUS_API_URL and the network"
        )


def verify_textus_signature(secret: str, body: bytes, header: str | None) -> bool:
    """`X-TextUs-Signature`: hex HMAC-SHA256 of the raw body with the webhook secret."""
    if not secret or not header:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().lower().encode())
