"""The application: turn a person's request into a validated outbox row. No Slack, no HTTP.

Listeners (slash command, modal, CLI) all call `prepare` then `submit`, so the same rules
hold wherever a send starts: nothing is stored unless it would be accepted by our checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from bot.core.consent.book import ConsentBook, send_family
from bot.core.consent.quiet import NightPrompt, QuietPolicy
from bot.core.conversations.window import window_refusal
from bot.core.input.phone import InvalidNumber, normalize
from bot.core.senders import Senders
from providers.base import ContactSaving, OutboundMessage, Provider, TemplateSend
from storage.conversations import ConversationQueries
from storage.store import NewMessage, Store

# Twilio's limit for one message (about 10 SMS segments); the send modal caps input at it too.
MAX_TEXT_LENGTH = 1600


class UserError(ValueError):
    """Something the person can fix; `field` names the modal input it belongs to."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class QuietPrompt(UserError):
    """A one-off send to a recipient in quiet hours: ask "send now / send at 08:00"."""

    def __init__(self, prompt: NightPrompt) -> None:
        super().__init__(prompt.words(), field="to")
        self.prompt = prompt


class SendRequest(BaseModel):
    """A send as a person asked for it, before validation."""

    sender: str | None = None
    to: str
    name: str | None = None
    text: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    video_url: str | None = None
    file_url: str | None = None
    file_content_type: str | None = None
    subject: str | None = None
    template: TemplateSend | None = None
    template_name: str | None = None
    channel: Literal["sms", "whatsapp"] | None = None  # "whatsapp" for TextUs WhatsApp
    contact_saving: ContactSaving | None = None
    when: datetime | None = None  # None: now
    # attribution and where results go
    idem_key: str
    user_id: str | None = None
    user_name: str | None = None
    user_tz: str | None = None
    channel_id: str | None = None
    response_url: str | None = None
    source: str = "slack"
    # consent: the opt-out confirmation or HELP reply (the only texts an opted-out number may
    # get); a reply to someone who just wrote (never held for quiet hours); a person who
    # chose "send now" at night.
    consent_exempt: bool = False
    conversation_reply: bool = False
    quiet_ok: bool = False


class Prepared(BaseModel):
    new: NewMessage
    message: OutboundMessage


def summarize(msg: OutboundMessage, template_name: str | None = None) -> str:
    if msg.template is not None:
        return f"[template {template_name or msg.template.id}]"
    parts = []
    if msg.text:
        parts.append(msg.text)
    media = len(msg.image_urls) + bool(msg.video_url) + bool(msg.file_url)
    if media:
        parts.append(f"[{media} attachment{'s' if media > 1 else ''}]")
    return " ".join(parts)


def outbound_message(req: SendRequest, to: str) -> OutboundMessage:
    """The provider-facing message: blanks dropped, `to` already E.164."""
    return OutboundMessage(
        to=to,
        name=(req.name or "").strip() or None,
        text=(req.text or "").strip() or None,
        image_urls=[u.strip() for u in req.image_urls if u.strip()],
        video_url=(req.video_url or "").strip() or None,
        file_url=(req.file_url or "").strip() or None,
        file_content_type=req.file_content_type,
        subject=req.subject,
        template=req.template,
        contact_saving=req.contact_saving,
        channel=req.channel,
        user_id=None,
    )


def check_message(msg: OutboundMessage, provider: Provider) -> None:
    """Our length limit, then the provider's own rules; UserError on the text field."""
    if msg.text and len(msg.text) > MAX_TEXT_LENGTH:
        raise UserError(
            f"The text is {len(msg.text):,} characters; the limit is {MAX_TEXT_LENGTH:,} "
            "(about 10 SMS segments). Shorten it.",
            field="text",
        )
    problems = provider.validate(msg)
    if problems:
        raise UserError(" ".join(problems), field="text")


class SendService:
    def __init__(
        self,
        store: Store,
        senders: Senders,
        default_region: str = "US",
        wake: Callable[[], None] | None = None,
        max_days: int = 365,
        consent: ConsentBook | None = None,
        quiet: QuietPolicy | None = None,
    ) -> None:
        self.store = store
        # Nothing bypasses consent: without one given, the store's own book is used.
        self.consent = consent or ConsentBook(store)
        self.quiet = quiet or QuietPolicy(self.consent.settings.sms_quiet_hours)
        self.senders = senders
        self.default_region = default_region
        self._wake = wake or (lambda: None)
        self.max_days = max_days
        self.conversations = ConversationQueries(store)

    def set_wake(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def wake(self) -> None:
        self._wake()

    def prepare(self, req: SendRequest, now: float | None = None) -> Prepared:
        now = time.time() if now is None else now
        sender_name, provider = self._provider_for(req)
        try:
            to = normalize(req.to, self.default_region)
        except InvalidNumber as exc:
            raise UserError(str(exc), field="to") from None
        msg = outbound_message(req, to)
        family = send_family(sender_name, req.channel, req.template is not None)
        self._check_consent(req, to, family)
        check_message(msg, provider)
        due, scheduled = self._due(req, now)
        due = self._quiet_due(req, to, due, scheduled, now)
        # Checked for the time it will go (a schedule); the dispatcher checks again then.
        refusal = window_refusal(self.conversations, sender_name, to, msg.channel, msg.template is not None,
                                 datetime.fromtimestamp(due, UTC))
        if refusal is not None:
            raise UserError(refusal, field="text")
        new = NewMessage(
            idem_key=req.idem_key,
            sender=sender_name,
            to_number=to,
            name=msg.name,
            payload=msg.model_dump(mode="json", exclude_none=True),
            summary=summarize(msg, req.template_name)[:500],
            scheduled=scheduled,
            due_at=due,
            created_by=req.user_id,
            user_name=req.user_name,
            user_tz=req.user_tz,
            source=req.source,
            channel_id=req.channel_id,
            response_url=req.response_url,
            needs_announce=req.channel_id is not None or req.user_id is not None,
            consent_family=family,
            consent_exempt=req.consent_exempt,
        )
        return Prepared(new=new, message=msg)

    def _check_consent(self, req: SendRequest, to: str, family: str | None) -> None:
        """Before anything is stored (the claim checks again before the provider call)."""
        if req.consent_exempt:
            # Only the two texts an opted-out number may get can skip the check.
            allowed = {self.consent.settings.sms_optout_confirmation, self.consent.settings.sms_help_text} - {None}
            if (req.text or "").strip() not in allowed or req.template is not None:
                raise UserError("Only the opt-out confirmation (SMS_OPTOUT_CONFIRMATION) or the HELP reply "
                                "(SMS_HELP_TEXT) may go to a number regardless of its opt-out.", field="text")
            return
        refusal = self.consent.refusal(to, family)
        if refusal is not None:
            raise UserError(refusal, field="to")

    def _quiet_due(self, req: SendRequest, to: str, due: float, scheduled: bool, now: float) -> float:
        """A schedule in quiet hours waits for the window; a one-off send at night asks first."""
        if req.consent_exempt or req.conversation_reply:
            return due
        if scheduled:
            return self.quiet.hold_until(to, due) or due
        if not req.quiet_ok:
            prompt = self.quiet.night_prompt(to, now)
            if prompt is not None:
                raise QuietPrompt(prompt)
        return due

    def _provider_for(self, req: SendRequest) -> tuple[str, Provider]:
        """(sender name, its provider); UserError naming the configured ones if unknown."""
        sender_name = (req.sender or self.senders.default).strip().lower()
        provider = self.senders.get(sender_name)
        if provider is None:
            raise UserError(
                f"Sender '{sender_name}' is not configured. Configured senders: {', '.join(self.senders.names())}.",
                field="sender",
            )
        return sender_name, provider

    def _due(self, req: SendRequest, now: float) -> tuple[float, bool]:
        """(when to send, whether that is a scheduled send); UserError if out of range."""
        if req.when is None:
            return now, False
        ts = req.when.timestamp()
        if ts < now - 1:
            raise UserError("That time is in the past. Choose a future time.", field="when")
        if ts > now + self.max_days * 86400:
            raise UserError(f"Scheduling is limited to {self.max_days} days ahead.", field="when")
        return ts, ts > now + 1

    def submit(self, req: SendRequest, now: float | None = None) -> tuple[int, bool]:
        """Validate and store; returns (message id, created). Wakes the worker."""
        prepared = self.prepare(req, now)
        result = self.store.enqueue(prepared.new, now)
        self._wake()
        return result
