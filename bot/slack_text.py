"""Text for Slack: what people typed must show as typed, never as mentions or links."""

from __future__ import annotations


def escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as control characters (`<!channel>`, `<url|label>`)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
