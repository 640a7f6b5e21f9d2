"""Scheduled sends from Slack: `/sms list`, `/sms cancel`, and the Edit / Cancel / Send now buttons.

Who may act on what: everyone allowed to use smsbot manages their own schedules. Listing
everyone's (`/sms list --all`) and canceling or editing someone else's is for the people in
SMS_BULK_USERS; when that list is empty (everyone may bulk send) it is everyone allowed to
send. The buttons on a channel's visible message are clickable by anyone in the channel,
so the same check runs on every click.

The rules (ownership, cancel, edit, send now) are bot/core/schedules.py; this module says
their results in Slack's words. Cancel and edit change nothing once a worker has claimed a
row, and the person is told it is already being sent.

Other features can follow changes: `ctx.schedule_changed` is a list of callables
called with (row, user_id) after a cancel, edit or "Send now" (the App Home refreshes itself).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.core.schedules import Change, EditForm, EditTarget, Outcome, ScheduleResult, ScheduleRules
from bot.slack.blocks.schedules import (
    BULK_CANCEL_ACTION,
    CANCEL_ACTION,
    DEFAULT_PAGE_SIZE,
    EDIT_ACTION,
    EDIT_MODAL,
    NAV_PREFIX,
    SEND_NOW_ACTION,
    EditMeta,
    ListPage,
    ScheduledBulk,
    edit_modal,
    list_fallback_text,
    local_input,
    notice_view,
    page_from_block_id,
    schedule_list_blocks,
)
from bot.slack.blocks.send import state_value
from bot.slack.context import AppContext, SubCommand
from bot.slack.schedule_announcer import SlackScheduleAnnouncer
from bot.slack.text import escape, fit
from storage.bulk import BulkStore
from storage.store import MessageRow

log = logging.getLogger("smsbot.listeners.schedules")

# Why a cancel or edit changed nothing, by the row's status.
ALREADY = {
    "claimed": "is already being sent",
    "sending": "is already being sent",
    "sent": "has already been sent",
    "failed": "was already tried (it failed)",
    "unknown": "was already sent (outcome unknown)",
    "canceled": "was already canceled",
    "missed": "was missed while smsbot was down: use *Send now* or *Cancel* in its thread",
    "pending": "is not waiting to be sent",
}


class ActionResult(BaseModel):
    ok: bool
    text: str
    row: MessageRow | None = None


class EditOutcome(BaseModel):
    ok: bool
    text: str = ""
    errors: dict[str, str] = {}
    row: MessageRow | None = None
    changes: list[str] = []


# -- the rules (bot/core/schedules.py), in Slack's words


def rules_of(ctx: AppContext) -> ScheduleRules:
    return ScheduleRules(ctx.store, ctx.settings, ctx.service, wake=partial(wake, ctx))


def wake(ctx: AppContext) -> None:
    if ctx.dispatcher is not None:
        ctx.dispatcher.wake()


def can_manage_all(ctx: AppContext, user_id: str | None) -> bool:
    """May this person see and change everyone's schedules? The one rule: bot/core/visibility.py."""
    return rules_of(ctx).may_manage_all(user_id)


def not_changed(message_id: int, status: str | None, verb: str) -> str:
    if status is None:
        return f":warning: There is no message #{message_id}."
    return f":warning: #{message_id} {ALREADY.get(status, f'is {status}')}; nothing was {verb}."


def not_yours(row: MessageRow, verb: str) -> str:
    who = f"<@{row.created_by}>" if row.created_by else escape(row.user_name or row.source)
    return f":no_entry: #{row.id} was scheduled by {who}; only they or people in SMS_BULK_USERS can {verb} it."


def refusal_text(res: ScheduleResult, verb: str, done: str) -> str:
    """Why `res` changed nothing; `done` is the past tense of `verb`."""
    if res.outcome == Outcome.NOT_YOURS and res.row is not None:
        return not_yours(res.row, verb)
    if res.outcome == Outcome.ALREADY_PENDING:
        return f":warning: #{res.message_id} is already waiting to be sent."
    return not_changed(res.message_id, res.status, done)


def cancel_schedule(ctx: AppContext, message_id: int, user_id: str | None, now: float | None = None) -> ActionResult:
    res = rules_of(ctx).cancel(message_id, user_id, now=now)
    if not res.ok:
        return ActionResult(ok=False, text=refusal_text(res, "cancel", "canceled"), row=res.row)
    return ActionResult(ok=True, text=f":no_entry_sign: Canceled #{message_id}; it will not be sent.", row=res.row)


def send_missed_now(ctx: AppContext, message_id: int, user_id: str | None, now: float | None = None) -> ActionResult:
    res = rules_of(ctx).send_now(message_id, user_id, now=now)
    if res.outcome == Outcome.TOO_LATE and res.status is not None:
        text = f":warning: #{message_id} {ALREADY.get(res.status, f'is {res.status}')}; nothing was done."
        return ActionResult(ok=False, text=text, row=res.row)
    if not res.ok:
        return ActionResult(ok=False, text=refusal_text(res, "send", "sent"), row=res.row)
    return ActionResult(ok=True, text=f":outbox_tray: Sending #{message_id} now, as <@{user_id}> asked.", row=res.row)


def change_words(change: Change) -> str:
    if change.field == "text":
        return f"text → “{escape(change.value)}”"
    if change.field == "name":
        return f"name → {escape(change.value)}"
    return f"{change.field} → {change.value}"


def apply_edit(ctx: AppContext, meta: EditMeta, form: EditForm, user_id: str | None,
               now: float | None = None) -> EditOutcome:
    """Validate an edit with the rules of a new send, then change the row if still pending."""
    target = EditTarget(message_id=meta.id, tz=meta.tz, when0=meta.when0)
    res = rules_of(ctx).edit(target, form, user_id, now=now)
    if res.outcome == Outcome.INVALID:
        return EditOutcome(ok=False, errors=res.errors, row=res.row)
    if res.outcome == Outcome.UNCHANGED:
        return EditOutcome(ok=True, text=f"Nothing changed in #{meta.id}.", row=res.row)
    if not res.ok:
        return EditOutcome(ok=False, text=refusal_text(res, "edit", "changed"), row=res.row)
    changes = [change_words(c) for c in res.changes]
    return EditOutcome(ok=True, text=f":pencil2: Edited #{meta.id}: {', '.join(changes)}.", row=res.row,
                       changes=changes)


def list_message(ctx: AppContext, user_id: str | None, where: ListPage, notice: str | None = None,
                 now: float | None = None, page_size: int = DEFAULT_PAGE_SIZE) -> dict[str, Any]:
    """The ephemeral `/sms list` message for one page."""
    now_ts = time.time() if now is None else now
    tz = ctx.user_tz(user_id)
    # Never an empty owner: store.pending(created_by="") would mean everyone's.
    owner = None if where.all else (user_id or "-")
    total = ctx.store.count_pending(created_by=owner)
    page = min(where.page, max(0, (total - 1) // page_size))
    rows = ctx.store.pending(created_by=owner, limit=page_size, offset=page * page_size)
    jobs, bulk_total = BulkStore(ctx.store).scheduled_jobs(created_by=owner, now=now_ts)
    bulk = [ScheduledBulk(id=j.id, due_at=j.due_at or now_ts, sender=j.sender, total=j.total, text=j.text or "",
                          created_by=j.created_by) for j in jobs]
    blocks = schedule_list_blocks(rows, tz, now_ts, page, page_size, where.all, total=total,
                                  label_for=ctx.senders.label, notice=notice, bulk_jobs=bulk, bulk_total=bulk_total)
    text = list_fallback_text(total, where.all)
    if bulk_total:
        text += f" {bulk_total} scheduled bulk send{'' if bulk_total == 1 else 's'}."
    return {"response_type": "ephemeral", "text": text, "blocks": blocks}


def cancel_bulk_job(ctx: AppContext, job_id: int, user_id: str | None) -> ActionResult:
    """Cancel a scheduled bulk job from `/sms list`: its owner, or the people who manage all."""
    engine = ctx.bulk
    job = engine.jobs.get(job_id) if engine is not None else None
    if engine is None or job is None:
        return ActionResult(ok=False, text=f":warning: There is no bulk send #{job_id}.")
    if not (job.created_by == user_id or can_manage_all(ctx, user_id)):
        return ActionResult(ok=False, text=f":no_entry: Bulk #{job_id} was scheduled by <@{job.created_by}>; only "
                                           "they or people in SMS_BULK_USERS can cancel it.")
    text = engine.cancel(job_id)
    fresh = engine.jobs.get(job_id)
    ok = fresh is not None and fresh.status in ("canceling", "finishing", "done") and job.status != fresh.status
    return ActionResult(ok=ok, text=(":no_entry_sign: " if ok else ":warning: ") + text)


# -- telling Slack


def respond_to(url: str | None, payload: dict[str, Any]) -> bool:
    if not url:
        return False
    try:
        resp = WebhookClient(url, timeout=5).send_dict(fit(payload))
        return resp.status_code == 200
    except Exception as exc:
        log.warning("response_url post failed: %s", type(exc).__name__)
        return False


def after_change(ctx: AppContext, row: MessageRow | None, note: str, user_id: str | None = None) -> None:
    """Redraw the visible message (no buttons once canceled) and say what happened in its thread."""
    if row is None:
        return
    fresh = ctx.store.get(row.id) or row
    SlackScheduleAnnouncer(ctx.notifier).schedule_changed(fresh, note)
    tell_followers(ctx, fresh, user_id)


def tell_followers(ctx: AppContext, row: MessageRow | None, user_id: str | None) -> None:
    """The features following schedule changes (ctx.schedule_changed), each on its own."""
    if row is None:
        return
    for callback in ctx.schedule_changed:
        try:
            callback(row, user_id)
        except Exception:
            log.exception("schedule_changed callback failed")


class Bounded(OrderedDict[str, Any]):
    """What a fast part hands its slow part (same process), forgetting the oldest entries."""

    def __init__(self, size: int = 500) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def put(self, key: str, value: Any) -> None:
        with self.lock:
            self[key] = value
            while len(self) > self.size:
                self.popitem(last=False)

    def take(self, key: str) -> Any:
        with self.lock:
            return self.pop(key, None)


def parse_ids(args: str) -> list[int]:
    ids = [int(x) for x in re.findall(r"#?(\d+)", args or "")]
    leftover = re.sub(r"[#\d,\s]+", "", args or "")
    if leftover or not ids:
        raise ValueError(args)
    return ids


def key_of(body: dict[str, Any]) -> str:
    return f"{body.get('trigger_id') or ''}:{body.get('response_url') or ''}"


def user_of(body: dict[str, Any]) -> str | None:
    return (body.get("user") or {}).get("id")


# -- /sms list, /sms cancel (fast parts get the context from the command router)


def fast_list(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    tokens = args.lower().split()
    unknown = [t for t in tokens if t not in ("--all", "all", "-a", "--mine", "mine")]
    if unknown:
        return f":warning: `/sms list` takes `--all` or nothing, not `{escape(unknown[0][:30])}`."
    want_all = any(t in ("--all", "all", "-a") for t in tokens)
    user_id = body.get("user_id")
    if want_all and not can_manage_all(ctx, user_id):
        return ":no_entry: Only people in SMS_BULK_USERS can list everyone's scheduled messages. Try `/sms list`."
    return list_message(ctx, user_id, ListPage(page=0, all=want_all))


def fast_cancel(handoff: Bounded, ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    try:
        ids = parse_ids(args)
    except ValueError:
        return ":warning: Which message? Give its number, e.g. `/sms cancel 42` (see `/sms list`)."
    user_id = body.get("user_id")
    lines, done = [], []
    for mid in ids[:20]:
        res = cancel_schedule(ctx, mid, user_id)
        lines.append(res.text)
        if res.ok:
            done.append(res.row)
    if done:
        handoff.put(key_of(body), (user_id, done))
    return "\n".join(lines)


def slow_cancel(handoff: Bounded, ctx: AppContext, body: dict[str, Any], args: str, client: WebClient) -> None:
    taken = handoff.take(key_of(body))
    if taken:
        user_id, rows = taken
        for row in rows:
            after_change(ctx, row, f":no_entry_sign: Canceled by <@{user_id}>; it will not be sent.", user_id)


# -- telling the person who clicked


def ack_only(ack: Ack) -> None:
    ack()


def clicked(body: dict[str, Any]) -> tuple[str | None, int | None]:
    value = ((body.get("actions") or [{}])[0]).get("value") or ""
    return user_of(body), int(value) if value.isdigit() else None


def from_list(body: dict[str, Any]) -> ListPage | None:
    """The ephemeral list a click came from (so we redraw it), else None."""
    container = body.get("container") or {}
    if container.get("type") != "message" or not container.get("is_ephemeral"):
        return None
    block_id = ((body.get("actions") or [{}])[0]).get("block_id")
    return page_from_block_id(block_id) or ListPage()


def answer(ctx: AppContext, body: dict[str, Any], text: str) -> None:
    """Tell the person who clicked: redraw the list they clicked in, or an ephemeral note."""
    user_id = user_of(body)
    where = from_list(body)
    if where is not None:
        payload = list_message(ctx, user_id, where, notice=text)
        if respond_to(body.get("response_url"), {**payload, "replace_original": True}):
            return
    container = body.get("container") or {}
    if container.get("type") == "message" and respond_to(
        body.get("response_url"), {"response_type": "ephemeral", "replace_original": False, "text": text}
    ):
        return
    if user_id:
        ctx.notifier.ephemeral_or_dm(None, user_id, text)


def settle_prompt(ctx: AppContext, body: dict[str, Any], row: MessageRow | None, text: str) -> None:
    """A click on a thread prompt (the missed one): replace its buttons by what happened."""
    container = body.get("container") or {}
    channel, ts = container.get("channel_id"), container.get("message_ts")
    if container.get("type") != "message" or container.get("is_ephemeral") or not (channel and ts):
        return
    if row is not None and ts == row.thread_ts:
        return  # the visible message: after_change redraws it
    ctx.notifier.update(channel, ts, text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def refused_to(ctx: AppContext, body: dict[str, Any]) -> bool:
    refusal = ctx.allowed(user_of(body), None)
    if refusal:
        answer(ctx, body, refusal)
    return bool(refusal)


# -- the buttons (after the ack)


def clicked_change(
    ctx: AppContext, body: dict[str, Any], change: Callable[[AppContext, int, str | None], ActionResult]
) -> tuple[str | None, int, ActionResult] | None:
    """Apply `change` to the clicked id; refusals and failures are answered here, success returned."""
    user_id, target = clicked(body)
    if target is None or refused_to(ctx, body):
        return None
    res = change(ctx, target, user_id)
    if not res.ok:
        answer(ctx, body, res.text)
        return None
    return user_id, target, res


def on_cancel(ctx: AppContext, body: dict[str, Any]) -> None:
    done = clicked_change(ctx, body, cancel_schedule)
    if done is None:
        return
    user_id, mid, res = done
    after_change(ctx, res.row, f":no_entry_sign: Canceled by <@{user_id}>; it will not be sent.", user_id)
    settle_prompt(ctx, body, res.row, f":no_entry_sign: #{mid} canceled by <@{user_id}>.")
    if from_list(body) is not None:
        answer(ctx, body, res.text)


def on_send_now(ctx: AppContext, body: dict[str, Any]) -> None:
    done = clicked_change(ctx, body, send_missed_now)
    if done is not None:
        user_id, _mid, res = done
        settle_prompt(ctx, body, res.row, res.text)
        tell_followers(ctx, res.row, user_id)


def on_bulk_cancel(ctx: AppContext, body: dict[str, Any]) -> None:
    done = clicked_change(ctx, body, cancel_bulk_job)
    if done is None:
        return
    user_id, job_id, res = done
    answer(ctx, body, res.text)
    engine = ctx.bulk
    job = engine.jobs.get(job_id) if engine is not None else None
    if engine is not None and job is not None:
        engine.redraw(job)
        if job.thread_channel and job.thread_ts:
            ctx.notifier.post(job.thread_channel, f"<@{user_id}>: {res.text}", thread_ts=job.thread_ts)


def on_edit_click(ctx: AppContext, body: dict[str, Any], client: WebClient) -> None:
    user_id, mid = clicked(body)
    if mid is None or refused_to(ctx, body):
        return
    row = ctx.store.get(mid)
    if row is None:
        answer(ctx, body, not_changed(mid, None, "changed"))
        return
    refusal = None if rules_of(ctx).may_change(row, user_id) else not_yours(row, "edit")
    if refusal or row.status != "pending":
        answer(ctx, body, refusal or not_changed(mid, row.status, "changed"))
        return
    tz = ctx.user_tz(user_id)
    where = from_list(body)
    meta = EditMeta(id=mid, tz=tz, when0=local_input(row.due_at, tz),
                    response_url=body.get("response_url") if where is not None else None, list_page=where)
    try:
        client.views_open(trigger_id=body["trigger_id"], view=fit(edit_modal(row, meta, time.time(), ctx.senders.label)))
    except Exception as exc:
        log.warning("views.open failed: %s", type(exc).__name__)


def on_page(ctx: AppContext, body: dict[str, Any]) -> None:
    user_id = user_of(body)
    where = ListPage.load(((body.get("actions") or [{}])[0]).get("value"))
    if refused_to(ctx, body):
        return
    if where.all and not can_manage_all(ctx, user_id):
        where = ListPage(page=where.page)
    respond_to(body.get("response_url"), {**list_message(ctx, user_id, where), "replace_original": True})


# -- the edit modal


def on_edit_submit(ctx: AppContext, handoff: Bounded, ack: Ack, body: dict[str, Any]) -> None:
    view = body.get("view") or {}
    values = (view.get("state") or {}).get("values") or {}
    user_id = user_of(body)
    try:
        meta = EditMeta.model_validate_json(view.get("private_metadata") or "{}")
    except ValidationError:
        ack(response_action="update", view=fit(notice_view("Not changed", ":warning: This form is out of date.")))
        return
    refusal = ctx.allowed(user_id, None)
    if refusal:
        ack(response_action="errors", errors={"when": refusal[:150]})
        return
    form = EditForm(when=state_value(values, "when") or "", to=state_value(values, "to") or "",
                    name=state_value(values, "name"), text=state_value(values, "text"))
    out = apply_edit(ctx, meta, form, user_id)
    if out.errors:
        ack(response_action="errors", errors=out.errors)
        return
    if not out.ok:
        ack(response_action="update", view=fit(notice_view("Not changed", out.text)))
        return
    ack()
    handoff.put(f"view:{view.get('id')}", (user_id, meta, out))


def after_edit(ctx: AppContext, handoff: Bounded, body: dict[str, Any]) -> None:
    taken = handoff.take(f"view:{(body.get('view') or {}).get('id')}")
    if not taken:
        return
    user_id, meta, out = taken
    if out.changes:
        after_change(ctx, out.row, f":pencil2: Edited by <@{user_id}>: {', '.join(out.changes)}.", user_id)
    if meta.response_url:
        payload = list_message(ctx, user_id, meta.list_page or ListPage(), notice=out.text)
        respond_to(meta.response_url, {**payload, "replace_original": True})


def bound(fn: Callable[..., Any], *first: Any) -> Callable[..., Any]:
    """`fn` with its leading arguments given; Bolt still sees (and injects) the rest by name."""
    handler = partial(fn, *first)
    handler.__name__ = fn.__name__  # type: ignore[attr-defined]  # Bolt names lazy listeners by it
    return handler


def register(app: App, ctx: AppContext) -> None:
    handoff = Bounded()  # what a fast part hands its slow part
    ctx.subcommands["list"] = SubCommand("list", fast_list, summary="Your pending scheduled messages")
    ctx.subcommands["cancel"] = SubCommand("cancel", bound(fast_cancel, handoff), bound(slow_cancel, handoff),
                                           summary="Cancel a scheduled message")
    app.action(CANCEL_ACTION)(ack=ack_only, lazy=[bound(on_cancel, ctx)])
    app.action(SEND_NOW_ACTION)(ack=ack_only, lazy=[bound(on_send_now, ctx)])
    app.action(BULK_CANCEL_ACTION)(ack=ack_only, lazy=[bound(on_bulk_cancel, ctx)])
    app.action(EDIT_ACTION)(ack=ack_only, lazy=[bound(on_edit_click, ctx)])
    app.action(re.compile(rf"^{NAV_PREFIX}_(prev|next)$"))(ack=ack_only, lazy=[bound(on_page, ctx)])
    app.view(EDIT_MODAL)(ack=bound(on_edit_submit, ctx, handoff), lazy=[bound(after_edit, ctx, handoff)])
