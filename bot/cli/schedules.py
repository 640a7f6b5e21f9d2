"""`smsbot list` and `smsbot cancel ID`: pending schedules from a terminal.

Whoever runs the CLI has the database, so it sees and cancels everyone's schedules. A
cancel also redraws the message in Slack and notes it in the thread when a bot token is set.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.cli.main import EXTENSIONS, wiring
from bot.core.config import Settings
from bot.core.input.phone import display
from bot.core.schedules import Outcome, ScheduleResult, ScheduleRules, first_words, when_label
from storage import open_store


def configure_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", default=None, help="only this Slack user id's schedules")
    parser.add_argument("--tz", default="UTC", help="time zone for the times shown (default UTC)")
    parser.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    try:
        ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"error: unknown time zone '{args.tz}', e.g. America/New_York", file=sys.stderr)
        return 2
    store = open_store(settings.database_url)
    total = store.count_pending(created_by=args.user)
    rows = store.pending(created_by=args.user, limit=max(1, args.limit))
    if not rows:
        print("No scheduled messages are pending.")
        return 0
    now = datetime.now(UTC)
    table = [("ID", f"WHEN ({args.tz})", "TO", "VIA", "BY", "TEXT")]
    for row in rows:
        by = row.created_by or row.user_name or row.source
        table.append((str(row.id), when_label(row.due_at, args.tz, now), display(row.to_number),
                      row.sender, by, first_words(row.summary, 40)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if total > len(rows):
        print(f"... and {total - len(rows)} more (use --limit).")
    return 0


def configure_cancel(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="+", type=int, metavar="ID", help="message id(s), as `smsbot list` shows")


def run_cancel(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.database_url)
    rules = ScheduleRules(store, settings)
    announcer = wiring().announcer(settings, store)
    failures = 0
    for mid in args.ids:
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


EXTENSIONS["list"] = ("list pending scheduled messages", (configure_list, run_list))
EXTENSIONS["cancel"] = ("cancel scheduled message(s) by id", (configure_cancel, run_cancel))
