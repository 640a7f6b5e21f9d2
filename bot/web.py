"""The web app: `/slack/events`, `/webhooks/<provider>`, `/healthz`, served by uvicorn."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from slack_bolt import App, BoltRequest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storage.store import Store

WebhookHandler = Callable[[Request], Awaitable[Response]]


def build_web(bolt: App, store: Store, webhooks: dict[str, WebhookHandler] | None = None) -> Starlette:
    async def slack_events(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", errors="replace")
        headers: dict[str, str | Sequence[str]] = {k: v for k, v in request.headers.items()}
        bolt_req = BoltRequest(body=body, query=request.url.query, headers=headers)
        # Bolt is synchronous: run it off the event loop so requests do not queue behind it.
        resp = await run_in_threadpool(bolt.dispatch, bolt_req)
        return Response(content=resp.body, status_code=resp.status, headers=resp.first_headers_without_set_cookie())

    async def healthz(request: Request) -> Response:
        try:
            await run_in_threadpool(lambda: store.conn.execute("SELECT 1").fetchone())
        except Exception:
            return JSONResponse({"ok": False, "store": "unavailable"}, status_code=503)
        return JSONResponse({"ok": True})

    async def webhook(request: Request) -> Response:
        handler = (webhooks or {}).get(request.path_params["provider"])
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown provider"}, status_code=404)
        return await handler(request)

    routes = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/webhooks/{provider}", webhook, methods=["POST"]),
    ]
    return Starlette(routes=routes)
