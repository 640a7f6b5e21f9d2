"""The web app: `/slack/events`, `/webhooks/<provider>`, `/healthz`, `/readyz`, `/metrics`, served by uvicorn.

`/healthz` is liveness (the process answers, the store pings); `/readyz` is readiness: the
store answers and its schema is the one this code migrates to (doctor.check_store), else 503
with the reason. `/metrics` is this process's Prometheus registry (bot/core/metrics.py).

`/slack/events` checks in this order, cheapest and safest first: body size (413, read in
capped chunks), Slack's signature on the raw bytes (401), then UTF-8, form/JSON and the shape
of the containers listeners read (400). Only then does Bolt see the request; nothing
unauthenticated is ever parsed, and nothing here logs a body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.request.internals import parse_body
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.core.doctor import check_store
from bot.core.metrics import Metrics
from bot.webhooks.body import DEFAULT_MAX_BODY, read_capped, refuse
from storage.store import Store

WebhookHandler = Callable[[Request], Awaitable[Response]]

# Top-level keys Bolt and the listeners treat as objects / lists when present.
OBJECT_KEYS = ("event", "view", "user", "team", "channel", "container", "message")
LIST_KEYS = ("actions", "authorizations")
REPLAY_WINDOW = 300  # seconds, as Slack documents and Bolt checks
SHAPES: dict[str, type | tuple[type, ...]] = {**dict.fromkeys(OBJECT_KEYS, dict), **dict.fromkeys(LIST_KEYS, list),
                                              "enterprise": (dict, str)}


def signed_by_slack(secret: bytes | None, body: bytes, request: Request) -> bool:
    """Slack's v0 signature over the raw bytes, stamped within five minutes (replays refused)."""
    if secret is None:  # no signing secret: only Socket Mode envelopes count, never HTTP
        return False
    stamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if not stamp.isascii() or not stamp.isdigit() or abs(time.time() - int(stamp)) > REPLAY_WINDOW:
        return False
    expected = "v0=" + hmac.new(secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def malformed(parsed: Any) -> str | None:
    """Why a signed body cannot be a Slack request (None when its shape is plausible)."""
    if not isinstance(parsed, dict):
        return f"top level is {type(parsed).__name__}, not an object"
    for key, shape in SHAPES.items():
        if parsed.get(key) is not None and not isinstance(parsed[key], shape):
            return f"'{key}' is a {type(parsed[key]).__name__}"
    return malformed_view(parsed.get("view") or {})


def malformed_view(view: dict[str, Any]) -> str | None:
    """Every modal of ours keeps a JSON object in private_metadata, and Slack sends state.values."""
    if view and not isinstance(view.get("type"), str):
        return "view has no type"  # Bolt reads view["type"] unguarded and would answer 500
    state = view.get("state")
    if state is not None and not (isinstance(state, dict) and isinstance(state.get("values", {}), dict)):
        return "view state is not an object"
    meta = view.get("private_metadata")
    if meta in (None, ""):
        return None
    try:
        ok = isinstance(meta, str) and isinstance(json.loads(meta), dict)
    except (ValueError, RecursionError):
        ok = False
    return None if ok else "private_metadata is not one of ours"


def to_bolt_request(body: bytes, request: Request) -> BoltRequest | Response:
    """The BoltRequest for a signed body, or the 400 to answer instead."""
    headers: dict[str, str | Sequence[str]] = {k: v for k, v in request.headers.items()}
    try:
        text = body.decode("utf-8")
        reason = malformed(parse_body(text, request.headers.get("content-type")))
        if reason is None:
            return BoltRequest(body=text, query=request.url.query, headers=headers)
    except (ValueError, RecursionError) as exc:  # UTF-8, JSON (nesting too), form decoding
        reason = f"not a Slack payload ({type(exc).__name__})"
    except Exception as exc:  # Bolt's own context extraction choking on an odd shape
        reason = f"unreadable payload ({type(exc).__name__})"
    return refuse("Slack request", 400, "malformed payload", f"{reason}; {len(body)} bytes")


def build_web(
    bolt: App,
    store: Store,
    webhooks: dict[str, WebhookHandler] | None = None,
    *,
    signing_secret: str | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    metrics: Metrics | None = None,
) -> Starlette:
    secret = signing_secret.encode() if signing_secret else None

    async def slack_events(request: Request) -> Response:
        body = await read_capped(request, max_body, "Slack request")
        if isinstance(body, Response):
            return body
        if not signed_by_slack(secret, body, request):
            return refuse("Slack request", 401, "invalid signature", "bad or missing signature")
        bolt_req = to_bolt_request(body, request)
        if isinstance(bolt_req, Response):
            return bolt_req
        # Bolt is synchronous: run it off the event loop so requests do not queue behind it.
        resp = await run_in_threadpool(bolt.dispatch, bolt_req)
        return Response(content=resp.body, status_code=resp.status, headers=resp.first_headers_without_set_cookie())

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(store.ping)
        except Exception:
            return JSONResponse({"ok": False, "store": "unavailable"}, status_code=503)
        return JSONResponse({"ok": True})

    async def readyz(request: Request) -> Response:
        result = await run_in_threadpool(check_store, store)
        return JSONResponse({"ok": result.ok, "store": result.message}, status_code=200 if result.ok else 503)

    async def metrics_page(request: Request) -> Response:
        if metrics is None:
            return JSONResponse({"ok": False, "error": "metrics are off in this process"}, status_code=404)
        body, kind = await run_in_threadpool(metrics.exposition)  # reads the store's counts
        return Response(content=body, headers={"Content-Type": kind})

    async def webhook(request: Request) -> Response:
        handler = (webhooks or {}).get(request.path_params["provider"])
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown provider"}, status_code=404)
        return await handler(request)

    routes = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes)

