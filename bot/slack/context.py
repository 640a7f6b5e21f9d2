"""What every listener needs, built once at start-up (see bot/runtime.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk import WebClient

from bot.core.config import Settings
from bot.core.senders import Senders
from bot.core.sending import SendService
from bot.slack.announcer import Notifier
from storage.store import Store

# A fast part answers inside Slack's 3 seconds (its return value is the ack); the slow
# part, if any, runs after the ack in a lazy listener thread.
FastHandler = Callable[["AppContext", dict[str, Any], str], Any]
SlowHandler = Callable[["AppContext", dict[str, Any], str, WebClient], None]


@dataclass
class SubCommand:
    name: str
    fast: FastHandler
    slow: SlowHandler | None = None
    summary: str = ""


@dataclass
class AppContext:
    settings: Settings
    store: Store
    senders: Senders
    service: SendService
    notifier: Notifier
    client: WebClient
    subcommands: dict[str, SubCommand] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    _tz_cache: dict[str, tuple[float, str]] = field(default_factory=dict)
    _tz_lock: threading.Lock = field(default_factory=threading.Lock)

    def allowed(self, user_id: str | None, channel_id: str | None) -> str | None:
        """None when allowed; otherwise the refusal to show the person."""
        users = self.settings.allowed_users
        channels = self.settings.allowed_channels
        if users and user_id not in users:
            return ":no_entry: You are not allowed to send messages with smsbot. Ask an admin to add you to SMS_ALLOWED_USERS."
        if channels and channel_id and channel_id not in channels and not channel_id.startswith("D"):
            return (
                ":no_entry: smsbot can't send from this channel. "
                f"Allowed channels: {', '.join(f'<#{c}>' for c in channels)}."
            )
        return None

    def user_tz(self, user_id: str | None) -> str:
        """The person's Slack time zone (users.info), cached for an hour; UTC if unknown."""
        if not user_id:
            return "UTC"
        now = time.monotonic()
        with self._tz_lock:
            hit = self._tz_cache.get(user_id)
            if hit and now - hit[0] < 3600:
                return hit[1]
        tz = "UTC"
        try:
            resp = self.client.users_info(user=user_id)
            tz = (resp.get("user") or {}).get("tz") or "UTC"
        except Exception:
            pass
        with self._tz_lock:
            self._tz_cache[user_id] = (now, tz)
        return tz
