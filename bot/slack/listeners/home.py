"""The App Home tab: today's figures per sender, the latest failures, your upcoming schedules."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.visibility import viewer_for
from bot.slack.blocks.history import figures_by_sender, home_view
from bot.slack.blocks.inbox import INBOX_SHOWN, inbox_blocks
from bot.slack.blocks.schedules import schedule_list_blocks
from bot.slack.context import AppContext
from bot.slack.listeners._bind import bind
from bot.slack.text import fit
from storage.conversations import ConversationQueries
from storage.delivery import DeliveryQueries

log = logging.getLogger("smsbot.listeners.home")

SCHEDULES_SHOWN = 20
FAILURES_SHOWN = 5
HOME_NAV = "home_schedule_page"


def start_of_day(now: float, tz: str) -> float:
    try:
        zone = ZoneInfo(tz)
    except Exception:
        zone = ZoneInfo("UTC")
    local = datetime.fromtimestamp(now, zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def schedule_blocks(ctx: AppContext, user_id: str, tz: str, now: float) -> list[dict[str, Any]]:
    rows = ctx.store.pending(created_by=user_id, limit=SCHEDULES_SHOWN)
    if not rows:
        return []
    total = ctx.store.count_pending(created_by=user_id)
    blocks = schedule_list_blocks(rows, tz, now, 0, SCHEDULES_SHOWN, False, total=total,
                                  label_for=ctx.senders.label, nav_prefix=HOME_NAV)
    # Paging buttons answer in an ephemeral message only; in the Home tab, point to /sms list.
    kept = [b for b in blocks if not any(str(e.get("action_id", "")).startswith(HOME_NAV)
                                         for e in b.get("elements", []) if isinstance(e, dict))]
    if len(kept) < len(blocks) or total > len(rows):
        kept.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                     f"{total - len(rows)} more: see `/sms list`."}]})
    return kept


def not_allowed_home(refusal: str) -> dict[str, Any]:
    """The Home tab for someone who may not send: no figures, no failures (numbers), no schedules."""
    return {"type": "home", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "smsbot"}},
        {"type": "section", "text": {"type": "mrkdwn", "text":
            f"{refusal}\nThis tab shows today's sends and failures to the people who can send."}},
    ]}


def build_home(ctx: AppContext, user_id: str, now: float | None = None) -> dict[str, Any]:
    refusal = ctx.allowed(user_id, None)
    if refusal is not None:
        return not_allowed_home(refusal)
    now = time.time() if now is None else now
    tz = ctx.user_tz(user_id)
    delivery = ctx.delivery
    reports_on = delivery.reports_on if delivery is not None else (lambda sender: sender == "sandbox")
    viewer = viewer_for(ctx.settings, user_id)
    today = list(ctx.store.since(start_of_day(now, tz), viewer))
    figures = figures_by_sender(today, ctx.senders.label, reports_on)
    failures = DeliveryQueries(ctx.store).latest_failures(viewer, FAILURES_SHOWN)
    waiting = ConversationQueries(ctx.store).waiting(viewer, INBOX_SHOWN)
    return home_view(figures, failures, schedule_blocks(ctx, user_id, tz, now), tz, now, ctx.senders.label,
                     inbox=inbox_blocks(waiting, ctx.senders.label, now) if waiting else ())


def publish_home(ctx: AppContext, client: WebClient, user_id: str) -> None:
    try:
        client.views_publish(user_id=user_id, view=fit(build_home(ctx, user_id)))
    except Exception as exc:
        log.warning("views.publish failed: %s", type(exc).__name__)


def ack_event(ack: Ack) -> None:
    ack()


def on_home_opened(ctx: AppContext, event: dict[str, Any], client: WebClient) -> None:
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    publish_home(ctx, client, str(event["user"]))


def refresh_after_schedule_change(ctx: AppContext, row: Any, user_id: str | None) -> None:
    # A schedule canceled or edited anywhere must not linger on the Home tab; off the
    # request path, since views.publish is a Slack call.
    people = {p for p in (user_id, getattr(row, "created_by", None)) if p}
    for person in people:
        threading.Thread(target=publish_home, args=(ctx, ctx.client, person), daemon=True).start()


def register(app: App, ctx: AppContext) -> None:
    # Lazy: the event is acknowledged at once; the figures and views.publish come after.
    app.event("app_home_opened")(ack=ack_event, lazy=[bind(on_home_opened, ctx)])
    ctx.schedule_changed.append(bind(refresh_after_schedule_change, ctx))
