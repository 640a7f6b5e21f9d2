"""Reconciliation: settle `unknown` sends where the provider can tell, say once where it can't.

The rule: a row becomes `sent` on the provider's record of it and `failed` only when the
provider says it refused it. Not finding a message is never proof that it was not sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol, runtime_checkable

from bot.core.delivery.notices import Notices
from bot.core.delivery.rules import SOCIOCS_CODES, SOCIOCS_LISTED_STATES, UNKNOWN_ADVICE
from bot.core.ports_delivery import BulkFollower, DeliveryView, FinalHooks
from bot.core.senders import Senders
from providers.base import ProviderError, SendResult
from providers.sociocs import days_to_look_up
from storage.bulk import BulkStore
from storage.delivery import DeliveryQueries
from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.delivery")


@runtime_checkable
class MessageLister(Protocol):
    """Sociocs: the messages of a range of days (no lookup by id)."""

    def list_messages(self, start: date, end: date) -> list[dict[str, Any]]: ...


@runtime_checkable
class MessageLookup(Protocol):
    """Bird: one message by the provider's id."""

    def get_message(self, message_id: str) -> SendResult: ...


class Reconciler:
    def __init__(self, store: Store, queries: DeliveryQueries, senders: Senders, view: DeliveryView,
                 notices: Notices, window: float, *, hooks: FinalHooks | None = None,
                 bulk: Callable[[], BulkFollower | None] | None = None,
                 skip: Callable[[MessageRow], None] | None = None) -> None:
        self.store = store
        self.queries = queries
        self.senders = senders
        self.view = view
        self.notices = notices
        self.reconcile_window = window
        self.hooks = hooks
        self.bulk = bulk
        self.skip = skip  # the engine's own on_final: it must not hear of its own settlements
        self._jobs_touched: set[int] = set()  # bulk jobs whose rows this pass settled

    def label(self, sender: str) -> str:
        return self.senders.label(sender)

    def reconcile_once(self, now: float | None = None) -> dict[int, str]:
        """Settle `unknown` sends where the provider can tell. Returns {row id: what happened}.

        The rule: a row becomes `sent` on the provider's record of it and `failed` only
        when the provider says it refused it. Not finding a message is never proof that
        it was not sent, so such rows stay `unknown` with a note saying what to check.
        """
        now = time.time() if now is None else now
        rows = self.queries.unknown_rows(since=now - 30 * 86400)
        out: dict[int, str] = {}
        self._jobs_touched = set()
        sociocs = [r for r in rows if r.sender in SOCIOCS_CODES]
        if sociocs:
            out.update(self._reconcile_sociocs(sociocs, now))
        for row in rows:
            if row.sender == "bird":
                out[row.id] = self._reconcile_bird(row, now)
            elif row.sender not in SOCIOCS_CODES:
                out[row.id] = self._no_lookup(row)
        self._bulk_settled(self._jobs_touched)
        return out

    def _reconcile_sociocs(self, rows: list[MessageRow], now: float) -> dict[int, str]:
        provider = next((self.senders.get(r.sender) for r in rows if self.senders.get(r.sender)), None)
        if not isinstance(provider, MessageLister):
            return {r.id: "sender not configured" for r in rows}
        # A send happened between its claim and the moment it was recorded unknown; Sociocs
        # may date it a little later (a bulk job works through its list), hence the margins.
        days = days_to_look_up([(r.updated_at - 3600, min(now, r.updated_at + 86400)) for r in rows])
        left = {r.id: r for r in rows}
        out: dict[int, str] = {}
        taken: set[str] = set()
        for day in days:  # no documented paging: one day per call is the finest the API allows
            if not left:
                break
            try:
                listed = provider.list_messages(day, day)
            except (ProviderError, ValueError) as exc:
                log.warning("Sociocs reconciliation failed: %s", getattr(exc, "message", type(exc).__name__))
                out.update({i: "lookup failed" for i in left})
                return out
            for row in list(left.values()):
                match = self._sociocs_match(row, listed, taken)
                if match is not None:
                    del left[row.id]
                    out[row.id] = self._settle_found(row, match, now)
        for row in left.values():
            out[row.id] = self._still_unknown(row, now)
        return out

    def _sociocs_match(self, row: MessageRow, listed: list[dict[str, Any]],
                       taken: set[str]) -> dict[str, Any] | None:
        """The listed message that is this row's send: same number, text and sender, not before it."""
        text = row.payload.get("text") if isinstance(row.payload, dict) else None
        for m in listed:
            mid = str(m.get("message_id") or m.get("id") or "")
            if (not mid or mid in taken or m.get("to") != row.to_number or (m.get("text") or None) != text
                    or m.get("provider", row.sender) != row.sender):
                continue
            when = _listed_time(m)
            if when is not None and when < row.created_at - 60:
                continue  # an older message with the same text: not this send
            if self.queries.is_known_provider_id(mid):
                continue  # another of our rows already owns it
            taken.add(mid)
            return {**m, "message_id": mid}
        return None

    def _settle_found(self, row: MessageRow, match: dict[str, Any], now: float) -> str:
        reported = str(match.get("status") or "").lower()
        delivery = reported if reported in SOCIOCS_LISTED_STATES else "accepted"
        note = "Found at Sociocs after the unknown outcome: it was sent."
        if self.queries.settle_unknown(row.id, "sent", provider_message_id=str(match["message_id"]),
                                       delivery=delivery, error=note, now=now):
            self._settled(row.id)
        return "sent"

    def _still_unknown(self, row: MessageRow, now: float) -> str:
        """Not listed (yet): keep looking; past the window, say once what a person should check."""
        if now - row.updated_at <= self.reconcile_window:
            return "waiting"
        minutes = self.reconcile_window / 60
        if row.bulk_job_id is not None:
            note = ("It was part of a Sociocs bulk call that got no answer, so smsbot never learned the job id "
                    f"and Sociocs does not list it {minutes:g} minutes later either. " + UNKNOWN_ADVICE
                    + " (Sociocs -> Bulk messaging -> History)")
        else:
            note = (f"Sociocs does not list it {minutes:g} minutes after the attempt, but its list is not "
                    "proof either way. " + UNKNOWN_ADVICE)
        if self.store.first_time(f"reconcile-note:{row.id}"):
            self.queries.note_unknown(row.id, f"{row.error or 'No answer from Sociocs.'} {note}")
            self._tell_unknown(row, note)
        return "unknown"

    def _tell_unknown(self, row: MessageRow, note: str) -> None:
        """The honest note, once: in the message's thread, or once per bulk job in the job's thread."""
        if row.bulk_job_id is None:
            if row.thread_channel and row.thread_ts:
                self.view.note_unknown(row, note)
            return
        job = BulkStore(self.store).get(row.bulk_job_id)
        if job is not None and job.thread_channel and job.thread_ts and \
                self.store.first_time(f"reconcile-note:bulk:{job.id}"):
            self.view.note_bulk_unknown(job.id, job.thread_channel, job.thread_ts, note)

    def _reconcile_bird(self, row: MessageRow, now: float) -> str:
        provider = self.senders.get("bird")
        if row.provider_message_id and isinstance(provider, MessageLookup):
            try:
                result = provider.get_message(row.provider_message_id)
            except ProviderError as exc:
                # A 404 is also what a changed workspace or channel setting answers: no proof.
                if exc.kind == "not_found" and now - row.updated_at > self.reconcile_window:
                    return self._no_lookup(row, "Bird answers 404 for its message id, which does not prove "
                                                "it was not sent. " + UNKNOWN_ADVICE)
                return "lookup failed"
            if result.status == "unknown":
                return "waiting"  # a state we cannot read (e.g. deleted): no evidence either way
            # Refused before sending is proof nothing went out; delivery_failed means it was sent.
            refused = result.provider_status in ("rejected", "sending_failed")
            status = "failed" if refused else "sent"
            if refused:
                error = f"Bird refused it: {result.detail or result.provider_status}"
            elif result.status == "failed":
                error = f"Found at Bird: it was sent but not delivered ({result.detail or result.provider_status})."
            else:
                error = "Found at Bird after the unknown outcome: it was sent."
            if self.queries.settle_unknown(row.id, status, delivery=None if refused else result.status,
                                           error=error, now=now):
                self._settled(row.id)
            return status
        return self._no_lookup(row)

    def _no_lookup(self, row: MessageRow, how: str | None = None) -> str:
        """Bird without an id, TextUs: no lookup exists. Say so once; a webhook may still settle it."""
        if self.store.first_time(f"reconcile-note:{row.id}") and row.thread_channel and row.thread_ts:
            label = self.label(row.sender)
            if how is None and row.sender == "bird":
                how = (f"Bird has no lookup by our reference, so I can't check it: search Bird's message log for "
                       f"reference `smsbot-{row.id}`. A Bird delivery report naming it will settle this thread.")
            elif how is None:
                how = f"{label} offers no way to look a message up. " + UNKNOWN_ADVICE
            self.view.note_no_lookup(row, how)
        return "no lookup"

    def _bulk_settled(self, job_ids: set[int]) -> None:
        """Jobs whose rows reconciliation settled: their progress message and summary show it."""
        engine = self.bulk() if self.bulk is not None else None
        if engine is None:
            return
        for job_id in sorted(job_ids):
            try:
                engine.reconciled(job_id)
            except Exception:
                log.exception("correcting the summary of bulk #%s failed", job_id)

    def _settled(self, message_id: int) -> None:
        row = self.store.get(message_id)
        if row is None:
            return
        if row.bulk_job_id is None:
            self.notices.settled(row)
        else:
            self._jobs_touched.add(row.bulk_job_id)
        for callback in self.hooks.on_final if self.hooks is not None else []:
            if callback != self.skip:  # bulk progress etc. hear about the settled row
                try:
                    callback(row)
                except Exception:
                    log.exception("on_final callback failed")


def _listed_time(message: dict[str, Any]) -> float | None:
    """When Sociocs says a listed message was made, if a field says so (not documented: inferred)."""
    for key in ("created_at", "timestamp", "date"):
        value = message.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value) / (1000 if value > 1e11 else 1)  # webhook timestamps are in ms
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    return None


