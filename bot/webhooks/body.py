"""Reading inbound HTTP bodies with a size cap (Slack's /slack/events and the provider webhooks).

The cap is enforced twice: a declared Content-Length over it is refused before a byte is read,
and the stream itself is counted chunk by chunk, so a missing or lying Content-Length (chunked
uploads) never makes us hold more than `limit` bytes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("smsbot.web")

DEFAULT_MAX_BODY = 1024 * 1024  # 1 MiB: Slack payloads and status events are far smaller


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, never more than `limit` bytes in memory (raises BodyTooLarge)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(size)
        chunks.append(chunk)
    return b"".join(chunks)


def refuse(what: str, status: int, error: str, reason: str) -> Response:
    """One log line (never the body) and a small JSON answer."""
    log.warning("%s refused (%d): %s", what, status, reason)
    return JSONResponse({"ok": False, "error": error}, status_code=status)


async def read_capped(request: Request, limit: int, what: str) -> bytes | Response:
    """The body, or the 400/413 answer to send instead."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return refuse(what, 400, "bad Content-Length", "bad Content-Length")
        if int(declared) > limit:
            return refuse(what, 413, "too large", f"declared body of {declared.strip()} bytes is over {limit}")
    try:
        return await read_body(request, limit)
    except BodyTooLarge:
        return refuse(what, 413, "too large", f"body over {limit} bytes")
    except ClientDisconnect:
        # The sender hung up mid-body: nobody reads the answer, but the log gets one line, not a traceback.
        return refuse(what, 400, "incomplete body", "client disconnected before the body ended")


def storable_json(body: bytes) -> Any:
    """json.loads, with every string value made storable on both backends: `\\u0000` (a
    badly decoded GSM '@') is dropped, which PostgreSQL refuses in text, and a lone surrogate
    escape becomes U+FFFD, which no UTF-8 encoder takes. Either once answered 503 for ever.
    Walked without recursion: the decoder already bounds the nesting."""
    payload = json.loads(body)
    if isinstance(payload, str):
        return _storable(payload)
    stack: list[Any] = [payload]
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(pairs):
            if isinstance(value, str):
                node[key] = _storable(value)
            elif isinstance(value, dict | list):
                stack.append(value)
    return payload


def _storable(text: str) -> str:
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text
