"""POST /webhooks/sociocs|bird|textus: signed delivery reports and customers' messages.

Inbound messages and opt-out facts (providers/inbound.py) go to ConversationEngine.ingest;
anything else is tried as a delivery report (providers/events.py) as before.

Order of checks: secret configured (else 401), size (Content-Length over SMS_MAX_BODY_BYTES:
413 before reading anything; without one the body is read in chunks and refused at the limit),
signature on the raw bytes (else 401), JSON and shape (else 400, logged without the body;
absurdly nested JSON included), then the store. The answer goes back
as soon as the event is stored; Slack updates happen on the delivery thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.core.config import Settings
from bot.core.conversations.engine import ConversationEngine
from bot.core.delivery.engine import DeliveryEngine
from bot.core.metrics import Metrics
from bot.webhooks.body import read_capped, storable_json
from providers.bird import verify_bird_signature
from providers.events import DeliveryEvent, parse_bird_event, parse_sociocs_event, parse_textus_event
from providers.inbound import InboundPayloadError, InboundResult, parse_inbound
from providers.sociocs import verify_sociocs_signature
from providers.textus import verify_textus_signature

log = logging.getLogger("smsbot.webhooks")

Verifier = Callable[[str, bytes, Request], bool]
WebhookHandler = Callable[[Request], Awaitable[Response]]
Parser = Callable[[dict[str, Any]], DeliveryEvent | None]


def public_url(request: Request) -> str:
    """The URL the provider signed: as seen from outside, through a proxy if there is one."""
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip() or request.url.scheme
    host = request.headers.get("x-forwarded-host", "").split(",")[0].strip() or request.headers.get("host", "")
    if not host:
        host = request.url.netloc
    url = f"{proto}://{host}{request.url.path}"
    return f"{url}?{request.url.query}" if request.url.query else url


def _sociocs_ok(secret: str, body: bytes, request: Request) -> bool:
    return verify_sociocs_signature(secret, body, request.headers.get("x-sociocs-signature"))


def _bird_ok(secret: str, body: bytes, request: Request) -> bool:
    return verify_bird_signature(
        secret,
        request.headers.get("messagebird-signature"),
        request.headers.get("messagebird-request-timestamp"),
        public_url(request),
        body,
    )


def _textus_ok(secret: str, body: bytes, request: Request) -> bool:
    return verify_textus_signature(secret, body, request.headers.get("x-textus-signature"))


def _bird_reference(payload: dict[str, Any]) -> str | None:
    message = payload.get("payload") if isinstance(payload.get("payload"), dict) else payload
    ref = message.get("reference") if isinstance(message, dict) else None
    return ref if isinstance(ref, str) else None


PROVIDERS: dict[str, tuple[str, Verifier, Parser]] = {
    "sociocs": ("SOCIOCS_WEBHOOK_SECRET", _sociocs_ok, parse_sociocs_event),
    "bird": ("BIRD_WEBHOOK_SIGNING_KEY", _bird_ok, parse_bird_event),
    "textus": ("TEXTUS_WEBHOOK_SECRET", _textus_ok, parse_textus_event),
}


def _secret(settings: Settings, variable: str) -> str | None:
    value = getattr(settings, variable.lower(), None)
    raw = value.get_secret_value() if value is not None else ""
    return raw or None


# What DeliveryEngine.ingest answered -> the webhook_events result it counts as.
INGEST_RESULTS = {"applied": "accepted", "duplicate or stale": "duplicate", "ignored": "ignored"}


INBOUND_RESULTS = {"stored": "accepted", "duplicate": "duplicate", "consent": "accepted", "ignored": "ignored"}


def read_payload(name: str, body: bytes, parse: Parser) -> tuple[InboundResult | None, DeliveryEvent | None, Any]:
    """(inbound result, delivery event, payload); raises ValueError when it is neither readable."""
    payload = storable_json(body)
    try:
        inbound = parse_inbound(name, payload)
    except InboundPayloadError as exc:
        event = parse(payload)
        if event is None:  # a message event we cannot use: recorded in the log, not retried for ever
            # The parser's reason may quote a bad number: its digits are masked.
            log.warning("%s webhook: an inbound message ignored: %s", name, re.sub(r"\d", "#", str(exc)))
        return None, event, payload
    if inbound is not None:
        return inbound, None, payload
    return None, parse(payload), payload


async def ingest_inbound(conversations: ConversationEngine | None, name: str,
                         inbound: InboundResult) -> tuple[Response, str | None]:
    if conversations is None:
        return JSONResponse({"ok": True, "result": "inbound messages are not handled here"}), "ignored"
    try:
        result = await run_in_threadpool(conversations.ingest, inbound)
    except Exception:
        log.exception("storing a %s inbound message failed", name)
        return JSONResponse({"ok": False, "error": "try again"}, status_code=503), None
    return JSONResponse({"ok": True, "result": result}), INBOUND_RESULTS.get(result, "other")


def make_handler(delivery: DeliveryEngine, settings: Settings, name: str,
                 metrics: Metrics | None = None, conversations: ConversationEngine | None = None) -> WebhookHandler:
    handle_one = _handler(delivery, settings, name, conversations)

    async def handle(request: Request) -> Response:
        response, result = await handle_one(request)
        if metrics is not None and result is not None:
            metrics.webhook(name, result)
        return response

    return handle


def _handler(delivery: DeliveryEngine, settings: Settings, name: str,
             conversations: ConversationEngine | None) -> Callable[[Request], Awaitable[tuple[Response, str | None]]]:
    """The handler proper: its answer, and the result to count (None: not counted, a 503)."""
    variable, verify, parse = PROVIDERS[name]

    async def handle(request: Request) -> tuple[Response, str | None]:
        secret = _secret(settings, variable)
        if secret is None:
            delivery.warn_once(f"nosecret:{name}", "refusing %s webhooks: %s is not set", name, variable)
            return JSONResponse({"ok": False, "error": f"{variable} is not configured"}, status_code=401), \
                "bad_signature"
        body = await read_capped(request, settings.sms_max_body_bytes, f"{name} webhook")
        if isinstance(body, Response):  # 413: too big to be a report
            return body, "malformed"
        if not verify(secret, body, request):
            log.warning("%s webhook refused: bad or missing signature", name)
            return JSONResponse({"ok": False, "error": "invalid signature"}, status_code=401), "bad_signature"
        reference = None
        try:
            inbound, event, payload = read_payload(name, body, parse)
            if name == "bird" and isinstance(payload, dict):
                reference = _bird_reference(payload)
        except (ValueError, RecursionError) as exc:  # JSON (nesting too), pydantic and the parsers' own errors
            # Never log the body: it holds phone numbers and message text.
            log.warning("%s webhook refused: malformed (%d bytes, %s)", name, len(body), type(exc).__name__)
            return JSONResponse({"ok": False, "error": "malformed payload"}, status_code=400), "malformed"
        if inbound is not None:
            return await ingest_inbound(conversations, name, inbound)
        if event is None:
            return JSONResponse({"ok": True, "result": "not a delivery status"}), "ignored"
        try:
            result = await run_in_threadpool(delivery.ingest, event, reference)
        except Exception:
            log.exception("storing a %s delivery event failed", name)
            # 5xx: the provider retries later, nothing is lost.
            return JSONResponse({"ok": False, "error": "try again"}, status_code=503), None
        return JSONResponse({"ok": True, "result": result}), INGEST_RESULTS.get(result, "other")

    return handle


def handlers(delivery: DeliveryEngine, settings: Settings, metrics: Metrics | None = None,
             conversations: ConversationEngine | None = None) -> dict[str, WebhookHandler]:
    """One handler per provider, for /webhooks/<provider>, counted in `metrics` when given."""
    return {name: make_handler(delivery, settings, name, metrics, conversations) for name in PROVIDERS}


def register(hooks: dict[str, WebhookHandler], delivery: DeliveryEngine, settings: Settings) -> None:
    """Add the providers' handlers to `hooks` (the web app's /webhooks/<provider> table)."""
    hooks.update(handlers(delivery, settings))
