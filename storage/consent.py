"""Consent statements: the opt-out state per (number, family), its audit trail, and the check
every claim runs in the transaction that marks rows `sending`.

Families are "sms" and "whatsapp" (bot.core.consent.rules decides which a send belongs to).
The audit trail (`consent_log`) is append-only: an opt-in changes the state row, never the
history. Rules about who may lift what live in bot/core/consent/book.py; the one rule kept
here, in the same transaction as the write, is that a manual opt-in never lifts an opt-out
the recipient made (`opt_in(..., by_recipient=False)` answers "recipient_only").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from storage.store import Store

FAMILIES = ("sms", "whatsapp")
STOPPED_KIND = "opted_out"  # messages.error_kind of a row a claim stopped
OptInResult = Literal["opted_in", "not_opted_out", "recipient_only"]

# How each source reads in "not sent: opted out on 30 Nov via STOP reply".
SOURCE_WORDS = {
    "textus_event": "a TextUs opt-out event",
    "sociocs_blocked_contact": "a contact blocked in Sociocs",
    "provider_error_21610": "Twilio error 21610 (unsubscribed recipient)",
    "provider_error_textus_opted_out": "TextUs refusing the send (opted out)",
    "manual": "a manual opt-out",
    "import": "an imported list",
    "sync_textus": "TextUs' opt-out list",
    "sync_sociocs": "a contact blocked in Sociocs",
}


def source_words(source: str) -> str:
    if source.startswith("keyword_"):
        return f"{source.removeprefix('keyword_')} reply"
    return SOURCE_WORDS.get(source, source)


class ConsentState(NamedTuple):
    number: str
    family: str
    opted_out: bool
    by_recipient: bool
    source: str
    reason: str | None
    actor: str | None
    changed_at: float
    confirmed_at: float | None

    @classmethod
    def from_db(cls, r: Any) -> ConsentState:
        return cls(str(r["number"]), str(r["family"]), bool(r["opted_out"]), bool(r["by_recipient"]),
                   str(r["source"]), r["reason"], r["actor"], float(r["changed_at"]), r["confirmed_at"])

    def words(self) -> str:
        """"opted out on 30 Nov via STOP reply" (the date in UTC)."""
        day = datetime.fromtimestamp(self.changed_at, UTC).strftime("%-d %b")
        return f"opted out on {day} via {source_words(self.source)}"


class LogEntry(NamedTuple):
    id: int
    number: str
    family: str
    action: str
    source: str
    by_recipient: bool
    actor: str | None
    reason: str | None
    at: float


_STATE_COLS = "number, family, opted_out, by_recipient, source, reason, actor, changed_at, confirmed_at"


def _marks(n: int) -> str:
    return ",".join("?" for _ in range(n))


def opted_out_states(conn: Any, numbers: Sequence[str]) -> dict[tuple[str, str], ConsentState]:
    """The opt-outs in force for these numbers, by (number, family): one read on the primary key.

    `opted_out` is filtered here, not in SQL: a condition on it lets a planner pick the
    (opted_out, changed_at) index and scan every opt-out (84 ms a claim with 100,000)."""
    if not numbers:
        return {}
    rows = conn.execute(
        f"SELECT {_STATE_COLS} FROM consent_state WHERE number IN ({_marks(len(numbers))})", tuple(numbers),
    ).fetchall()
    return {(str(r["number"]), str(r["family"])): ConsentState.from_db(r) for r in rows if r["opted_out"]}


def blocking(states: dict[tuple[str, str], ConsentState], number: str, family: str | None) -> ConsentState | None:
    """The opt-out that stops a row (family None: any family's), or None."""
    if family is not None:
        return states.get((number, family))
    return next((states[(number, f)] for f in FAMILIES if (number, f) in states), None)


def stop_opted_out(conn: Any, rows: Sequence[Any], now: float) -> tuple[list[Any], dict[int, str]]:
    """The claim-time consent check, inside the transaction that marks rows `sending`.

    Rows (with to_number, consent_family, consent_exempt) whose number is opted out for
    their family become `failed` with error_kind "opted_out" and the reason in words.
    Returns (rows to send, {stopped id: reason}). One read when nobody is opted out."""
    checked = [r for r in rows if not r["consent_exempt"]]
    states = opted_out_states(conn, sorted({str(r["to_number"]) for r in checked}))
    if not states:
        return list(rows), {}
    stopped: dict[int, str] = {}
    for r in checked:
        state = blocking(states, str(r["to_number"]), r["consent_family"])
        if state is not None:
            stopped[int(r["id"])] = state.words()
    if stopped:
        conn.executemany(
            "UPDATE messages SET status = 'failed', error = ?, error_kind = ?, lease_owner = NULL,"
            " lease_until = NULL, updated_at = ? WHERE id = ?",
            [(reason, STOPPED_KIND, now, mid) for mid, reason in stopped.items()],
        )
    return [r for r in rows if int(r["id"]) not in stopped], stopped


class ConsentQueries:
    """The statements consent needs; every change appends to consent_log in its transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _log(self, conn: Any, number: str, family: str, action: str, source: str, by_recipient: bool,
             actor: str | None, reason: str | None, now: float) -> None:
        conn.execute(
            "INSERT INTO consent_log (number, family, action, source, by_recipient, actor, reason, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (number, family, action, source, int(by_recipient), actor, reason, now),
        )

    def _current(self, conn: Any, number: str, family: str) -> ConsentState | None:
        row = conn.execute(f"SELECT {_STATE_COLS} FROM consent_state WHERE number = ? AND family = ?"
                           f"{self.store.lock_sql}", (number, family)).fetchone()
        return ConsentState.from_db(row) if row else None

    def opt_out(self, number: str, family: str, *, source: str, by_recipient: bool, actor: str | None = None,
                reason: str | None = None, now: float | None = None) -> bool:
        """Record an opt-out; True when the number was not opted out before (a new opt-out).

        A recipient's opt-out over a manual one takes it over (only they may lift it then);
        a manual one over the recipient's changes nothing."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            cur = self._current(conn, number, family)
            if cur is not None and cur.opted_out and (cur.by_recipient or not by_recipient):
                return False
            conn.execute(
                f"INSERT INTO consent_state ({_STATE_COLS}) VALUES (?, ?, 1, ?, ?, ?, ?, ?, NULL)"
                " ON CONFLICT (number, family) DO UPDATE SET opted_out = 1, by_recipient = excluded.by_recipient,"
                " source = excluded.source, reason = excluded.reason, actor = excluded.actor,"
                " changed_at = excluded.changed_at, confirmed_at = NULL",
                (number, family, int(by_recipient), source, reason, actor, now),
            )
            self._log(conn, number, family, "opt_out", source, by_recipient, actor, reason, now)
            return cur is None or not cur.opted_out

    def opt_in(self, number: str, family: str, *, source: str, by_recipient: bool, actor: str | None = None,
               reason: str | None = None, now: float | None = None) -> OptInResult:
        """Lift an opt-out. A manual opt-in (by_recipient False) never lifts the recipient's own."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            cur = self._current(conn, number, family)
            if cur is None or not cur.opted_out:
                return "not_opted_out"
            if cur.by_recipient and not by_recipient:
                self._log(conn, number, family, "opt_in_refused", source, by_recipient, actor, reason, now)
                return "recipient_only"
            conn.execute(
                "UPDATE consent_state SET opted_out = 0, by_recipient = ?, source = ?, reason = ?, actor = ?,"
                " changed_at = ?, confirmed_at = NULL WHERE number = ? AND family = ?",
                (int(by_recipient), source, reason, actor, now, number, family),
            )
            self._log(conn, number, family, "opt_in", source, by_recipient, actor, reason, now)
            return "opted_in"

    def claim_confirmation(self, number: str, family: str, now: float | None = None) -> bool:
        """True once per opt-out: the one confirmation text may be sent."""
        now = time.time() if now is None else now
        with self.store.write() as conn:
            return bool(conn.execute(
                "UPDATE consent_state SET confirmed_at = ? WHERE number = ? AND family = ? AND opted_out = 1"
                " AND confirmed_at IS NULL", (now, number, family)).rowcount == 1)

    def state(self, number: str, family: str) -> ConsentState | None:
        return self._current(self.store.conn, number, family)

    def opted_out(self, numbers: Sequence[str]) -> dict[tuple[str, str], ConsentState]:
        return opted_out_states(self.store.conn, numbers)

    def opted_out_numbers(self, family: str) -> frozenset[str]:
        """Every number opted out of `family` (a bulk draft checks its whole list against it)."""
        rows = self.store.conn.execute(
            "SELECT number FROM consent_state WHERE opted_out = 1 AND family = ?", (family,))
        return frozenset(str(r[0]) for r in rows)

    def page(self, limit: int = 20, offset: int = 0) -> tuple[list[ConsentState], int]:
        """Opted-out states, newest first, and how many there are."""
        total = int(self.store.conn.execute("SELECT count(*) FROM consent_state WHERE opted_out = 1").fetchone()[0])
        rows = self.store.conn.execute(
            f"SELECT {_STATE_COLS} FROM consent_state WHERE opted_out = 1 ORDER BY changed_at DESC, number, family"
            " LIMIT ? OFFSET ?", (limit, offset)).fetchall()
        return [ConsentState.from_db(r) for r in rows], total

    def all_opted_out(self) -> Iterable[ConsentState]:
        for r in self.store.conn.execute(
                f"SELECT {_STATE_COLS} FROM consent_state WHERE opted_out = 1 ORDER BY number, family"):
            yield ConsentState.from_db(r)

    def history(self, number: str) -> list[LogEntry]:
        rows = self.store.conn.execute(
            "SELECT id, number, family, action, source, by_recipient, actor, reason, at FROM consent_log"
            " WHERE number = ? ORDER BY id", (number,)).fetchall()
        return [LogEntry(int(r[0]), r[1], r[2], r[3], r[4], bool(r[5]), r[6], r[7], float(r[8])) for r in rows]

    def known_numbers(self, limit: int = 10_000) -> list[str]:
        """Numbers we have sent to, most recent first (`smsbot optouts sync` asks Sociocs about them)."""
        rows = self.store.conn.execute(
            "SELECT to_number FROM messages GROUP BY to_number ORDER BY max(created_at) DESC LIMIT ?", (limit,))
        return [str(r[0]) for r in rows]
