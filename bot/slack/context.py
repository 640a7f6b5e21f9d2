"""What every listener needs, built once at start-up (see bot/app/runtime.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient

from bot.core.config import Settings
from bot.core.senders import Senders
from bot.core.sending import SendService
from bot.slack.announcer import Notifier
from storage.store import MessageRow, Store

if TYPE_CHECKING:
    from bot.core.bulk.engine import BulkEngine
    from bot.core.conversations.engine import ConversationEngine
    from bot.core.delivery.engine import DeliveryEngine
    from bot.core.dispatch import Dispatcher
    from bot.core.templates import Catalog
    from bot.slack.app import LazyExecutor
    from bot.slack.commands import SendCommand
    from providers.base import TemplateSend

# A fast part answers inside Slack's 3 seconds (its return value is the ack); the slow
# part, if any, runs after the ack in a lazy listener thread.
FastHandler = Callable[["AppContext", dict[str, Any], str], Any]
SlowHandler = Callable[["AppContext", dict[str, Any], str, WebClient], None]
# Called with (row, user_id) after a schedule was canceled, edited or sent now.
ScheduleChanged = Callable[[MessageRow, str | None], None]


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
    # The engines the runtime built for this process (None when the process has none).
    dispatcher: Dispatcher | None = None
    bulk: BulkEngine | None = None
    delivery: DeliveryEngine | None = None
    conversations: ConversationEngine | None = None
    lazy: LazyExecutor | None = None
    template_catalog: Catalog | None = None
    template_command: Callable[[SendCommand], tuple[TemplateSend, Any]] | None = None
    #: who hears about schedule changes (the App Home refreshes itself)
    schedule_changed: list[ScheduleChanged] = field(default_factory=list)
    #: feature threads to stop, in order, after the dispatcher (each flushes what it has)
    on_stop: list[Callable[[], None]] = field(default_factory=list)
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
