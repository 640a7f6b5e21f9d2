"""`smsbot bulk --via SENDER --csv FILE --text TEXT [--allow-duplicates] [--at WHEN]`.

The same engine as `/sms bulk`: the plan is printed (recipients, invalid rows, segments),
then the job runs here with a progress line on stderr and ends with the same summary.
Ctrl-C cancels the recipients not yet sent to (and still prints the summary).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from bot.cli.main import EXTENSIONS
from bot.core.bulk.models import BulkPlan, Progress
from bot.core.bulk.wording import consent_words, problem_lines, when_words
from bot.core.config import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--via", default=None, help="sender: twlo, twlowa, gswa, bird, textus, sandbox")
    parser.add_argument("--csv", required=True, help="CSV with a 'to' column (name and any others optional)")
    parser.add_argument("--text", required=True, help="message; {name} and {column} are filled per recipient")
    parser.add_argument("--allow-duplicates", action="store_true", help="send again to a repeated number")
    parser.add_argument("--at", default=None, help='when, e.g. "tomorrow 9am" or ISO 8601 (default: now)')
    parser.add_argument("--tz", default="UTC", help="time zone for --at (default UTC)")
    parser.add_argument("--failures", default=None, help="where to write the failure CSV "
                                                         "(default bulk-<id>-failures.csv)")


def bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "#" * filled + "." * (width - filled)


def progress_line(p: Progress) -> str:
    rate = f"  {p.rate:,.1f}/s" if p.rate else ""
    return (f"[{bar(p.done, p.total)}] {p.done:,}/{p.total:,}  sent {p.sent:,}  failed {p.failed:,}  "
            f"unknown {p.unknown:,}{rate}{consent_words(p, None)}")


def print_plan(plan: BulkPlan, out: TextIO) -> None:
    print(f"Bulk #{plan.job_id}: {plan.valid:,} recipients via {plan.sender_label} ({plan.sender}).", file=out)
    dup = ("duplicates allowed" if plan.allow_duplicates else f"duplicates removed: {plan.duplicates_removed:,}")
    print(f"Rows read: {plan.total_rows:,}; invalid rows skipped: {plan.invalid:,}; {dup}.", file=out)
    for line in problem_lines(plan.problems, plan.invalid):
        print("  " + line, file=out)
    print(f"Longest message: {plan.segments} segment(s), {plan.encoding}. Preview: {plan.preview[:200]}", file=out)
    if plan.native_bulk_sender:
        print("Personalised text: one message per recipient." if plan.personalised
              else "Sent as Sociocs bulk jobs of up to 1,000 recipients.", file=out)
    for note in plan.notes:
        print(f"Note: {note}", file=out)
    if plan.due_at is not None:
        print(f"Scheduled for {when_words(plan.due_at, plan.user_tz)}.", file=out)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.cli.main import when_from, wiring
    from bot.core.bulk.engine import BulkEngine
    from bot.core.input.recipients import CsvError, PlaceholderError, check_placeholders, iter_csv
    from bot.core.sending import UserError

    path = Path(args.csv)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        # Checked now; the rows are read one at a time by the draft (100,000 never sit in memory).
        parsed = iter_csv(data, settings.sms_default_region, args.allow_duplicates)
    except CsvError as exc:
        print(f"error: {path.name}: {exc}", file=sys.stderr)
        return 2
    del data
    unknown = check_placeholders(args.text, parsed.columns)
    if unknown:
        print(f"error: {PlaceholderError(unknown, ['name', 'to', *parsed.columns])}", file=sys.stderr)
        return 2
    when = when_from(args)
    rt = wiring().engines(settings)
    engine = BulkEngine(rt.store, rt.senders, dispatcher=rt.dispatcher, consent=rt.service.consent, quiet=rt.service.quiet, progress_interval=1.0,
                        max_attempts=settings.sms_max_attempts)
    try:
        sender = (args.via or rt.senders.default).strip().lower()
        try:
            plan = engine.draft(parsed, args.text, sender, allow_duplicates=args.allow_duplicates, when=when,
                                idem_key=f"cli:{time.time_ns()}", user_name="cli", user_tz=args.tz,
                                source="cli", source_label=f"file {path.name}")
        except UserError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
            return 2
        print_plan(plan, sys.stdout)
        engine.confirm(plan.job_id, post=False)
        if plan.due_at is not None:
            print(f"Bulk #{plan.job_id} is scheduled; a running worker (`smsbot worker` or `smsbot run`) sends it.")
            return 0
        rt.start_worker()
        engine.start()
        return follow(engine, plan.job_id, args.failures)
    finally:
        engine.stop()
        rt.stop()


def follow(engine: object, job_id: int, failures: str | None, err: TextIO | None = None) -> int:
    """Progress on stderr until the job is done; then the summary and the failure CSV."""
    from bot.core.bulk.engine import BulkEngine

    assert isinstance(engine, BulkEngine)
    err = err or sys.stderr
    samples: list[tuple[float, int]] = []
    canceled = False
    while True:
        try:
            job = engine.jobs.get(job_id)
            assert job is not None
            if job.status == "done":
                break
            p = engine.progress(job_id)
            now = time.monotonic()
            samples = [s for s in samples if now - s[0] <= 10] + [(now, p.done)]
            if now - samples[0][0] >= 1:
                p.rate = (p.done - samples[0][1]) / (now - samples[0][0])
            err.write("\r" + progress_line(p))
            err.flush()
            time.sleep(0.5)
        except KeyboardInterrupt:
            if canceled:
                raise
            canceled = True
            err.write("\n" + engine.cancel(job_id) + " Waiting for sends in flight…\n")
    job = engine.jobs.get(job_id)
    assert job is not None
    p = engine.progress(job_id)
    err.write("\r" + progress_line(p) + "\n")
    print(engine.summary(job, p).replace("attached CSV", "failure CSV"))
    if p.failed or p.unknown:
        target = Path(failures or f"bulk-{job_id}-failures.csv")
        with target.open("w", encoding="utf-8", newline="") as out:
            engine.write_failure_csv(job_id, out)  # streamed from the query
        print(f"Failed and unknown recipients: {target}")
        return 1
    return 0


EXTENSIONS["bulk"] = ("send one message to every recipient of a CSV", (configure, run))
