"""Drafts: a parsed recipient list and a text become stored draft rows and their plan.

The recipients are read once, in order, one at a time: a `RecipientStream` (`iter_csv`)
is never held in memory whole, and neither are the rendered rows (`Spool`).
"""

from __future__ import annotations

import json
import marshal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from bot.core.bulk.models import PROBLEMS_SHOWN, BulkPlan, ProblemLine
from bot.core.bulk.wording import plural, when_words
from bot.core.consent.book import ConsentBook, send_family
from bot.core.consent.quiet import QuietPolicy
from bot.core.input.recipients import RecipientList, RecipientStream, Renderer, RowProblem, placeholders
from bot.core.input.sms_segments import segment_info
from bot.core.senders import Senders
from bot.core.sending import MAX_TEXT_LENGTH, UserError
from providers.base import OutboundMessage, Provider
from storage.bulk import BulkStore, DraftRow, NewBulkJob

SOCIOCS_SENDERS = ("twlo", "twlowa", "gswa")
DRAFT_CHUNK = 1000  # rendered rows kept in memory while drafting (the rest wait on disk)
SEEN_TEXTS = 2000  # distinct texts whose segment count is remembered while drafting

Recipients = RecipientList | RecipientStream


class Spool:
    """Draft rows between the renderer and the store: one chunk in memory, the rest on disk.

    The rows are inserted in one transaction, but rendering 100,000 of them must neither
    keep them all in memory (~30 MB of JSON) nor hold the store's write lock while the
    CSV is read (every `/sms send` ack writes a row). So rendered chunks go to a temporary
    file (marshal: plain tuples of str/None) and are read back one chunk at a time.
    """

    def __init__(self, chunk: int = DRAFT_CHUNK) -> None:
        self.chunk = chunk
        self.rows: list[tuple[str, str | None, str, str, float | None]] = []
        self.count = 0
        self.first: DraftRow | None = None
        self._file: IO[bytes] | None = None

    def append(self, row: DraftRow) -> None:
        if self.first is None:
            self.first = row
        self.rows.append((row.to, row.name, row.payload, row.summary, row.due_at))  # marshal takes no NamedTuple
        self.count += 1
        if len(self.rows) >= self.chunk:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="smsbot-draft-")
            marshal.dump(self.rows, self._file)
            self.rows = []

    def __iter__(self) -> Iterator[DraftRow]:
        if self._file is not None:
            self._file.seek(0)
            while True:
                try:
                    chunk = marshal.load(self._file)
                except EOFError:
                    break
                for row in chunk:
                    yield DraftRow._make(row)
        for row in self.rows:
            yield DraftRow._make(row)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.rows = []


@dataclass
class DraftRequest:
    """Who asks for what; the fields a draft stores beside its rows."""

    text: str
    sender: str
    allow_duplicates: bool
    when: datetime | None
    idem_key: str
    user_id: str | None = None
    user_name: str | None = None
    user_tz: str | None = None
    channel_id: str | None = None
    source: str = "slack"
    source_label: str = "pasted list"


@dataclass
class Rendered:
    """What reading the recipients found: rows on the spool, skipped rows, the longest text."""

    spool: Spool = field(default_factory=Spool)
    empty: list[ProblemLine] = field(default_factory=list)  # the first PROBLEMS_SHOWN skipped rows
    empties: int = 0
    named: bool = False
    longest: tuple[int, int, str] | None = None  # (segments, characters, text)
    preview: str = ""
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)
    # consent: numbers opted out of the job's family (excluded), and when each row may go
    optouts: frozenset[str] = frozenset()
    opted_out: int = 0
    hold: Callable[[str], float | None] = lambda to: None
    held: int = 0
    held_until: float | None = None

    def skip(self, line: int, raw: str, reason: str) -> None:
        self.empties += 1
        if len(self.empty) < PROBLEMS_SHOWN:
            self.empty.append(ProblemLine(line=line, raw=raw, reason=reason))

    def keep(self, to: str, name: str | None, body: str) -> None:
        due = self.hold(to)  # quiet hours at the job's time: the row waits for the window
        if due is not None:
            self.held += 1
            self.held_until = max(self.held_until or due, due)
        self.named = self.named or bool(name)
        self.preview = self.preview or body
        # Segment counting walks every character; identical texts are counted once.
        info = self.seen.get(body)
        if info is None:
            seg = segment_info(body)
            info = (seg.segments, seg.characters)
            if len(self.seen) < SEEN_TEXTS:
                self.seen[body] = info
        if self.longest is None or info > self.longest[:2]:
            self.longest = (info[0], info[1], body)
        payload: dict[str, Any] = {"to": to, "text": body}
        if name:
            payload["name"] = name
        self.spool.append(DraftRow(to, name, json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                                   body[:500], due))


def checked_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise UserError("Write the message text.", field="text")
    if len(text) > MAX_TEXT_LENGTH:
        raise UserError(f"The text is {len(text):,} characters; the limit is {MAX_TEXT_LENGTH:,}. "
                        "Shorten it.", field="text")
    return text


def due_time(when: datetime | None, now: float) -> float | None:
    """The job's due time; None to send at once (a time within a second counts as now)."""
    if when is None:
        return None
    ts = when.timestamp()
    if ts < now - 60:
        raise UserError("That time is in the past. Choose a future time, or leave it empty to send now.",
                        field="when")
    return ts if ts > now + 1 else None


def render(recipients: Recipients, text: str, out: Rendered) -> None:
    """Every recipient's text, spooled; empty or too long ones are skipped rows."""
    renderer = Renderer(text) if placeholders(text) else None
    for r in recipients.iter_rows():
        if r.to in out.optouts:
            out.opted_out += 1  # never stored: the confirmation says "12 opted out, excluded"
            continue
        body = renderer(r).strip() if renderer is not None else text
        if not body:
            out.skip(r.line, r.to, "The message is empty for this recipient (its placeholder values are blank).")
        elif len(body) > MAX_TEXT_LENGTH:
            # The same limit as `/sms send`: the row is skipped, never sent cut or refused late.
            out.skip(r.line, r.to, f"text would be {len(body):,} characters; the limit is {MAX_TEXT_LENGTH:,}")
        else:
            out.keep(r.to, r.name, body)
    out.seen.clear()


def name_note(recipients: Recipients) -> str:
    if isinstance(recipients, RecipientStream):
        columns = ", ".join(f"`{c}`" for c in recipients.columns)
        fix = (f"Columns in the file: {columns}. Name the column `name` (or `first_name` / "
               "`full_name`), or use another placeholder.")
    else:
        fix = "Put each name after its number (`+16175551212, Jane`), or remove {name}."
    return ("The text uses {name} but no recipient has a name, so it will be blank "
            f"(\"Hi {{name}}\" sends \"Hi \"). {fix}")


def consent_notes(rendered: Rendered, tz: str | None) -> list[str]:
    """"12 opted out, excluded" and "30 wait for quiet hours until ...", first among the notes."""
    notes = []
    if rendered.opted_out:
        notes.append(f"{rendered.opted_out:,} opted out, excluded.")
    if rendered.held and rendered.held_until is not None:
        notes.append(f"{plural(rendered.held, 'recipient')} in quiet hours (SMS_QUIET_HOURS, their local time): "
                     f"{'it waits' if rendered.held == 1 else 'they wait'} for the window to open, the last until "
                     f"{when_words(rendered.held_until, tz)}.")
    return notes


def recheck_quiet(jobs: BulkStore, quiet: QuietPolicy, job_id: int, drafted_at: float, now: float,
                  job_due: float | None) -> int:
    """Quiet hours were judged when the draft was built; a draft confirmed later (a minute or
    more) is judged again at its send time, so no row goes out in a window that began meanwhile.
    Returns the rows held later than before."""
    if not quiet.on or now - drafted_at < 60:
        return 0
    at = job_due if job_due is not None and job_due > now else now
    holds = [(until, mid) for mid, to, due in jobs.draft_rows(job_id)
             if (until := quiet.hold_until(to, max(at, due))) is not None and until > due]
    jobs.hold_rows(holds)
    return len(holds)


class Draft:
    """Turns a parsed recipient list and a text into a stored draft and its plan."""

    def __init__(self, jobs: BulkStore, senders: Senders, consent: ConsentBook | None = None,
                 quiet: QuietPolicy | None = None) -> None:
        self.jobs = jobs
        self.senders = senders
        self.consent = consent or ConsentBook(jobs.store)
        self.quiet = quiet or QuietPolicy(None)

    def _consent(self, rendered: Rendered, sender: str, due: float) -> str | None:
        """The job's family; its opt-outs and quiet hours go into `rendered`."""
        family = send_family(sender, None, False)
        book = self.consent.queries
        rendered.optouts = (book.opted_out_numbers(family) if family is not None
                            else book.opted_out_numbers("sms") | book.opted_out_numbers("whatsapp"))
        if self.quiet.on:
            rendered.hold = lambda to: self.quiet.hold_until(to, due)
        return family

    def build(self, recipients: Recipients, req: DraftRequest, now: float | None = None) -> BulkPlan:
        now = time.time() if now is None else now
        provider = self.senders.get(req.sender)
        if provider is None:
            raise UserError(f"Sender '{req.sender}' is not configured. Configured senders: "
                            f"{', '.join(self.senders.names())}.", field="sender")
        text = checked_text(req.text)
        due = due_time(req.when, now)
        rendered = Rendered()
        family = self._consent(rendered, req.sender, due if due is not None else now)
        try:
            render(recipients, text, rendered)
            plan_fields = self.plan_fields(recipients, rendered, req, text, provider)
            plan_fields["due_at"] = due
            job = NewBulkJob(
                idem_key=req.idem_key, sender=req.sender, mode=plan_fields["mode"], text=text, plan=plan_fields,
                total=rendered.spool.count, duplicates_removed=recipients.duplicates_removed,
                invalid_rows=plan_fields["invalid"], due_at=due, created_by=req.user_id, user_name=req.user_name,
                user_tz=req.user_tz, channel_id=req.channel_id, source=req.source, consent_family=family,
            )
            job_id, created = self.jobs.create_draft(job, rendered.spool, now=now)
        finally:
            rendered.spool.close()
        if not created:
            existing = self.jobs.get(job_id)
            if existing is not None:
                return BulkPlan.model_validate({**existing.plan, "job_id": job_id})
        return BulkPlan.model_validate({**plan_fields, "job_id": job_id})

    def plan_fields(self, recipients: Recipients, rendered: Rendered, req: DraftRequest, text: str,
                    provider: Provider) -> dict[str, Any]:
        """The plan (stored with the draft), once the rows were read: a stream counts as it goes."""
        parsed = recipients.problems
        invalid = len(parsed) + rendered.empties
        if not rendered.spool.count or rendered.longest is None or rendered.spool.first is None:
            shown: list[RowProblem | ProblemLine] = [*parsed[:3], *rendered.empty[:3]]
            first = "; ".join(f"line {p.line}: {p.reason}" for p in shown[:3])
            if rendered.opted_out:
                first = f"{plural(rendered.opted_out, 'recipient')} opted out, excluded. {first}"
            raise UserError(f"No valid recipients. {first}".strip(), field="recipients")
        longest = rendered.longest[2]
        found = provider.validate(OutboundMessage(to=rendered.spool.first.to, text=longest))
        if found:
            raise UserError(" ".join(found), field="text")
        seg = segment_info(longest)
        personalised = bool(placeholders(text))
        native = req.sender in SOCIOCS_SENDERS and hasattr(provider, "send_bulk")
        # Both lists are in line order: the first lines of the two are the first lines of all.
        problems = sorted([*(ProblemLine(line=p.line, raw=p.raw, reason=p.reason)
                             for p in parsed[:PROBLEMS_SHOWN]), *rendered.empty], key=lambda p: p.line)
        notes = list(recipients.notes)
        if "name" in placeholders(text) and not rendered.named:
            notes.insert(0, name_note(recipients))
        notes[:0] = consent_notes(rendered, req.user_tz)
        return {
            "sender": req.sender, "sender_label": provider.label,
            "mode": "provider_bulk" if native and not personalised else "per_recipient",
            "valid": rendered.spool.count, "total_rows": recipients.total_rows,
            "duplicates_removed": recipients.duplicates_removed, "allow_duplicates": req.allow_duplicates,
            "invalid": invalid, "problems": [p.model_dump() for p in problems[:PROBLEMS_SHOWN]], "notes": notes,
            "encoding": seg.encoding, "segments": seg.segments, "characters": seg.characters,
            "preview": rendered.preview, "personalised": personalised, "native_bulk_sender": native,
            "due_at": None, "user_tz": req.user_tz, "source_label": req.source_label,
            "opted_out": rendered.opted_out, "quiet_waiting": rendered.held, "quiet_until": rendered.held_until,
        }
