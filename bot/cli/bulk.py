"""`smsbot bulk --via SENDER --csv FILE --text TEXT [--allow-duplicates] [--at WHEN]`.

The same engine as `/sms bulk`: the plan is printed (recipients, invalid rows, segments),
then the job runs here with a progress bar on stderr (count, rate, ETA) and ends with the same summary.
Ctrl-C cancels the recipients not yet sent to (and still prints the summary).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

import click
from rich.console import Console

from bot.cli.main import APP, AT_HELP, VIA_HELP, configured, now_key, when_from, wiring
from bot.cli.output import progress_bar
from bot.core.bulk.engine import BulkEngine
from bot.core.bulk.models import BulkPlan, Progress
from bot.core.bulk.wording import consent_words, problem_lines, when_words


def progress_note(p: Progress) -> str:
    return f"sent {p.sent:,}  failed {p.failed:,}  unknown {p.unknown:,}{consent_words(p, None)}"


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


@APP.command("bulk", short_help="send one message to every recipient of a CSV",
             help="Send one message to every recipient of a CSV (the same engine as /sms bulk): the plan, "
                  "a progress bar on stderr, the summary and a CSV of what failed. Ctrl-C cancels the rest.")
@click.option("--via", default=None, help=VIA_HELP)
@click.option("--csv", "csv_path", required=True, help="CSV with a 'to' column (name and any others optional)")
@click.option("--text", required=True, help="message; {name} and {column} are filled per recipient")
@click.option("--allow-duplicates", is_flag=True, help="send again to a repeated number")
@click.option("--at", default=None, help=AT_HELP + " (default: now)")
@click.option("--tz", default="UTC", show_default=True, help="time zone for --at")
@click.option("--failures", default=None, help="where to write the failure CSV (default bulk-<id>-failures.csv)")
def run(via: str | None, csv_path: str, text: str, allow_duplicates: bool, at: str | None, tz: str,
        failures: str | None) -> int:
    from bot.core.input.recipients import CsvError, PlaceholderError, check_placeholders, iter_csv
    from bot.core.sending import UserError

    settings = configured()
    path = Path(csv_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        # Checked now; the rows are read one at a time by the draft (100,000 never sit in memory).
        parsed = iter_csv(data, settings.sms_default_region, allow_duplicates)
    except CsvError as exc:
        print(f"error: {path.name}: {exc}", file=sys.stderr)
        return 2
    del data
    unknown = check_placeholders(text, parsed.columns)
    if unknown:
        print(f"error: {PlaceholderError(unknown, ['name', 'to', *parsed.columns])}", file=sys.stderr)
        return 2
    when = when_from(at, tz)
    rt = wiring().engines(settings)
    engine = BulkEngine(rt.store, rt.senders, dispatcher=rt.dispatcher, progress_interval=1.0,
                        max_attempts=settings.sms_max_attempts, consent=rt.service.consent, quiet=rt.service.quiet)
    try:
        sender = (via or rt.senders.default).strip().lower()
        try:
            plan = engine.draft(parsed, text, sender, allow_duplicates=allow_duplicates, when=when,
                                idem_key=now_key(), user_name="cli", user_tz=tz,
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
        return follow(engine, plan.job_id, failures)
    finally:
        engine.stop()
        rt.stop()


def follow(engine: BulkEngine, job_id: int, failures: str | None, err: Console | None = None) -> int:
    """A progress bar on stderr until the job is done; then the summary and the failure CSV."""
    canceled = False
    with progress_bar(f"Bulk #{job_id}", err) as bar:
        task = bar.add_task("send", total=engine.progress(job_id).total, note="")
        while True:
            try:
                job = engine.jobs.get(job_id)
                assert job is not None
                p = engine.progress(job_id)
                bar.update(task, completed=p.done, total=p.total, note=progress_note(p))
                if job.status == "done":
                    break
                time.sleep(0.25)
            except KeyboardInterrupt:
                if canceled:
                    raise
                canceled = True
                bar.console.print(engine.cancel(job_id) + " Waiting for sends in flight…")
    job = engine.jobs.get(job_id)
    assert job is not None
    p = engine.progress(job_id)
    print(engine.summary(job, p).replace("attached CSV", "failure CSV"))
    if p.failed or p.unknown:
        target = Path(failures or f"bulk-{job_id}-failures.csv")
        with target.open("w", encoding="utf-8", newline="") as out:
            engine.write_failure_csv(job_id, out)  # streamed from the query
        print(f"Failed and unknown recipients: {target}")
        return 1
    return 0
