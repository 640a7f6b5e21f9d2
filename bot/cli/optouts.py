"""`smsbot optouts`: list, import, export and sync opted-out numbers (the same ConsentBook as Slack).

CSV columns (export writes them, import reads them; only `number` is required):
  number        E.164 or national (SMS_DEFAULT_REGION)
  family        sms | whatsapp | all (default all)
  by_recipient  yes if the recipient opted out themselves (then only they can opt back in); default no
  source        where it came from (export only; an import records "import")
  reason        free text
  actor         who recorded it (export only)
  opted_out_at  ISO 8601 UTC (export only)
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO

from bot.cli.history import _cell
from bot.cli.main import EXTENSIONS
from bot.core.config import Settings
from bot.core.consent.book import ConsentBook
from bot.core.input.phone import InvalidNumber, display, normalize
from storage import open_store
from storage.consent import FAMILIES, ConsentState

COLUMNS = ["number", "family", "by_recipient", "source", "reason", "actor", "opted_out_at"]
YES = {"yes", "y", "true", "1"}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="optouts_command")
    listing = sub.add_parser("list", help="opted-out numbers, newest first (the default)")
    listing.add_argument("--page", type=int, default=1)
    imp = sub.add_parser("import", help="record the opt-outs in a CSV file (columns: see `smsbot optouts --help`)")
    imp.add_argument("file")
    exp = sub.add_parser("export", help="write every opt-out in force as CSV")
    exp.add_argument("--out", default=None, help="file to write (default: stdout)")
    sub.add_parser("sync", help="import the opt-outs TextUs and Sociocs already hold")
    parser.epilog = __doc__.split("\n", 2)[2] if __doc__ else None
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def state_row(s: ConsentState) -> list[str]:
    when = datetime.fromtimestamp(s.changed_at, UTC).isoformat(timespec="seconds")
    # A reason is typed by a person: defused like message text in `smsbot export` (import undoes it).
    return [s.number, s.family, "yes" if s.by_recipient else "no", s.source, _cell(s.reason), s.actor or "", when]


def _undefused(reason: str) -> str:
    """A reason as it was before export defused it (the quote `_cell` put before a formula)."""
    return reason[1:] if reason.startswith("'") and _cell(reason[1:]) == reason else reason


def write_csv(states: Iterable[ConsentState], out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for s in states:
        writer.writerow(state_row(s))
        count += 1
    return count


def import_csv(book: ConsentBook, fh: IO[str], region: str) -> tuple[int, list[str]]:
    """(numbers newly opted out, problems by line); a bad line is skipped, never half-applied."""
    reader = csv.DictReader(fh)
    rows = list(reader)  # a csv.Error is raised here, before anything is applied
    if not reader.fieldnames or "number" not in [f.strip().lower() for f in reader.fieldnames]:
        return 0, ["line 1: needs a `number` column (see `smsbot optouts --help` for the columns)"]
    added, problems = 0, []
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        family = row.get("family", "").lower() or "all"
        if family not in (*FAMILIES, "all"):
            problems.append(f"line {line}: family {family[:20]!r} is not sms, whatsapp or all")
            continue
        try:
            number = normalize(row.get("number", ""), region)
        except InvalidNumber as exc:
            problems.append(f"line {line}: {exc}")
            continue
        families = FAMILIES if family == "all" else (family,)
        by_recipient = row.get("by_recipient", "").lower() in YES
        new = book.opt_out(number, families, source="import", by_recipient=by_recipient, actor="cli",
                           reason=_undefused(row.get("reason", "")) or None)
        added += bool(new)
    return added, problems


def sync(book: ConsentBook, settings: Settings) -> list[str]:
    """The providers' own opt-outs into the book; one line per provider saying what happened."""
    from bot.core.senders import build_senders
    from providers.base import ProviderError
    from providers.optouts import sociocs_is_blocked, textus_opt_outs
    from providers.sociocs import SociocsProvider
    from providers.textus import TextusProvider

    senders = build_senders(settings)
    lines: list[str] = []
    textus = senders.get("textus") if "textus" in senders.names() else None
    if isinstance(textus, TextusProvider):
        try:
            numbers = textus_opt_outs(textus)
            new = sum(bool(book.opt_out(n, FAMILIES, source="sync_textus", by_recipient=True)) for n in numbers)
            lines.append(f"TextUs: {len(numbers)} opt-out(s) listed, {new} new.")
        except ProviderError as exc:
            lines.append(f"TextUs: failed: {exc}")
    sociocs = next((p for n in ("twlo", "twlowa", "gswa") if isinstance(p := senders.get(n), SociocsProvider)
                    and n in senders.names()), None)
    if isinstance(sociocs, SociocsProvider):
        known = book.queries.known_numbers()
        try:
            blocked = [n for n in known if sociocs_is_blocked(sociocs, n)]
            new = sum(bool(book.opt_out(n, FAMILIES, source="sync_sociocs", by_recipient=True)) for n in blocked)
            lines.append(f"Sociocs: {len(known)} known number(s) asked, {len(blocked)} blocked, {new} new.")
        except ProviderError as exc:
            lines.append(f"Sociocs: failed: {exc}")
    return lines or ["Neither TextUs nor Sociocs is configured: nothing to sync."]


def run(args: argparse.Namespace, settings: Settings) -> int:
    book = ConsentBook(open_store(settings.database_url), settings)
    command = args.optouts_command or "list"
    if command == "import":
        try:
            with open(args.file, newline="", encoding="utf-8-sig") as fh:
                text = fh.read()  # decoded whole: a bad byte at the end imports nothing either
            added, problems = import_csv(book, io.StringIO(text, newline=""), settings.sms_default_region)
        except OSError as exc:
            print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 2
        except (UnicodeDecodeError, csv.Error) as exc:
            what = (f"is not UTF-8 text (byte {exc.start}): save it as \"CSV UTF-8\"" if isinstance(exc, UnicodeDecodeError)
                    else f"is not a readable CSV file ({exc})")
            print(f"error: {args.file} {what}; nothing was imported.", file=sys.stderr)
            return 2
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{added} number(s) newly opted out; {len(problems)} line(s) skipped.")
        return 1 if problems else 0
    if command == "export":
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                count = write_csv(book.queries.all_opted_out(), out)
            print(f"Wrote {count} opt-out(s) to {args.out}.", file=sys.stderr)
        else:
            write_csv(book.queries.all_opted_out(), sys.stdout)
        return 0
    if command == "sync":
        for line in sync(book, settings):
            print(line)
        return 0
    page = max(1, getattr(args, "page", 1) or 1)
    states, total = book.queries.page(limit=50, offset=(page - 1) * 50)
    print(f"{total} opt-out(s) in force (page {page}):")
    for s in states:
        print(f"  {display(s.number)}  {s.family:<8}  {s.words()}" + (f"  ({s.reason})" if s.reason else ""))
    return 0


EXTENSIONS["optouts"] = ("list, import, export and sync opted-out numbers", (configure, run))
