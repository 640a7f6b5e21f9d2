"""`/sms bulk`: the bulk form, its confirmation, and the Pause / Resume / Cancel buttons.

Slack gives a view_submission 3 seconds. Pasted lists (at most 3,000 characters) and small
files are parsed inside the request and answered with the confirmation (or field errors).
A big file gets its first 64 KB checked inside the request (not CSV, no `to` column,
unknown placeholders are field errors), then a "Preparing…" view, and the full parse and
the draft happen in a thread that swaps in the confirmation with views.update.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime
from typing import Any

import httpx
from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.bulk.engine import BulkEngine, may_send_bulk
from bot.core.input.recipients import (
    CsvError,
    PlaceholderError,
    RecipientList,
    RecipientStream,
    check_placeholders,
    iter_csv,
    parse_pasted,
)
from bot.core.sending import UserError
from bot.slack.blocks.bulk import (
    B_CSV,
    B_OPTIONS,
    B_PASTE,
    B_SENDER,
    B_TEXT,
    BULK_CONFIRM,
    BULK_MODAL,
    CANCEL_ACTION,
    MISSED_CANCEL_ACTION,
    MISSED_SEND_NOW_ACTION,
    PAUSE_ACTION,
    RESUME_ACTION,
    BulkPlan,
    bulk_modal,
    confirmation_view,
    message_view,
    preparing_view,
)
from bot.slack.blocks.send import picked, state_value, when_from_state
from bot.slack.bulk_view import SlackBulkView
from bot.slack.context import AppContext, SubCommand
from bot.slack.text import escape, fit

log = logging.getLogger("smsbot.listeners.bulk")

SYNC_BYTES = 256 * 1024  # parsed inside the request; bigger files go to a thread
HEAD_BYTES = 64 * 1024
MAX_FILE_BYTES = 30 * 1024 * 1024
CSV_TYPES = {"csv", "text", "txt", "tsv", "plain"}

FIELD_BLOCKS = {"sender": B_SENDER, "text": B_TEXT, "recipients": B_PASTE, "csv": B_CSV, "when": "when_dt",
                "when_date": "when_date"}


# A confirm that finds its job in one of these was a repeat of one that started it.
STARTED = ("confirming", "running", "paused", "missed", "finishing", "done")
EXPIRED = "This draft expired; nothing was sent. Start again with /sms bulk."


class FileProblem(UserError):
    def __init__(self, message: str) -> None:
        super().__init__(message, field="csv")


def engine_of(ctx: AppContext) -> BulkEngine:
    if ctx.bulk is None:
        ctx.bulk = BulkEngine(ctx.store, ctx.senders, view=SlackBulkView(ctx.notifier), consent=ctx.service.consent, quiet=ctx.service.quiet,
                              dispatcher=ctx.dispatcher, max_attempts=ctx.settings.sms_max_attempts)
    return ctx.bulk


def refusal_for(ctx: AppContext, user_id: str | None, channel_id: str | None) -> str | None:
    return ctx.allowed(user_id, channel_id) or may_send_bulk(ctx.settings.bulk_users, user_id)


# --------------------------------------------------------------------------- the command


def fast_bulk(ctx: AppContext, body: dict[str, Any], args: str) -> Any:
    return may_send_bulk(ctx.settings.bulk_users, body.get("user_id"))


def slow_bulk(ctx: AppContext, body: dict[str, Any], args: str, client: WebClient) -> None:
    if may_send_bulk(ctx.settings.bulk_users, body.get("user_id")):
        return
    senders = [(n, ctx.senders.label(n)) for n in ctx.senders.names()]
    meta = {"channel_id": body.get("channel_id")}
    try:
        client.views_open(trigger_id=body["trigger_id"], view=fit(bulk_modal(senders, ctx.senders.default, meta)))
    except Exception as exc:
        log.warning("views.open failed: %s", type(exc).__name__)


# --------------------------------------------------------------------------- reading the file


def bot_token(ctx: AppContext) -> str:
    token = ctx.settings.slack_bot_token
    return token.get_secret_value() if token else ""


def file_info(ctx: AppContext, client: WebClient, file_id: str) -> dict[str, Any]:
    try:
        resp = client.files_info(file=file_id)
    except Exception as exc:
        error = getattr(getattr(exc, "response", None), "get", lambda _k: None)("error")
        raise FileProblem(f"I couldn't open the uploaded file ({error or type(exc).__name__}). "
                          "Upload it again; the app needs the files:read scope.") from None
    info = resp.get("file") or {}
    kind = str(info.get("filetype") or "").lower()
    name = str(info.get("name") or "the file")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if kind not in CSV_TYPES and ext not in ("csv", "txt", "tsv"):
        pretty = info.get("pretty_type") or kind or "this kind of"
        raise FileProblem(f"{name} is a {pretty} file, not a CSV. Export it as CSV (CSV UTF-8 in Excel) and upload that.")
    if int(info.get("size") or 0) > MAX_FILE_BYTES:
        raise FileProblem(f"{name} is {int(info['size']) // 1_000_000} MB; the limit is 30 MB (100,000 rows).")
    return info


def download(ctx: AppContext, info: dict[str, Any], limit: int | None = None) -> bytes:
    """The file's bytes (the first `limit` of them), with the bot token, never following a redirect."""
    url = info.get("url_private_download") or info.get("url_private")
    if not url:
        raise FileProblem("Slack gave no download link for the file. Upload it again.")
    headers = {"Authorization": f"Bearer {bot_token(ctx)}"}
    try:
        with httpx.Client(timeout=httpx.Timeout(20.0, connect=5.0), follow_redirects=False) as http, \
                http.stream("GET", url, headers=headers) as resp:
            if resp.status_code in (301, 302, 303, 307, 308):
                raise FileProblem("Slack refused the download (it asked to sign in): the app needs the "
                                  "files:read scope. Ask an admin to reinstall it.")
            if resp.status_code != 200:
                raise FileProblem(f"Slack answered {resp.status_code} for the file. Upload it again.")
            chunks: list[bytes] = []
            size = 0
            for chunk in resp.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if limit is not None and size >= limit:
                    break
                if size > MAX_FILE_BYTES:
                    raise FileProblem("The file is larger than 30 MB; split it into files of at most 100,000 rows.")
    except httpx.HTTPError as exc:
        raise FileProblem(f"Downloading the file failed ({type(exc).__name__}). Upload it again.") from None
    data = b"".join(chunks)
    return data[:limit] if limit is not None else data


def check_head(data: bytes, text: str, region: str) -> None:
    """Whole-file problems that the first lines already show: answered as field errors."""
    cut = data.rfind(b"\n")
    head = data[: cut + 1] if cut > 0 else data
    try:
        parsed = iter_csv(head, region)  # the whole-file checks of parse_csv; no row is parsed
    except CsvError as exc:
        raise FileProblem(str(exc)) from None
    unknown = check_placeholders(text, parsed.columns)
    if unknown:
        raise UserError(str(PlaceholderError(unknown, ["name", "to", *[c for c in parsed.columns if c not in
                                                                        ("name", "to")]])), field="text")


# --------------------------------------------------------------------------- the submission


class Submission:
    def __init__(self, ctx: AppContext, body: dict[str, Any]) -> None:
        view = body["view"]
        self.ctx = ctx
        self.view_id = str(view.get("id") or "")
        self.values = view["state"]["values"]
        self.meta = json.loads(view.get("private_metadata") or "{}")
        user = body.get("user") or {}
        self.user_id: str | None = user.get("id")
        self.user_name: str | None = user.get("username") or user.get("name")
        self.channel_id: str | None = self.meta.get("channel_id") or None
        self.sender = (state_value(self.values, B_SENDER) or ctx.senders.default).strip().lower()
        self.text = (state_value(self.values, B_TEXT) or "").strip()
        self.pasted = (state_value(self.values, B_PASTE) or "").strip()
        files = state_value(self.values, B_CSV) or []
        self.file_id: str | None = (files[0].get("id") if files and isinstance(files[0], dict) else None)
        self.allow_duplicates = "allow_duplicates" in (state_value(self.values, B_OPTIONS) or [])
        self.tz: str | None = None
        self.when: datetime | None = None

    def check(self) -> None:
        ctx = self.ctx
        if ctx.senders.get(self.sender) is None:
            raise UserError(f"Sender '{self.sender}' is not configured.", field="sender")
        if not self.text:
            raise UserError("Write the message text.", field="text")
        if self.pasted and self.file_id:
            raise UserError("Paste numbers or upload a CSV, not both.", field="recipients")
        if not self.pasted and not self.file_id:
            raise UserError("Paste the recipients (one per line) or upload a CSV file.", field="recipients")
        if any(picked(state_value(self.values, b)) for b in ("when_dt", "when_date", "when_time")):
            self.tz = ctx.user_tz(self.user_id)
            try:
                self.when = when_from_state(self.values, self.tz)
            except ValueError as exc:
                raise UserError(str(exc), field="when_date") from None
        if self.pasted:
            unknown = check_placeholders(self.text, ["to", "name"])
            if unknown:
                raise UserError(str(PlaceholderError(unknown, ["name", "to"])) +
                                " A pasted list has only {name}; upload a CSV for other columns.", field="text")

    def draft(self, recipients: RecipientList | RecipientStream, source_label: str) -> BulkPlan:
        return engine_of(self.ctx).draft(
            recipients, self.text, self.sender, allow_duplicates=self.allow_duplicates, when=self.when,
            idem_key=f"bulkview:{self.view_id}", user_id=self.user_id, user_name=self.user_name,
            user_tz=self.tz or (self.ctx.user_tz(self.user_id) if self.user_id else None),
            channel_id=self.channel_id, source_label=source_label,
        )

    def parse_file(self, data: bytes) -> RecipientStream:
        """The file checked (whole-file problems and placeholders); its rows are read by the draft."""
        try:
            parsed = iter_csv(data, self.ctx.settings.sms_default_region, self.allow_duplicates)
        except CsvError as exc:
            raise FileProblem(str(exc)) from None
        unknown = check_placeholders(self.text, parsed.columns)
        if unknown:
            raise UserError(str(PlaceholderError(unknown, ["name", "to", *[c for c in parsed.columns
                                                                            if c not in ("name", "to")]])),
                            field="text")
        return parsed


def errors_answer(exc: UserError) -> dict[str, Any]:
    block = FIELD_BLOCKS.get(exc.field or "text", B_TEXT)
    return {"response_action": "errors", "errors": {block: exc.message[:2000]}}


def prepare_in_background(ctx: AppContext, sub: Submission, info: dict[str, Any], client: WebClient) -> None:
    name = str(info.get("name") or "the file")
    try:
        data = download(ctx, info)
        stream = sub.parse_file(data)
        del data  # the stream holds the decoded text; the bytes can go before the rows are read
        plan = sub.draft(stream, f"file {name}")
        del stream
        view = confirmation_view(plan)
    except UserError as exc:
        view = message_view(f":warning: {escape(exc.message)}\n\nNothing was sent. Run `/sms bulk` again with a fixed file.")
    except Exception:
        log.exception("preparing a bulk send failed")
        view = message_view(":boom: Something went wrong reading the file; nothing was sent. Try again.")
    try:
        client.views_update(view_id=sub.view_id, view=fit(view))
    except Exception as exc:
        log.warning("views.update failed: %s", type(exc).__name__)


def on_bulk_submit(ctx: AppContext, body: dict[str, Any], client: WebClient) -> dict[str, Any]:
    """The answer to the form's submission: field errors, the confirmation, or Preparing…"""
    sub = Submission(ctx, body)
    refusal = refusal_for(ctx, sub.user_id, sub.channel_id)
    if refusal:
        return {"response_action": "errors", "errors": {B_SENDER: refusal[:150]}}
    try:
        sub.check()
        if sub.pasted:
            parsed = parse_pasted(sub.pasted, ctx.settings.sms_default_region, sub.allow_duplicates)
            return {"response_action": "update", "view": confirmation_view(sub.draft(parsed, "pasted list"))}
        assert sub.file_id is not None
        info = file_info(ctx, client, sub.file_id)
        size = int(info.get("size") or 0)
        if size <= SYNC_BYTES:
            plan = sub.draft(sub.parse_file(download(ctx, info)), f"file {info.get('name') or 'upload'}")
            return {"response_action": "update", "view": confirmation_view(plan)}
        check_head(download(ctx, info, limit=HEAD_BYTES), sub.text, ctx.settings.sms_default_region)
    except UserError as exc:
        return errors_answer(exc)
    threading.Thread(target=prepare_in_background, args=(ctx, sub, info, client), name="smsbot-bulk-prepare",
                     daemon=True).start()
    return {"response_action": "update", "view": preparing_view(f"{info.get('name') or 'the file'} "
                                                                f"({size / 1_000_000:.1f} MB)")}


# --------------------------------------------------------------------------- registration


ACTIONS = ((CANCEL_ACTION, "cancel"), (PAUSE_ACTION, "pause"), (RESUME_ACTION, "resume"),
           (MISSED_CANCEL_ACTION, "missed_cancel"), (MISSED_SEND_NOW_ACTION, "send_now"))


def on_confirm(ctx: AppContext, engine: BulkEngine, body: dict[str, Any]) -> dict[str, Any]:
    """The answer to the confirmation: start the job (once), or say why nothing was sent."""
    meta = json.loads(body["view"].get("private_metadata") or "{}")
    user_id = (body.get("user") or {}).get("id")
    job = engine.jobs.get(int(meta.get("job_id") or 0))
    if job is None:
        return {"response_action": "update", "view": message_view("This bulk send no longer exists; nothing was sent.")}
    refusal = refusal_for(ctx, user_id, job.channel_id)
    if refusal:
        return {"response_action": "update", "view": message_view(refusal)}
    if engine.confirm(job.id) is None:
        fresh = engine.jobs.get(job.id)
        if fresh is None or fresh.status not in STARTED:
            # Expired (discarded after a day) or canceled: closing silently would look like a send.
            return {"response_action": "update", "view": message_view(EXPIRED)}
        # A double click (or Slack's retry) of a job already started: say nothing twice.
    return {"response_action": "clear"}


def parse_action(body: dict[str, Any]) -> tuple[int, str | None, str | None, str]:
    """(job id, user, channel, action_ts) of a button press."""
    act = (body.get("actions") or [{}])[0]
    user_id = (body.get("user") or {}).get("id")
    channel_id = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    value = str(act.get("value") or "")
    return (int(value) if value.isdigit() else 0), user_id, channel_id, str(act.get("action_ts") or "")


def control(ctx: AppContext, engine: BulkEngine, said: dict[str, str], action: str) -> tuple[Any, Any]:
    """A button's two handlers: the change inside the request, then what it did in Slack (lazy)."""

    def act_now(ack: Ack, body: dict[str, Any]) -> None:
        # The change happens inside the request: Cancel stops the remaining sends at once.
        job_id, user_id, channel_id, action_ts = parse_action(body)
        if job_id and not refusal_for(ctx, user_id, channel_id):
            run = {"cancel": engine.cancel, "pause": engine.pause, "resume": engine.resume,
                   "missed_cancel": engine.cancel, "send_now": engine.send_missed_now}[action]
            said[f"{job_id}:{action_ts}"] = run(job_id)
        ack()

    def tell(body: dict[str, Any]) -> None:
        job_id, user_id, channel_id, action_ts = parse_action(body)
        refusal = refusal_for(ctx, user_id, channel_id)
        if refusal:
            if user_id:
                ctx.notifier.ephemeral_or_dm(channel_id, user_id, refusal)
            return
        text = said.pop(f"{job_id}:{action_ts}", None)
        job = engine.jobs.get(job_id)
        if job is None or text is None:
            return
        engine.redraw(job)
        prompt_ts = (body.get("container") or {}).get("message_ts")
        if action in ("missed_cancel", "send_now") and channel_id and prompt_ts and prompt_ts != job.thread_ts:
            # The missed prompt: its buttons give way to what happened.
            note = f"<@{user_id}>: {text}" if user_id else text
            ctx.notifier.update(channel_id, prompt_ts, note,
                                [{"type": "section", "text": {"type": "mrkdwn", "text": note}}])
        if job.thread_channel and job.thread_ts and user_id:
            ctx.notifier.post(job.thread_channel, f"<@{user_id}>: {text}", thread_ts=job.thread_ts)

    return act_now, tell


def register(app: App, ctx: AppContext) -> None:
    # The runtime builds the engine (and starts it where the outbox is worked on).
    engine = engine_of(ctx)
    ctx.subcommands["bulk"] = SubCommand("bulk", fast_bulk, slow_bulk, summary="Bulk send (paste or CSV)")

    @app.view(BULK_MODAL)
    def submit_form(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        try:
            ack(**fit(on_bulk_submit(ctx, body, client)))
        except Exception:
            log.exception("bulk form failed")
            ack(response_action="errors", errors={B_TEXT: "Something went wrong on our side; nothing was sent."})

    @app.view(BULK_CONFIRM)
    def submit_confirm(ack: Ack, body: dict[str, Any]) -> None:
        ack(**on_confirm(ctx, engine, body))

    said: dict[str, str] = {}  # what each press did, from its ack to its lazy listener
    for action_id, name in ACTIONS:
        act_now, tell = control(ctx, engine, said, name)
        app.action(action_id)(ack=act_now, lazy=[tell])
