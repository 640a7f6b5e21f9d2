"""`smsbot export`: the send history as CSV, on stdout or in a file, with a progress bar on stderr.

Every cell is redacted on the way out and formulas from message text are defused; the
operator sees every confirmed message, `--user` applies that person's view.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import IO, Any

import click

from bot.cli.main import APP, configured
from bot.cli.output import counting
from bot.core.config import Settings
from bot.core.visibility import viewer_for
from providers.base import redact
from storage import open_store
from storage.figures import Figures
from storage.store import MessageRow, Viewer

CSV_FIELDS = ["id", "created_at", "sent_at", "sent_by", "sent_by_name", "to", "name", "sender", "text", "status",
              "delivery", "error", "provider_message_id", "source", "bulk_job_id"]


def parse_since(text: str) -> float:
    """`2024-05-01` (midnight UTC) or an ISO 8601 date-time (UTC unless it has an offset)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a date: use YYYY-MM-DD or 2024-05-01T09:00:00-04:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _iso(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else ""


def _cell(value: Any) -> str:
    """Text as it should sit in a spreadsheet: formulas from message text are defused."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "@", "\t", "\r") or (text[:1] in ("+", "-") and not text[1:].replace(" ", "").isdigit()):
        return "'" + text
    return text


def export_rows(rows: Iterable[MessageRow]) -> Iterator[list[str]]:
    for row in rows:
        text = row.payload.get("text") if isinstance(row.payload, dict) else None
        error = row.delivery_error if row.delivery == "failed" else row.error
        yield [_cell(v) for v in (
            row.id, _iso(row.created_at), _iso(row.sent_at), row.created_by, row.user_name, row.to_number, row.name,
            row.sender, text if text is not None else row.summary, row.status, row.delivery, error,
            row.provider_message_id, row.source, row.bulk_job_id,
        )]


def write_csv(rows: Iterable[MessageRow], out: IO[str], secrets: list[str] | None = None,
              advance: Callable[[int], None] | None = None) -> int:
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    count = 0
    for line in export_rows(rows):
        writer.writerow([redact(cell, secrets) for cell in line] if secrets else line)
        count += 1
        if advance is not None and count % 100 == 0:
            advance(100)
    if advance is not None:
        advance(count % 100)
    return count


def export_viewer(settings: Settings, user: str | None) -> Viewer:
    """The operator sees every confirmed message; `--user` applies that person's view."""
    return viewer_for(settings, user.strip()) if user and user.strip() else Viewer.operator()


@APP.command("export", short_help="write the send history as CSV",
             help="Write the send history as CSV (to stdout, or --out FILE), with a progress bar on stderr.")
@click.option("--since", required=True, callback=lambda _ctx, _param, value: parse_since(value),
              help="YYYY-MM-DD or ISO 8601 date-time")
@click.option("--out", default=None, help="file to write (default: stdout)")
@click.option("--user", default=None, metavar="U123",
              help="only what this Slack user may see in /sms status (default: every confirmed message)")
def export_command(since: float, out: str | None, user: str | None) -> int:
    return run_export(SimpleNamespace(since=since, out=out, user=user), configured())


def run_export(args: Any, settings: Settings) -> int:
    """`args`: since (epoch seconds), out (a path or None: stdout), user (a Slack id or None)."""
    store = open_store(settings.database_url)
    # Rows stored before redaction covered every path (or by a future bug) must not leak a
    # configured secret into a file people pass around: every cell is redacted on the way out.
    secrets = settings.secret_values()
    viewer = export_viewer(settings, getattr(args, "user", None))
    total = Figures(store).count_since(args.since, viewer)
    with counting("Export", total) as advance:
        rows = store.since(args.since, viewer)
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as fh:
                count = write_csv(rows, fh, secrets, advance)
        else:
            count = write_csv(rows, sys.stdout, secrets, advance)
    if args.out:
        print(f"Wrote {count} message(s) to {args.out}.", file=sys.stderr)
    return 0
