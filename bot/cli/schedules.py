"""`smsbot list` and `smsbot cancel ID`: pending schedules from a terminal.

Whoever runs the CLI has the database, so it sees and cancels everyone's schedules. A
cancel also redraws the message in Slack and notes it in the thread when a bot token is set.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from bot.cli.main import APP, configured, wiring
from bot.cli.output import Column, json_option, show_rows
from bot.core.input.phone import display
from bot.core.schedules import Outcome, ScheduleResult, ScheduleRules, first_words, when_label
from storage import open_store


def list_columns(tz: str) -> list[Column]:
    return [Column("ID", "id"), Column(f"WHEN ({tz})", "when"), Column("TO", "to"), Column("VIA", "via"),
            Column("BY", "by"), Column("TEXT", "text", wrap=True)]


@APP.command("list", short_help="list pending scheduled messages", help="List pending scheduled messages, soonest first.")
@click.option("--user", default=None, help="only this Slack user id's schedules")
@click.option("--tz", default="UTC", show_default=True, help="time zone for the times shown")
@click.option("--limit", type=int, default=100, show_default=True, help="at most this many rows")
@json_option
def list_command(user: str | None, tz: str, limit: int, as_json: bool) -> int:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"error: unknown time zone '{tz}', e.g. America/New_York", file=sys.stderr)
        return 2
    store = open_store(configured().database_url)
    total = store.count_pending(created_by=user)
    rows = store.pending(created_by=user, limit=max(1, limit))
    if as_json:  # whole values for scripts: ISO time, E.164 number, the full summary
        show_rows(list_columns(tz), [(r.id, datetime.fromtimestamp(r.due_at, UTC).isoformat(), r.to_number,
                                      r.sender, r.created_by or r.user_name or r.source, r.summary) for r in rows],
                  as_json=True)
        return 0
    if not rows:
        print("No scheduled messages are pending.")
        return 0
    now = datetime.now(UTC)
    show_rows(list_columns(tz), [(r.id, when_label(r.due_at, tz, now), display(r.to_number), r.sender,
                                  r.created_by or r.user_name or r.source, first_words(r.summary, 40)) for r in rows],
              as_json=False)
    if total > len(rows):
        print(f"... and {total - len(rows)} more (use --limit).")
    return 0


@APP.command("cancel", short_help="cancel scheduled message(s) by id", help="Cancel scheduled message(s) by id.")
@click.argument("ids", nargs=-1, type=int, required=True, metavar="ID...")
def cancel_command(ids: tuple[int, ...]) -> int:
    settings = configured()
    store = open_store(settings.database_url)
    rules = ScheduleRules(store, settings)
    announcer = wiring().announcer(settings, store)
    failures = 0
    for mid in ids:
        # The operator: whoever runs the CLI has the database, so any schedule is theirs to cancel.
        res = rules.cancel(mid, None, operator=True, now=time.time())
        if res.outcome == Outcome.DONE and res.row is not None:
            print(f"#{mid} canceled; it will not be sent.")
            if announcer is not None:
                announcer.schedule_changed(res.row, ":no_entry_sign: Canceled from the command line; "
                                                    "it will not be sent.")
            continue
        failures += 1
        print(f"error: {why_not(res)}", file=sys.stderr)
    return 1 if failures else 0


def why_not(res: ScheduleResult) -> str:
    mid = res.message_id
    if res.outcome == Outcome.NOT_FOUND:
        return f"there is no message #{mid}"
    if res.status in ("claimed", "sending"):
        return f"#{mid} is already being sent; nothing was canceled"
    return f"#{mid} is {res.status}; nothing was canceled"
