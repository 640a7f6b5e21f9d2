"""Sociocs: Twilio SMS (`twlo`), Twilio WhatsApp (`twlowa`) and Gupshup WhatsApp (`gswa`).

Contract: /work/shared/api-docs/sociocs-*.md and provider-notes.md. One API key (header
`apikey`, of the form `user:secret`) and one channel key per provider code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import httpx

from .base import (
    BulkRecipient,
    BulkResult,
    Capabilities,
    InvalidMessage,
    OutboundMessage,
    PreparedRequest,
    Provider,
    ProviderError,
    Rejected,
    SendResult,
    UnknownOutcome,
    short_body,
)
from .checks import CredentialCheck, probe

SociocsCode = Literal["twlo", "twlowa", "gswa"]

LABELS: dict[str, str] = {
    "twlo": "Twilio SMS",
    "twlowa": "Twilio WhatsApp",
    "gswa": "Gupshup WhatsApp",
}

# Sociocs documents no Retry-After header; wait this long after a 429 unless told otherwise.
DEFAULT_RETRY_AFTER = 5.0
# GET /messages covers at most 31 days per call (provider-notes).
MAX_LIST_SPAN = timedelta(days=31)
GSWA_VARIABLE_KEYS = frozenset({"MEDIA_URL", "Header", "Body", "Buttons"})

_TWLO_CAPS = Capabilities(
    channel="sms",
    # The older send page documents `image_urls` (an array) and Twilio, which carries
    # `twlo`, takes at most 10 media items per MMS: so 10, sent as `image_urls` when > 1.
    max_images=10,
    video=True,
    file=True,
    templates=False,
    native_bulk=True,
    native_schedule=True,
    status_webhooks=True,
    contact_saving=True,
)
_WHATSAPP_CAPS = Capabilities(
    channel="whatsapp",
    max_images=0,  # media fields are accepted only with `twlo`
    video=False,
    file=False,
    templates=True,
    native_bulk=True,
    native_schedule=True,
    status_webhooks=True,
    contact_saving=True,
)


def _iso(dt: datetime) -> str:
    """ISO 8601 with offset, as in the docs' "2006-01-02T15:04:05-04:00"."""
    return dt.isoformat(timespec="seconds")


def _schedule_problem(schedule: datetime | None) -> str | None:
    if schedule is not None and schedule.utcoffset() is None:
        return "The schedule needs a time zone, e.g. 2024-12-25T11:00:00-04:00."
    return None


class SociocsProvider(Provider):
    vendor = "Sociocs"
    secret_attrs = ("_api_key", "channel_key")  # the channel key is a credential too
    repr_attrs = ("code", "base_url")
    webhooks_note = (
        "can't tell: Sociocs documents no way to list webhook subscriptions; see the "
        "subscription in Sociocs, or register again (POST /webhook-subscriptions with the same "
        "subscriber_reference_id updates it)."
    )
    auth_hint = "Sociocs rejects the API key: check SOCIOCS_API_KEY"
    not_found_hint = "check the Sociocs base URL and channel settings"
    default_retry_after = DEFAULT_RETRY_AFTER

    family = "sociocs"  # the API behind the three sender names; used by webhook events

    def __init__(
        self,
        code: SociocsCode,
        api_key: str,
        channel_key: str,
        base_url: str = "https://api.sociocs.com",
        client: httpx.Client | None = None,
    ) -> None:
        if code not in LABELS:
            raise ValueError(f"Unknown Sociocs provider code {code!r}; use one of {', '.join(LABELS)}.")
        super().__init__(client, base_url=base_url)
        self.code: SociocsCode = code
        self.name = code
        self.label = LABELS[code]
        self.capabilities = _TWLO_CAPS if code == "twlo" else _WHATSAPP_CAPS
        self._api_key = api_key
        self.channel_key = channel_key

    def _headers(self, with_body: bool = True) -> dict[str, str]:
        headers = {"apikey": self._api_key, "Accept": "application/json"}
        if with_body:
            headers["Content-Type"] = "application/json"
        return headers

    # ------------------------------------------------------------------ validation

    def validate(self, msg: OutboundMessage) -> list[str]:
        problems = super().validate(msg)
        if msg.template is not None and self.capabilities.templates:
            if not msg.template.id:
                kind = "Twilio content SID (HX...)" if self.code == "twlowa" else "Gupshup template id"
                problems.append(f"The template needs its {kind}.")
            if self.code == "gswa":
                unknown = sorted(set(msg.template.variables) - GSWA_VARIABLE_KEYS)
                if unknown:
                    problems.append(
                        "Gupshup template variables take MEDIA_URL, Header, Body and Buttons; "
                        f"not {', '.join(unknown)}."
                    )
                for part in ("Header", "Body", "Buttons"):
                    value = msg.template.variables.get(part)
                    if value is not None and not isinstance(value, dict):
                        problems.append(f'Gupshup template "{part}" must map numbers to values, e.g. {{"1": "John"}}.')
        problem = _schedule_problem(msg.schedule)
        if problem:
            problems.append(problem)
        return problems

    # ------------------------------------------------------------------ requests

    def _content(self, msg: OutboundMessage) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if msg.text:
            body["text"] = msg.text
        if len(msg.image_urls) == 1:
            body["image_url"] = msg.image_urls[0]
        elif msg.image_urls:
            body["image_urls"] = list(msg.image_urls)
        if msg.video_url:
            body["video_url"] = msg.video_url
        if msg.file_url:
            body["file_url"] = msg.file_url
        return body

    def build_request(self, msg: OutboundMessage) -> PreparedRequest:
        body: dict[str, Any] = {"provider": self.code, "channel_key": self.channel_key, "to": msg.to}
        if msg.name:
            body["name"] = msg.name
        body.update(self._content(msg))
        if msg.template is not None:
            template: dict[str, Any] = {"id": msg.template.id}
            if msg.template.variables:
                template["variables"] = msg.template.variables
            body["template"] = template
        if msg.contact_saving is not None:
            saving: dict[str, Any] = {"save": msg.contact_saving.save, "list_id": msg.contact_saving.list_id}
            if msg.contact_saving.extra_fields:
                saving["extra_fields"] = msg.contact_saving.extra_fields
            body["contact_saving"] = saving
        if msg.schedule is not None:
            body["schedule"] = _iso(msg.schedule)
        if msg.user_id:
            body["user_id"] = msg.user_id
        return PreparedRequest(method="POST", url=f"{self.base_url}/message", headers=self._headers(), json_body=body)

    def build_bulk_request(
        self,
        recipients: Sequence[BulkRecipient],
        msg: OutboundMessage,
        duplicates_allowed: bool = False,
        schedule: datetime | None = None,
        user_id: str | None = None,
    ) -> PreparedRequest:
        """Pure: POST /messages/bulk. `msg.to` is ignored; the recipients carry the numbers."""
        people: list[dict[str, str]] = []
        for r in recipients:
            person = {"to": r.to}
            if r.name:
                person["name"] = r.name
            people.append(person)
        body: dict[str, Any] = {"provider": self.code, "channel_key": self.channel_key, "recipients": people}
        body.update(self._content(msg))
        body["duplicates_allowed"] = duplicates_allowed
        when = schedule or msg.schedule
        if when is not None:
            body["schedule"] = _iso(when)
        sender = user_id or msg.user_id
        if sender:
            body["user_id"] = sender
        return PreparedRequest(
            method="POST", url=f"{self.base_url}/messages/bulk", headers=self._headers(), json_body=body
        )

    def build_list_request(self, start: date, end: date) -> PreparedRequest:
        """GET /messages for whole days: Sociocs's page for it takes `YYYY-MM-DD` dates and
        includes both given days. A datetime is cut to its (UTC) date."""
        return PreparedRequest(
            method="GET",
            url=f"{self.base_url}/messages",
            headers=self._headers(with_body=False),
            params={"start_date": _day(start).isoformat(), "end_date": _day(end).isoformat()},
        )

    def build_webhook_subscription(
        self,
        webhook_url: str,
        secret: str,
        subscriber_reference_id: str,
        events: Sequence[Literal["messages", "status_updates"]] = ("messages", "status_updates"),
        subevents: Sequence[str] | None = None,
        platform: str = "smsbot",
    ) -> PreparedRequest:
        """Pure: POST /webhook-subscriptions. The same `subscriber_reference_id` updates it.

        `platform` values are not documented (inferred: a free label for the integration).
        """
        body: dict[str, Any] = {
            "platform": platform,
            "provider": self.code,
            "channel_key": self.channel_key,
            "subscriber_reference_id": subscriber_reference_id,
            "webhook_url": webhook_url,
            "events": list(events),
            "secret": secret,
        }
        if subevents is not None:
            body["subevents"] = list(subevents)
        return PreparedRequest(
            method="POST", url=f"{self.base_url}/webhook-subscriptions", headers=self._headers(), json_body=body
        )

    # ------------------------------------------------------------------ responses

    def _error_text(self, payload: Any) -> str:
        if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
            msgs = [str(e.get("msg")) for e in payload["errors"] if isinstance(e, dict) and e.get("msg")]
            if msgs:
                return "; ".join(msgs)
        return ""

    def _check(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The success payload, or the matching ProviderError. `what`: "message", "bulk job"..."""
        try:
            payload: Any = response.json()
        except ValueError:
            payload = None
        code = response.status_code
        detail = self.scrub(self._error_text(payload) or short_body(response))
        said = f": {detail}" if detail else ""
        if code == 200:
            if isinstance(payload, dict) and payload.get("status") == "success":
                return payload
            if isinstance(payload, dict) and payload.get("status") == "error":
                raise Rejected(f"Sociocs refused the {what}{said}", status_code=code)
            raise UnknownOutcome(
                f"Sociocs answered 200 without a readable result; the {what} may or may not have been sent.",
                status_code=code,
            )
        self.raise_for_status(response, detail, what)

    def parse_response(self, response: httpx.Response) -> SendResult:
        payload = self._check(response, "message")
        data = payload.get("data")
        message_id = data.get("message_id") if isinstance(data, dict) else None
        return SendResult(
            provider_message_id=str(message_id) if message_id is not None else None,
            status="accepted",
            detail=None if message_id is not None else "Sociocs accepted the message without returning an id.",
        )

    def parse_bulk_response(self, response: httpx.Response, count: int) -> BulkResult:
        payload = self._check(response, "bulk job")
        data = payload.get("data")
        job_id = data.get("job_id") if isinstance(data, dict) else None
        if job_id is None:
            raise UnknownOutcome("Sociocs accepted the bulk job without a job id; check Bulk messaging -> History.")
        return BulkResult(job_id=str(job_id), count=count)

    # ------------------------------------------------------------------ calls

    def send_bulk(
        self,
        recipients: list[BulkRecipient],
        msg: OutboundMessage,
        duplicates_allowed: bool = False,
        schedule: datetime | None = None,
        user_id: str | None = None,
    ) -> BulkResult:
        # Bulk has no template field: check the content without it, then refuse templates.
        problems = self.validate(msg.model_copy(update={"template": None}))
        if not recipients:
            problems.append("Add at least one recipient for the bulk send.")
        if msg.template is not None:
            problems.append("Sociocs bulk sends take text and media only; send templates one by one.")
        problem = _schedule_problem(schedule)
        if problem:
            problems.append(problem)
        if problems:
            raise InvalidMessage(" ".join(problems))
        prepared = self.build_bulk_request(recipients, msg, duplicates_allowed, schedule, user_id)
        return self.parse_bulk_response(self.execute(prepared), len(recipients))

    def list_messages(self, start: date, end: date) -> list[dict[str, Any]]:
        """Messages of the days from start to end (both included, at most 31 days).

        Sociocs documents no paging for GET /messages, so an answer may be cut short
        without saying so: a message missing from it proves nothing. Callers narrow the
        range (one day per call, see `days_to_look_up`) rather than trust one long answer.
        The message objects' fields are not documented (inferred): `data` is a list of
        message objects; a dict holding a `messages` list is accepted too.
        """
        first, last = _day(start), _day(end)
        if last < first:
            raise ValueError("end must not be before start")
        if last - first >= MAX_LIST_SPAN:
            raise ValueError("Sociocs lists at most 31 days of messages per call; split the range.")
        payload = self._check(self.execute(self.build_list_request(first, last)), "request")
        data = payload.get("data")
        if isinstance(data, dict) and isinstance(data.get("messages"), list):
            data = data["messages"]
        if data is None:
            return []
        if not isinstance(data, list):
            raise ProviderError("Sociocs answered GET /messages with an unexpected shape (data is not a list).")
        return [item for item in data if isinstance(item, dict)]

    # ------------------------------------------------------------------ doctor

    def check_credentials(self, today: date | None = None) -> CredentialCheck:
        """GET /messages for one day (documented, read-only): a 401 means the API key is wrong.

        The channel key is not part of this call; only a send checks it.
        """
        day = today or datetime.now(UTC).date()

        def interpret(response: httpx.Response) -> CredentialCheck:
            self._check(response, "request")
            return CredentialCheck(
                sender=self.name,
                status="ok",
                message=f"Sociocs accepted SOCIOCS_API_KEY (GET /messages for {day.isoformat()}); "
                f"SOCIOCS_CHANNEL_KEY_{self.code.upper()} is only checked by a send.",
            )

        return probe(
            self, self.build_list_request(day, day), "Sociocs GET /messages", interpret,
            "check SOCIOCS_API_URL and the network",
        )


def _day(value: date) -> date:
    """A date as is; a datetime as its UTC date (naive ones are taken as UTC)."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value


def days_to_look_up(spans: Sequence[tuple[float, float]], limit: int = 31) -> list[date]:
    """The UTC days covering the given (start, end) epoch spans, newest first, at most `limit`.

    One GET /messages per day keeps each answer as small as the documented parameters
    allow, since Sociocs offers no paging; the bound keeps a pass's calls few.
    """
    days: set[date] = set()
    for start, end in spans:
        day = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(max(start, end), UTC).date()
        while day <= last and len(days) <= 10 * limit:
            days.add(day)
            day += timedelta(days=1)
    return sorted(days, reverse=True)[:limit]


def verify_sociocs_signature(secret: str, body: bytes, signature_header: str | None) -> bool:
    """`X-Sociocs-Signature`: hex HMAC-SHA256 of the raw body with the subscription secret."""
    if not secret or not signature_header:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    # Bytes, so a non-ASCII header cannot raise inside compare_digest.
    return hmac.compare_digest(expected.encode(), signature_header.strip().lower().encode())
