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

from bot.cli.main import EXTENSIONS
from bot.core.config import Settings
from bot.core.input.phone import display
from bot.slack.blocks.schedules import first_words, when_label
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
    notifier = None
    if settings.slack_bot_token:
        from bot.app.runtime import slack_client
        from bot.core.senders import build_senders
        from bot.slack.announcer import Notifier

        senders = build_senders(settings)
        notifier = Notifier(slack_client(settings), store, senders.label,
                            secrets=settings.secret_values() + senders.secrets())
    failures = 0
    for mid in args.ids:
        tr = store.cancel(mid, now=time.time())
        if tr.ok and tr.row is not None:
            print(f"#{mid} canceled; it will not be sent.")
            if notifier is not None and tr.row.thread_channel and tr.row.thread_ts:
                text, blocks = notifier.announce_blocks(tr.row)
                notifier.update(tr.row.thread_channel, tr.row.thread_ts, text, blocks)
                notifier.thread_reply(tr.row, ":no_entry_sign: Canceled from the command line; it will not be sent.")
            continue
        failures += 1
        if tr.status is None:
            print(f"error: there is no message #{mid}", file=sys.stderr)
        elif tr.status in ("claimed", "sending"):
            print(f"error: #{mid} is already being sent; nothing was canceled", file=sys.stderr)
        else:
            print(f"error: #{mid} is {tr.status}; nothing was canceled", file=sys.stderr)
    return 1 if failures else 0


EXTENSIONS["list"] = ("list pending scheduled messages", (configure_list, run_list))
EXTENSIONS["cancel"] = ("cancel scheduled message(s) by id", (configure_cancel, run_cancel))
