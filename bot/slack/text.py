"""Text for Slack: what people typed must show as typed, never as mentions or links, and
everything must fit Slack's length limits.

Escape first, then cap: `escape` can make text up to five times longer (`&` -> `&amp;`), so
a cut made before escaping does not bound what Slack receives. `fit` walks a whole
message or view and caps every text where Slack limits it (docs: slack-notes.md).
"""

from __future__ import annotations

import re
from typing import Any

CUT_MARK = "… (cut)"

MESSAGE_TEXT = 40_000  # chat.postMessage / response_url / slash command reply `text`
SECTION_TEXT = 3_000
FIELD_TEXT = 2_000
CONTEXT_TEXT = 3_000
HEADER_TEXT = 150
BUTTON_TEXT = 75
OPTION_TEXT = 75
MODAL_TITLE = 24  # title, submit, close
LABEL_TEXT = 2_000
PLACEHOLDER_TEXT = 150
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
ERROR_TEXT = 2_000  # view_submission field errors (kept short; no documented limit)

# A cut must not split `&amp;` (shows as `&am`) nor `<@U1>` / `<#C1>` (shows raw markup).
_OPEN_ENTITY = re.compile(r"&[a-z]{0,4}$")
_OPEN_TOKEN = re.compile(r"<[^<>\s]{0,60}$")


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters (`<!channel>`, `<url|label>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cap(text: str, limit: int) -> str:
    """`text` (already escaped) in at most `limit` characters, saying so when it was cut."""
    if len(text) <= limit:
        return text
    if limit <= len(CUT_MARK):
        return text[:limit]
    head = text[: limit - len(CUT_MARK)]
    for pattern in (_OPEN_ENTITY, _OPEN_TOKEN):
        m = pattern.search(head)
        if m:
            head = head[: m.start()]
    return head + CUT_MARK


def truncate(text: str, limit: int) -> str:
    """Kept for callers that shorten before building text; the same as `cap`."""
    return cap(text, limit)


def shown(text: str | None, limit: int) -> str:
    """Typed or provider text for mrkdwn: escaped, then capped."""
    return cap(escape(text or ""), limit)


# The limit of a text object under each key, by the type of the object holding it.
_LIMITS: dict[tuple[str, str], int] = {
    ("section", "text"): SECTION_TEXT,
    ("section", "fields"): FIELD_TEXT,
    ("context", "elements"): CONTEXT_TEXT,
    ("header", "text"): HEADER_TEXT,
    ("button", "text"): BUTTON_TEXT,
    ("option", "text"): OPTION_TEXT,
    ("option", "description"): OPTION_TEXT,
    ("modal", "title"): MODAL_TITLE,
    ("modal", "submit"): MODAL_TITLE,
    ("modal", "close"): MODAL_TITLE,
    ("input", "label"): LABEL_TEXT,
    ("input", "hint"): LABEL_TEXT,
    ("confirm", "title"): CONFIRM_TITLE,
    ("confirm", "text"): CONFIRM_TEXT,
    ("confirm", "confirm"): MODAL_TITLE * 2,
    ("confirm", "deny"): MODAL_TITLE * 2,
    ("*", "placeholder"): PLACEHOLDER_TEXT,
}


def _kind(node: dict[str, Any], key: str | None) -> str:
    if key == "confirm" and "deny" in node:
        return "confirm"
    if "type" in node and isinstance(node["type"], str):
        return node["type"]
    return "option" if "value" in node and "text" in node else ""


def _fit(node: Any, limit: int, key: str | None = None) -> Any:
    if isinstance(node, list):
        return [_fit(item, limit) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") in ("mrkdwn", "plain_text") and isinstance(node.get("text"), str):
        return {**node, "text": cap(node["text"], limit)}
    kind = _kind(node, key)
    out: dict[str, Any] = {}
    for k, v in node.items():
        child = _LIMITS.get((kind, k)) or _LIMITS.get(("*", k)) or limit
        out[k] = _fit(v, child, k)
    return out


def fit(payload: dict[str, Any]) -> dict[str, Any]:
    """A message (`text`, `blocks`) or a view, with every text capped where Slack limits it."""
    out = _fit({k: v for k, v in payload.items() if k not in ("text", "errors")}, SECTION_TEXT)
    if isinstance(payload.get("text"), str):
        out["text"] = cap(payload["text"], MESSAGE_TEXT)
    if isinstance(payload.get("errors"), dict):
        out["errors"] = {k: cap(str(v), ERROR_TEXT) for k, v in payload["errors"].items()}
    return out


def fit_blocks(blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    return None if blocks is None else fit({"blocks": blocks})["blocks"]
