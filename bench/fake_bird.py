"""A Bird messages endpoint for benchmarks: a bare ASGI app answering from memory, run in its
own process on uvicorn (httptools), so it neither shares the GIL with the pipeline nor caps it.

It counts at the fake: every POST's arrival time and recipient. `GET /_stats` gives the
figures (`?count`: only the count, cheap enough to poll), `POST /_reset?latency=0.05`
clears them and sets the answer delay.

    python -m uvicorn bench.fake_bird:app --port 8999 --http httptools --no-access-log
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_state: dict[str, Any] = {"latency": 0.0, "arrivals": [], "to": []}


def busiest_window(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    worst, j = 0, 0
    for i, start in enumerate(stamps):
        while j < len(stamps) and stamps[j] < start + 1.0:
            j += 1
        worst = max(worst, j - i)
    return worst


def stats(full: bool = True) -> dict[str, Any]:
    arrivals: list[float] = _state["arrivals"]
    n = len(arrivals)
    if not full:  # polled while a run goes on: no O(n) work that would take CPU from it
        return {"count": n}
    span = (arrivals[-1] - arrivals[0]) if n > 1 else 0.0
    return {"count": n, "unique": len(set(_state["to"])), "first": arrivals[0] if n else None,
            "last": arrivals[-1] if n else None, "rate": (n - 1) / span if span > 0 else 0.0,
            "busiest": busiest_window(arrivals)}


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _reply(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    body = await _body(receive)
    if path == "/_stats":
        query = scope.get("query_string", b"")
        body_out = stats(full=b"count" not in query)
        if b"arrivals" in query:  # every arrival time, to see how the sends were spread
            body_out["arrivals"] = _state["arrivals"]
        await _reply(send, 200, body_out)
    elif path == "/_reset":
        query = parse_qs(scope.get("query_string", b"").decode())
        _state.update(latency=float(query.get("latency", ["0"])[0]), arrivals=[], to=[])
        await _reply(send, 200, {"ok": True})
    elif method == "POST" and path.endswith("/messages"):
        _state["arrivals"].append(time.time())
        try:
            to = json.loads(body)["receiver"]["contacts"][0]["identifierValue"]
        except (ValueError, KeyError, IndexError, TypeError):
            to = None
        _state["to"].append(to)
        if _state["latency"]:
            await asyncio.sleep(_state["latency"])
        await _reply(send, 202, {"id": str(uuid.uuid4()), "status": "accepted"})
    else:
        await _reply(send, 404, {"code": "NotFound", "message": "no such route"})
