"""Scheduled sends from Slack: `/sms list`, `/sms cancel`, and the Edit / Cancel / Send now buttons.

Who may act on what: everyone allowed to use smsbot manages their own schedules. Listing
everyone's (`/sms list --all`) and canceling or editing someone else's is for the people in
SMS_BULK_USERS; when that list is empty (everyone may bulk send) it is everyone allowed to
send. The buttons on a channel's visible message are clickable by anyone in the channel,
so the same check runs on every click.

Cancel and edit are `UPDATE ... WHERE status = 'pending'` in the store: once a worker has
claimed a row they change nothing and the person is told it is already being sent.

Other features can follow changes: `ctx.extras["schedule_changed"]` is a list of callables
called with (row, user_id) after a cancel, edit or "Send now" (the App Home refreshes itself).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot.core.input.phone import display
from bot.core.input.timeparse import WhenError, parse_when
from bot.core.sending import SendRequest, UserError
from bot.core.visibility import is_manager
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
    first_words,
    list_fallback_text,
    local_input,
    notice_view,
    page_from_block_id,
    schedule_list_blocks,
    when_label,
)
from bot.slack.blocks.send import state_value
from bot.slack.context import AppContext, SubCommand
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
FIELD_BLOCKS = {"to": "to", "when": "when", "when_date": "when", "text": "text", "sender": "when", "name": "name"}


class ActionResult(BaseModel):
    ok: bool
    text: str
    row: MessageRow | None = None


class EditForm(BaseModel):
    """What the edit modal submitted."""

    when: str = ""
    to: str = ""
    name: str | None = None
    text: str | None = None


class EditOutcome(BaseModel):
    ok: bool
    text: str = ""
    errors: dict[str, str] = {}
    row: MessageRow | None = None
    changes: list[str] = []


# -- rules (no Slack)


def can_manage_all(ctx: AppContext, user_id: str | None) -> bool:
    """May this person see and change everyone's schedules? The one rule: bot/visibility.py."""
    return is_manager(ctx.settings, user_id)


def not_changed(message_id: int, status: str | None, verb: str) -> str:
    if status is None:
        return f":warning: There is no message #{message_id}."
    return f":warning: #{message_id} {ALREADY.get(status, f'is {status}')}; nothing was {verb}."


def ownership_refusal(ctx: AppContext, row: MessageRow, user_id: str | None, verb: str) -> str | None:
    if row.created_by and row.created_by == user_id:
        return None
    if can_manage_all(ctx, user_id):
        return None
    who = f"<@{row.created_by}>" if row.created_by else escape(row.user_name or row.source)
    return f":no_entry: #{row.id} was scheduled by {who}; only they or people in SMS_BULK_USERS can {verb} it."


def cancel_schedule(ctx: AppContext, message_id: int, user_id: str | None, now: float | None = None) -> ActionResult:
    row = ctx.store.get(message_id)
    if row is None:
        return ActionResult(ok=False, text=not_changed(message_id, None, "canceled"))
    refusal = ownership_refusal(ctx, row, user_id, "cancel")
    if refusal:
        return ActionResult(ok=False, text=refusal, row=row)
    tr = ctx.store.cancel(message_id, now=now)
    if not tr.ok:
        return ActionResult(ok=False, text=not_changed(message_id, tr.status, "canceled"), row=tr.row)
    return ActionResult(ok=True, text=f":no_entry_sign: Canceled #{message_id}; it will not be sent.", row=tr.row)


def send_missed_now(ctx: AppContext, message_id: int, user_id: str | None, now: float | None = None) -> ActionResult:
    row = ctx.store.get(message_id)
    if row is None:
        return ActionResult(ok=False, text=not_changed(message_id, None, "sent"))
    refusal = ownership_refusal(ctx, row, user_id, "send")
    if refusal:
        return ActionResult(ok=False, text=refusal, row=row)
    tr = ctx.store.send_missed_now(message_id, now=now)
    if not tr.ok:
        if tr.status is None:
            text = not_changed(message_id, None, "sent")
        elif tr.status == "pending":
            text = f":warning: #{message_id} is already waiting to be sent."
        else:
            text = f":warning: #{message_id} {ALREADY.get(tr.status, f'is {tr.status}')}; nothing was done."
        return ActionResult(ok=False, text=text, row=tr.row)
    wake(ctx)
    return ActionResult(ok=True, text=f":outbox_tray: Sending #{message_id} now, as <@{user_id}> asked.", row=tr.row)


def wake(ctx: AppContext) -> None:
    dispatcher = ctx.extras.get("dispatcher")
    if dispatcher is not None:
        dispatcher.wake()


def apply_edit(ctx: AppContext, meta: EditMeta, form: EditForm, user_id: str | None,
               now: float | None = None) -> EditOutcome:
    """Validate an edit with the rules of a new send, then change the row if still pending."""
    now_ts = time.time() if now is None else now
    row = ctx.store.get(meta.id)
    if row is None:
        return EditOutcome(ok=False, text=not_changed(meta.id, None, "changed"))
    refusal = ownership_refusal(ctx, row, user_id, "edit")
    if refusal:
        return EditOutcome(ok=False, text=refusal, row=row)
    if row.status != "pending":
        return EditOutcome(ok=False, text=not_changed(meta.id, row.status, "changed"), row=row)
    errors: dict[str, str] = {}
    typed = " ".join(form.when.split())
    due: float | None = row.due_at
    if typed != " ".join(meta.when0.split()):
        # Changed text: read it like `--at`, in the editor's zone, with the same limits.
        try:
            due = parse_when(typed, meta.tz, datetime.fromtimestamp(now_ts, UTC), ctx.service.max_days).timestamp()
        except WhenError as exc:
            errors["when"] = str(exc)
            due = None
    payload = row.payload if isinstance(row.payload, dict) else {}
    is_template = bool(payload.get("template"))
    try:
        req = SendRequest(
            sender=row.sender, to=form.to, name=form.name,
            text=payload.get("text") if is_template else form.text,
            image_urls=payload.get("image_urls") or [], video_url=payload.get("video_url"),
            file_url=payload.get("file_url"), file_content_type=payload.get("file_content_type"),
            subject=payload.get("subject"), template=payload.get("template"), channel=payload.get("channel"),
            contact_saving=payload.get("contact_saving"),
            when=datetime.fromtimestamp(due if due is not None else now_ts + 60, UTC),
            idem_key=row.idem_key, user_id=row.created_by,
        )
        prepared = ctx.service.prepare(req, now=now_ts)
    except UserError as exc:
        errors.setdefault(FIELD_BLOCKS.get(exc.field or "text", "text"), exc.message[:2000])
        prepared = None
    except ValidationError:
        errors.setdefault("text", "This message can't be edited here; cancel it and send it again.")
        prepared = None
    if errors or prepared is None:
        return EditOutcome(ok=False, errors=errors, row=row)
    new = prepared.new
    summary = row.summary if is_template else new.summary
    changes: list[str] = []
    if abs(new.due_at - row.due_at) >= 0.5:
        changes.append(f"time → {when_label(new.due_at, meta.tz, now_ts)}")
    if new.to_number != row.to_number:
        changes.append(f"to → {display(new.to_number)}")
    if (new.name or None) != (row.name or None):
        changes.append(f"name → {escape(new.name or '(none)')}")
    if summary != row.summary:
        changes.append(f"text → “{escape(first_words(summary))}”")
    if not changes:
        return EditOutcome(ok=True, text=f"Nothing changed in #{row.id}.", row=row)
    tr = ctx.store.edit(row.id, due_at=new.due_at, to_number=new.to_number, payload=new.payload,
                        summary=summary, name=new.name, now=now_ts)
    if not tr.ok:
        # The worker claimed it between our read and the update.
        return EditOutcome(ok=False, text=not_changed(row.id, tr.status, "changed"), row=tr.row)
    wake(ctx)
    return EditOutcome(ok=True, text=f":pencil2: Edited #{row.id}: {', '.join(changes)}.", row=tr.row, changes=changes)


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
    engine = ctx.extras.get("bulk")
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
    if fresh.thread_channel and fresh.thread_ts:
        text, blocks = ctx.notifier.announce_blocks(fresh)
        ctx.notifier.update(fresh.thread_channel, fresh.thread_ts, text, blocks)
        ctx.notifier.thread_reply(fresh, note)
    for callback in ctx.extras.get("schedule_changed", []):
        try:
            callback(fresh, user_id)
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


def register(app: App, ctx: AppContext) -> None:
    handoff = Bounded()
    ctx.extras.setdefault("schedule_changed", [])

    def key_of(body: dict[str, Any]) -> str:
        return f"{body.get('trigger_id') or ''}:{body.get('response_url') or ''}"

    # -- /sms list, /sms cancel

    def fast_list(ctx_: AppContext, body: dict[str, Any], args: str) -> Any:
        tokens = args.lower().split()
        unknown = [t for t in tokens if t not in ("--all", "all", "-a", "--mine", "mine")]
        if unknown:
            return f":warning: `/sms list` takes `--all` or nothing, not `{escape(unknown[0][:30])}`."
        want_all = any(t in ("--all", "all", "-a") for t in tokens)
        user_id = body.get("user_id")
        if want_all and not can_manage_all(ctx, user_id):
            return ":no_entry: Only people in SMS_BULK_USERS can list everyone's scheduled messages. Try `/sms list`."
        return list_message(ctx, user_id, ListPage(page=0, all=want_all))

    def fast_cancel(ctx_: AppContext, body: dict[str, Any], args: str) -> Any:
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

    def slow_cancel(ctx_: AppContext, body: dict[str, Any], args: str, client: WebClient) -> None:
        taken = handoff.take(key_of(body))
        if taken:
            user_id, rows = taken
            for row in rows:
                after_change(ctx, row, f":no_entry_sign: Canceled by <@{user_id}>; it will not be sent.", user_id)

    ctx.subcommands["list"] = SubCommand("list", fast_list, summary="Your pending scheduled messages")
    ctx.subcommands["cancel"] = SubCommand("cancel", fast_cancel, slow_cancel, summary="Cancel a scheduled message")

    # -- buttons

    def ack_only(ack: Ack) -> None:
        ack()

    def clicked(body: dict[str, Any]) -> tuple[str | None, int | None]:
        user_id = (body.get("user") or {}).get("id")
        value = ((body.get("actions") or [{}])[0]).get("value") or ""
        return user_id, int(value) if value.isdigit() else None

    def from_list(body: dict[str, Any]) -> ListPage | None:
        """The ephemeral list a click came from (so we redraw it), else None."""
        container = body.get("container") or {}
        if container.get("type") != "message" or not container.get("is_ephemeral"):
            return None
        block_id = ((body.get("actions") or [{}])[0]).get("block_id")
        return page_from_block_id(block_id) or ListPage()

    def answer(body: dict[str, Any], text: str) -> None:
        """Tell the person who clicked: redraw the list they clicked in, or an ephemeral note."""
        user_id = (body.get("user") or {}).get("id")
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

    def settle_prompt(body: dict[str, Any], row: MessageRow | None, text: str) -> None:
        """A click on a thread prompt (the missed one): replace its buttons by what happened."""
        container = body.get("container") or {}
        channel, ts = container.get("channel_id"), container.get("message_ts")
        if container.get("type") != "message" or container.get("is_ephemeral") or not (channel and ts):
            return
        if row is not None and ts == row.thread_ts:
            return  # the visible message: after_change redraws it
        ctx.notifier.update(channel, ts, text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])

    def refused_to(body: dict[str, Any]) -> bool:
        user_id = (body.get("user") or {}).get("id")
        refusal = ctx.allowed(user_id, None)
        if refusal:
            answer(body, refusal)
        return bool(refusal)

    def on_cancel(body: dict[str, Any]) -> None:
        user_id, mid = clicked(body)
        if mid is None or refused_to(body):
            return
        res = cancel_schedule(ctx, mid, user_id)
        if res.ok:
            after_change(ctx, res.row, f":no_entry_sign: Canceled by <@{user_id}>; it will not be sent.", user_id)
            settle_prompt(body, res.row, f":no_entry_sign: #{mid} canceled by <@{user_id}>.")
            if from_list(body) is not None:
                answer(body, res.text)
        else:
            answer(body, res.text)

    def on_send_now(body: dict[str, Any]) -> None:
        user_id, mid = clicked(body)
        if mid is None or refused_to(body):
            return
        res = send_missed_now(ctx, mid, user_id)
        if res.ok:
            settle_prompt(body, res.row, res.text)
            for callback in ctx.extras.get("schedule_changed", []):
                try:
                    callback(res.row, user_id)
                except Exception:
                    log.exception("schedule_changed callback failed")
        else:
            answer(body, res.text)

    def on_bulk_cancel(body: dict[str, Any]) -> None:
        user_id, job_id = clicked(body)
        if job_id is None or refused_to(body):
            return
        res = cancel_bulk_job(ctx, job_id, user_id)
        answer(body, res.text)
        engine = ctx.extras.get("bulk")
        job = engine.jobs.get(job_id) if res.ok and engine is not None else None
        if engine is not None and job is not None:
            engine.redraw(job)
            if job.thread_channel and job.thread_ts:
                ctx.notifier.post(job.thread_channel, f"<@{user_id}>: {res.text}", thread_ts=job.thread_ts)

    def on_edit_click(body: dict[str, Any], client: WebClient) -> None:
        user_id, mid = clicked(body)
        if mid is None or refused_to(body):
            return
        row = ctx.store.get(mid)
        if row is None:
            answer(body, not_changed(mid, None, "changed"))
            return
        refusal = ownership_refusal(ctx, row, user_id, "edit")
        if refusal or row.status != "pending":
            answer(body, refusal or not_changed(mid, row.status, "changed"))
            return
        tz = ctx.user_tz(user_id)
        where = from_list(body)
        meta = EditMeta(id=mid, tz=tz, when0=local_input(row.due_at, tz),
                        response_url=body.get("response_url") if where is not None else None, list_page=where)
        try:
            client.views_open(trigger_id=body["trigger_id"], view=fit(edit_modal(row, meta, time.time(), ctx.senders.label)))
        except Exception as exc:
            log.warning("views.open failed: %s", type(exc).__name__)

    def on_page(body: dict[str, Any]) -> None:
        user_id = (body.get("user") or {}).get("id")
        where = ListPage.load(((body.get("actions") or [{}])[0]).get("value"))
        if refused_to(body):
            return
        if where.all and not can_manage_all(ctx, user_id):
            where = ListPage(page=where.page)
        respond_to(body.get("response_url"), {**list_message(ctx, user_id, where), "replace_original": True})

    app.action(CANCEL_ACTION)(ack=ack_only, lazy=[on_cancel])
    app.action(SEND_NOW_ACTION)(ack=ack_only, lazy=[on_send_now])
    app.action(BULK_CANCEL_ACTION)(ack=ack_only, lazy=[on_bulk_cancel])
    app.action(EDIT_ACTION)(ack=ack_only, lazy=[on_edit_click])
    app.action(re.compile(rf"^{NAV_PREFIX}_(prev|next)$"))(ack=ack_only, lazy=[on_page])

    # -- the edit modal

    def on_edit_submit(ack: Ack, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        user_id = (body.get("user") or {}).get("id")
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

    def after_edit(body: dict[str, Any]) -> None:
        taken = handoff.take(f"view:{(body.get('view') or {}).get('id')}")
        if not taken:
            return
        user_id, meta, out = taken
        if out.changes:
            after_change(ctx, out.row, f":pencil2: Edited by <@{user_id}>: {', '.join(out.changes)}.", user_id)
        if meta.response_url:
            payload = list_message(ctx, user_id, meta.list_page or ListPage(), notice=out.text)
            respond_to(meta.response_url, {**payload, "replace_original": True})

    app.view(EDIT_MODAL)(ack=on_edit_submit, lazy=[after_edit])


# For type checkers: the shape of schedule_changed callbacks.
ScheduleChanged = Callable[[MessageRow, str | None], None]
