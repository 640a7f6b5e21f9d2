"""The provider-neutral model: one message, one result, one error taxonomy, one interface.

Nothing in here knows about Slack or SQL. Each provider module subclasses `Provider`,
declares its `Capabilities`, builds its HTTP request as a pure function and maps the
provider's answers onto the errors below.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import quote, quote_plus, urlsplit

import certifi
import httpx
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from .checks import CredentialCheck, WebhookCheck

# --------------------------------------------------------------------------- messages


class TemplateSend(BaseModel):
    """A WhatsApp (or Bird text) template with its variable values.

    `variables` keeps the provider's own shape: `{"1": "John"}` for Twilio WhatsApp,
    `{"MEDIA_URL": ..., "Header": {...}, "Body": {...}, "Buttons": {...}}` for Gupshup,
    `{"appt_date": "1/1"}` for TextUs and Bird.
    """

    id: str = ""  # Twilio content SID, Gupshup template id, TextUs template id
    variables: dict[str, Any] = Field(default_factory=dict)
    # Bird only
    project_id: str | None = None
    version: str = "latest"
    locale: str | None = None


class ContactSaving(BaseModel):
    save: bool = False
    list_id: int = 0
    extra_fields: dict[str, Any] = Field(default_factory=dict)


class OutboundMessage(BaseModel):
    """One message to one recipient. `to` is already E.164 (`+16175551212`)."""

    to: str
    name: str | None = None
    text: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    video_url: str | None = None
    file_url: str | None = None
    file_content_type: str | None = None  # required by TextUs and Bird for files
    subject: str | None = None  # Bird MMS title
    template: TemplateSend | None = None
    contact_saving: ContactSaving | None = None
    schedule: datetime | None = None  # provider-side scheduling (we schedule ourselves by default)
    user_id: str | None = None  # Sociocs team member shown as the sender
    reference: str | None = None  # our own id, echoed back where the provider allows
    channel: Literal["sms", "whatsapp"] | None = None  # TextUs: WhatsApp instead of SMS

    def has_content(self) -> bool:
        return bool(
            (self.text and self.text.strip())
            or self.image_urls
            or self.video_url
            or self.file_url
            or self.template
        )


DeliveryStatus = Literal[
    "accepted", "scheduled", "sent", "delivered", "read", "failed", "unknown"
]


class SendResult(BaseModel):
    """What the provider said when it took the message."""

    provider_message_id: str | None = None
    status: DeliveryStatus = "accepted"
    provider_status: str | None = None  # the provider's own word, e.g. Bird's "processing"
    detail: str | None = None  # a human note, e.g. "sandbox: not sent"


class BulkRecipient(BaseModel):
    to: str
    name: str | None = None


class BulkResult(BaseModel):
    job_id: str
    count: int


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """Base of the taxonomy. `message` is written for a person and never holds a secret.

    `retryable` is True only when the provider certainly did not accept the message.
    """

    kind: str = "error"
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self.message


class InvalidMessage(ProviderError):
    """The message breaks the provider's documented rules; found before anything is sent."""

    kind = "invalid"


class Rejected(ProviderError):
    """400 / 422: the provider refused this message. Do not retry."""

    kind = "rejected"


class AuthFailed(ProviderError):
    """401 / 403: credentials wrong or revoked. Do not retry."""

    kind = "auth"


class NotFound(ProviderError):
    """404: wrong endpoint, workspace, channel or account in the configuration."""

    kind = "not_found"


class RateLimited(ProviderError):
    """429: not processed; safe to retry after `retry_after` seconds."""

    kind = "rate_limited"
    retryable = True


class NotSent(ProviderError):
    """Connection refused / DNS / connect timeout: the request never left. Safe to retry."""

    kind = "not_sent"
    retryable = True


class UnknownOutcome(ProviderError):
    """Timeout after sending, 5xx, dropped connection: the message may have gone out.

    Never retried blindly; shown to people as unknown and reconciled.
    """

    kind = "unknown"


# --------------------------------------------------------------------------- capabilities


class Capabilities(BaseModel):
    channel: Literal["sms", "whatsapp", "sms+whatsapp"] = "sms"
    text: bool = True
    max_images: int = 0
    video: bool = False
    file: bool = False
    file_content_types: frozenset[str] | None = None  # None: any type accepted
    templates: bool = False
    native_bulk: bool = False
    native_schedule: bool = False
    status_webhooks: bool = False
    contact_saving: bool = False  # Sociocs saves the recipient as a contact after sending
    max_text_length: int | None = None


# --------------------------------------------------------------------------- requests


class PreparedRequest(BaseModel):
    """A provider call as data: what `build_request` returns and the tests compare."""

    method: Literal["GET", "POST", "PUT", "DELETE"] = "POST"
    url: str
    headers: dict[str, str]
    json_body: dict[str, Any] | None = None
    params: dict[str, str] | None = None


def _secret_forms(secret: str) -> set[str]:
    """A secret as it may appear in a provider's text: raw, or URL-encoded (either hex case)."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)}
    forms |= {_PCT.sub(lambda m: m.group().lower(), f) for f in forms}
    return forms


_PCT = re.compile(r"%[0-9A-F]{2}")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret (and the secret half of `user:secret` keys) by `***`."""
    for form in _all_forms(tuple(s for s in secrets if s)):
        text = text.replace(form, "***")
    return text


@lru_cache(maxsize=64)
def _all_forms(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Every form to replace, longest first (so a secret's prefix never leaves its tail)."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= _secret_forms(secret)
        # A `user:secret` key: the secret half alone must not leak either.
        _, colon, tail = secret.rpartition(":")
        if colon and len(tail) >= 6:
            forms |= _secret_forms(tail)
    return tuple(sorted(forms, key=len, reverse=True))


_WS = re.compile(r"\s+")


def short_body(response: httpx.Response, limit: int = 200) -> str:
    """A short one-line excerpt of an error body, for people (never logged with secrets)."""
    try:
        text = response.text
    except Exception:  # pragma: no cover - undecodable body
        return ""
    return _WS.sub(" ", text).strip()[:limit]


def retry_after_seconds(response: httpx.Response, default: float = 1.0) -> float:
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return default


def url_suffix(url: str) -> str:
    """`https://x/a/menu.PDF?x=1` -> `.pdf` (the extension of the URL's path, if any)."""
    path = urlsplit(url).path.lower()
    dot = path.rfind(".")
    return path[dot:] if dot > path.rfind("/") else ""


class Provider(ABC):
    """One sender: a provider API plus the account/channel it sends from."""

    #: the sender name people type: twlo, twlowa, gswa, bird, textus, sandbox
    name: str
    #: how people read it: "Twilio SMS"
    label: str
    capabilities: Capabilities
    #: the company, for error sentences: "Sociocs"
    vendor: str = "The provider"
    #: what a 401/403 means for this provider, naming the variable to fix
    auth_hint: str = "The provider rejects our credentials."
    #: what to check after a 404
    not_found_hint: str = "check the provider settings"
    #: wait after a 429 that says nothing about when to come back
    default_retry_after: float = 5.0
    #: the attributes holding credentials (what secrets() returns)
    secret_attrs: tuple[str, ...] = ()
    #: the attributes __repr__ shows (never a credential)
    repr_attrs: tuple[str, ...] = ()
    #: what `smsbot doctor` says about the webhooks (no provider here lists its subscriptions)
    webhooks_note: str | None = None

    def __init__(self, client: httpx.Client | None = None, timeout: float = 10.0, base_url: str = "") -> None:
        # Without a given client, each sending thread gets its own: one client shared by 16
        # threads serialises on its pool lock (a plain loop ran at 0.6-0.7 of its speed so).
        self._given = client
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        self._local = threading.local()
        self._clients: weakref.WeakSet[httpx.Client] = weakref.WeakSet()  # a dead thread's goes with it
        self._clients_lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None
        self.base_url = base_url.rstrip("/")  # every path is appended after a "/"
        #: every other configured secret (Slack, webhooks, other providers): a provider's
        #: error text can echo anything, and what scrub() returns is stored and shown.
        self.also_redact: list[str] = []

    # -- to implement

    @abstractmethod
    def build_request(self, msg: OutboundMessage) -> PreparedRequest:
        """Pure: the exact request that sends `msg`. No network."""

    @abstractmethod
    def parse_response(self, response: httpx.Response) -> SendResult:
        """Turn the provider's answer into a SendResult or raise a ProviderError."""

    # -- shared behaviour

    def secrets(self) -> list[str]:
        """Every credential this provider holds, for redaction."""
        return [getattr(self, attr) for attr in self.secret_attrs]

    def __repr__(self) -> str:  # names only the public attributes: never a credential
        shown = ", ".join(f"{attr}={getattr(self, attr)!r}" for attr in self.repr_attrs)
        return f"{type(self).__name__}({shown})"

    def validate(self, msg: OutboundMessage) -> list[str]:
        """Problems with `msg` for this provider, in words a person can act on."""
        caps = self.capabilities
        problems: list[str] = []
        if not msg.has_content():
            problems.append("Add a text, a media URL or a template: the message is empty.")
        if msg.image_urls and caps.max_images == 0:
            problems.append(f"{self.label} cannot send images; remove the image URL or choose another sender.")
        elif len(msg.image_urls) > caps.max_images:
            problems.append(f"{self.label} takes at most {caps.max_images} image(s); you gave {len(msg.image_urls)}.")
        if msg.video_url and not caps.video:
            problems.append(f"{self.label} cannot send a video; remove the video URL or choose another sender.")
        if msg.file_url and not caps.file:
            problems.append(f"{self.label} cannot send a file; remove the file URL or choose another sender.")
        if msg.contact_saving and not caps.contact_saving:
            problems.append(f"{self.label} cannot save contacts; untick \"Save as contact\" or choose a Sociocs sender.")
        if msg.template and not caps.templates:
            problems.append(f"{self.label} does not send templates; choose a WhatsApp sender.")
        if msg.text and caps.max_text_length and len(msg.text) > caps.max_text_length:
            problems.append(
                f"The text is {len(msg.text)} characters; {self.label} takes at most {caps.max_text_length}."
            )
        for url in [*msg.image_urls, msg.video_url, msg.file_url]:
            if url and not url.startswith(("http://", "https://")):
                problems.append(f"Media URL must be a public http(s) URL: {url[:80]}")
        return problems

    def send(self, msg: OutboundMessage) -> SendResult:
        problems = self.validate(msg)
        if problems:
            raise InvalidMessage(" ".join(problems))
        prepared = self.build_request(msg)
        return self.parse_response(self.execute(prepared))

    def execute(self, prepared: PreparedRequest) -> httpx.Response:
        """Send a prepared request, mapping transport failures onto the taxonomy."""
        try:
            return self._client.request(
                prepared.method,
                prepared.url,
                headers=prepared.headers,
                content=json.dumps(prepared.json_body).encode() if prepared.json_body is not None else None,
                params=prepared.params,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise NotSent(f"{self.label} could not be reached ({type(exc).__name__}); nothing was sent.") from None
        except httpx.TimeoutException:
            raise UnknownOutcome(
                f"{self.label} did not answer in time; the message may or may not have been sent."
            ) from None
        except httpx.TransportError as exc:
            raise UnknownOutcome(
                f"The connection to {self.label} broke ({type(exc).__name__}); the message may or may not have been sent."
            ) from None

    def retry_after(self, response: httpx.Response) -> float:
        return retry_after_seconds(response, self.default_retry_after)

    def raise_for_status(self, response: httpx.Response, detail: str, what: str = "message") -> NoReturn:
        """Map a non-success answer onto the taxonomy: the same rules for every provider.

        `detail` is the provider's own error text (already scrubbed of secrets).
        """
        code = response.status_code
        said = f": {detail}" if detail else ""
        if code in (401, 403):
            raise AuthFailed(self.auth_hint, status_code=code)
        if code == 404:
            raise NotFound(f"{self.vendor} answered 404{said}: {self.not_found_hint}.", status_code=code)
        if code == 429:
            wait = self.retry_after(response)
            raise RateLimited(
                f"{self.vendor} is rate limiting; nothing was sent. Retry in {wait:g} s.",
                status_code=code,
                retry_after=wait,
            )
        if code >= 500:
            raise UnknownOutcome(
                f"{self.vendor} had a server error ({code}); the {what} may or may not have been sent.",
                status_code=code,
            )
        if 400 <= code < 500:
            raise Rejected(f"{self.vendor} refused the {what} ({code}){said}", status_code=code)
        raise UnknownOutcome(f"{self.vendor} answered an unexpected {code}; the {what} may or may not have been sent.")

    @property
    def _client(self) -> httpx.Client:
        if self._given is not None:
            return self._given
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            # One SSL context for every thread's client: building one loads the CA bundle
            # (5-50 ms of CPU), which a thread's first send would otherwise pay after its row
            # was committed `sending`, widening the window a crash leaves it unknown in.
            with self._clients_lock:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context(cafile=certifi.where())
                client = self._local.client = httpx.Client(timeout=self._timeout, verify=self._ssl)
                self._clients.add(client)
        return client

    def close(self) -> None:
        if self._given is not None:
            self._given.close()
        with self._clients_lock:
            clients, self._clients = list(self._clients), weakref.WeakSet()
        for client in clients:
            client.close()

    # -- `smsbot doctor` (providers override these with a documented read call)

    def check_credentials(self) -> CredentialCheck:
        """A harmless read call (never a send) telling whether the credentials work."""
        from .checks import CredentialCheck

        return CredentialCheck(sender=self.name, status="other", message=f"{self.label}: no credential check.")

    def check_webhooks(self) -> WebhookCheck:
        """Whether the provider's webhooks point here, where the provider offers a way to tell."""
        from .checks import WebhookCheck

        return WebhookCheck(sender=self.name, status="unknown", message=self.webhooks_note or f"{self.label}: can't tell.")

    def scrub(self, text: str) -> str:
        return redact(text, [*self.secrets(), *getattr(self, "also_redact", [])])
