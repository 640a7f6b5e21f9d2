"""ConsentBook: who may be texted, and every way that changes (keywords, provider events,
provider errors, people). No Slack, no HTTP: the edges call these entry points.

Entry points the inbound path (issue 13) plugs into:
- `on_inbound_text(number, sender, text, channel)` for every customer message: records
  STOP/START/HELP and returns an `InboundAction` (a thread note, and the one text to send
  back, if any: submit `bot.core.consent.replies.reply_request(...)` with the SendService);
- `apply_consent_event(ConsentEvent)` for TextUs contact.opted_out/opted_in and Sociocs
  payloads whose contact is blocked (providers/inbound.py).
A Sociocs payload carries both a text and (when its contact is blocked) a ConsentEvent: apply
the event first, then the text, so a START in it lifts what the same payload re-asserts.
The rule: an opt-out the recipient made (a keyword, a provider event or error) is lifted only
by the recipient (a keyword, a provider opt-in event); a manual one only by a manager.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.config import Settings
from bot.core.consent.rules import (
    ConsentFamily,
    UnknownSender,
    classify_keyword,
    consent_family,
    keyword_source,
)
from bot.core.input.phone import display
from bot.core.visibility import is_manager
from providers.inbound import ConsentEvent, opt_out_error_source
from storage.consent import FAMILIES, STOPPED_KIND, ConsentQueries, ConsentState, OptInResult
from storage.store import MessageRow, Store

FAMILY_WORDS = {"sms": "SMS", "whatsapp": "WhatsApp"}


class ConsentDenied(ValueError):
    """A person may not make this change; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class InboundAction:
    """What to do after a customer's message: a note for its thread, the one text to send back."""

    kind: str | None  # opt_out | opt_in | help | None (an ordinary message)
    families: tuple[str, ...]
    thread_note: str | None = None
    reply_text: str | None = None  # the opt-out confirmation or the HELP reply (consent-exempt)
    new: tuple[str, ...] = ()  # the families this message newly opted out or back in


def families_of(sender: str | None, channel: str | None) -> tuple[ConsentFamily, ...]:
    """The families a customer's message or a provider event speaks for (both when unknown)."""
    if sender:
        try:
            return (consent_family(sender, channel),)
        except UnknownSender:
            pass
    if channel in ("sms", "whatsapp"):
        return ("whatsapp",) if channel == "whatsapp" else ("sms",)
    return ("sms", "whatsapp")


def send_family(sender: str, channel: str | None, template: bool) -> str | None:
    """A send's family; None (every family's opt-outs apply) for a sender rules do not know."""
    try:
        return consent_family(sender, channel, template)
    except UnknownSender:
        return None


class ConsentBook:
    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        self.settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]
        self.queries = ConsentQueries(store)

    # -- checks

    def blocking(self, number: str, family: str | None) -> ConsentState | None:
        """The opt-out in force for a send to `number` in `family` (None: any family)."""
        states = self.queries.opted_out([number])
        if family is not None:
            return states.get((number, family))
        return next(iter(states.values()), None)

    def refusal(self, number: str, family: str | None) -> str | None:
        """Why a send to `number` may not be stored, in words; None when it may."""
        state = self.blocking(number, family)
        if state is None:
            return None
        lift = ("only they can opt back in (by replying START)" if state.by_recipient
                else "a manager can lift it with `/sms optin`")
        return (f"{display(number)} {state.words()} ({FAMILY_WORDS.get(state.family, state.family)}): "
                f"nothing was sent; {lift}.")

    # -- changes

    def opt_out(self, number: str, families: tuple[str, ...], *, source: str, by_recipient: bool,
                actor: str | None = None, reason: str | None = None, now: float | None = None) -> list[str]:
        """Record the opt-out in each family; returns the families newly opted out."""
        return [f for f in families if self.queries.opt_out(number, f, source=source, by_recipient=by_recipient,
                                                            actor=actor, reason=reason, now=now)]

    def opt_in(self, number: str, families: tuple[str, ...], *, source: str, by_recipient: bool,
               actor: str | None = None, reason: str | None = None, now: float | None = None
               ) -> dict[str, OptInResult]:
        return {f: self.queries.opt_in(number, f, source=source, by_recipient=by_recipient, actor=actor,
                                       reason=reason, now=now) for f in families}

    def manual_opt_out(self, user_id: str | None, number: str, reason: str | None = None,
                       now: float | None = None) -> str:
        """`/sms optout`, managers only: every family. Returns the answer."""
        self._require_manager(user_id, "opt a number out")
        new = self.opt_out(number, FAMILIES, source="manual", by_recipient=False, actor=user_id,
                           reason=(reason or "").strip()[:300] or None, now=now)
        if not new:
            return f"{display(number)} was already opted out; nothing changed."
        return (f"{display(number)} is opted out ({', '.join(FAMILY_WORDS[f] for f in new)}): nothing more will "
                "be sent to it, including scheduled and bulk messages already queued.")

    def manual_opt_in(self, user_id: str | None, number: str, now: float | None = None) -> str:
        """`/sms optin`, managers only: lifts manual opt-outs, never the recipient's own."""
        self._require_manager(user_id, "opt a number back in")
        results = self.opt_in(number, FAMILIES, source="manual", by_recipient=False, actor=user_id, now=now)
        lifted = [FAMILY_WORDS[f] for f, r in results.items() if r == "opted_in"]
        theirs = [FAMILY_WORDS[f] for f, r in results.items() if r == "recipient_only"]
        lines = []
        if lifted:
            lines.append(f"{display(number)} is opted back in ({', '.join(lifted)}).")
        if theirs:
            lines.append(f"{display(number)} opted out themselves ({', '.join(theirs)}): only they can opt back "
                         "in, by replying START. Nothing changed there.")
        return " ".join(lines) or f"{display(number)} was not opted out; nothing changed."

    def _require_manager(self, user_id: str | None, what: str) -> None:
        if not is_manager(self.settings, user_id):
            raise ConsentDenied(f"Only managers (SMS_BULK_USERS) may {what}.")

    # -- the inbound entry points

    def on_inbound_text(self, number: str, sender: str | None, text: str | None, channel: str | None = None,
                        now: float | None = None) -> InboundAction:
        """A customer's message: STOP/START/HELP recorded and answered; other texts change nothing."""
        kind = classify_keyword(text)
        families = families_of(sender, channel)
        source = keyword_source(text) or "keyword"
        word = source.removeprefix("keyword_")
        if kind == "opt_out":
            new = self.opt_out(number, families, source=source, by_recipient=True, now=now)
            reply = self._confirmation(number, families, now)
            note = (f":no_entry: {display(number)} replied {word}: opted out "
                    f"({', '.join(FAMILY_WORDS[f] for f in families)}). Nothing more will be sent to this number"
                    + (" except the one confirmation text." if reply else "."))
            return InboundAction(kind, families, note, reply, tuple(new))
        if kind == "opt_in":
            results = self.opt_in(number, families, source=source, by_recipient=True, now=now)
            done = [FAMILY_WORDS[f] for f, r in results.items() if r == "opted_in"]
            back = (f":white_check_mark: {display(number)} replied {word}: opted back in ({', '.join(done)})."
                    if done else None)
            return InboundAction(kind, families, back, new=tuple(f for f, r in results.items() if r == "opted_in"))
        if kind == "help":
            return InboundAction(kind, families, None, self.settings.sms_help_text)
        return InboundAction(None, families)

    def _confirmation(self, number: str, families: tuple[str, ...], now: float | None) -> str | None:
        text = self.settings.sms_optout_confirmation
        if not text:
            return None
        # At most once per opt-out: every family must be claimed (a repeated STOP claims none).
        claimed = [f for f in families if self.queries.claim_confirmation(number, f, now)]
        return text if claimed else None

    def apply_consent_event(self, event: ConsentEvent, now: float | None = None) -> str | None:
        """A provider's opt-out or opt-in (TextUs events, a blocked Sociocs contact); the thread note."""
        when = event.occurred_at.timestamp() if event.occurred_at is not None and now is None else now
        families = families_of(event.sender, event.channel)
        if event.action == "opted_out":
            new = self.opt_out(event.number, families, source=event.source, by_recipient=True, now=when)
            return f":no_entry: {display(event.number)} {self._state_words(event.number, families)}." if new else None
        results = self.opt_in(event.number, families, source=event.source, by_recipient=True, now=when)
        done = [FAMILY_WORDS[f] for f, r in results.items() if r == "opted_in"]
        return f":white_check_mark: {display(event.number)} opted back in ({', '.join(done)})." if done else None

    def _state_words(self, number: str, families: tuple[str, ...]) -> str:
        states = self.queries.opted_out([number])
        found = [states[(number, f)] for f in families if (number, f) in states]
        return found[0].words() if found else "opted out"

    def on_final(self, row: MessageRow) -> None:
        """Dispatcher.on_final and DeliveryEngine.on_changed: a send refused, or a delivery failed,
        because the recipient opted out records that opt-out."""
        self.record_send_error(row)

    def record_send_error(self, row: MessageRow, now: float | None = None) -> bool:
        """A final row whose provider error means the recipient opted out (Twilio 21610 via
        Sociocs, TextUs "is opted out"): record that opt-out with its source. Dispatcher.on_final."""
        if row.error_kind == STOPPED_KIND:
            return False
        errors = [e for e in (row.error if row.status == "failed" else None,
                              row.delivery_error if row.delivery == "failed" else None) if e]
        source = next((s for e in errors if (s := opt_out_error_source(row.sender, e))), None)
        if source is None:
            return False
        family = row.consent_family
        families = (family,) if family in FAMILIES else families_of(row.sender, row.payload.get("channel"))
        return bool(self.opt_out(row.to_number, tuple(families), source=source, by_recipient=True, now=now))
