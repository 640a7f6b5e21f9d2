"""What the commands print: rich tables (or JSON for scripts) on stdout, progress bars on stderr.

Listing commands share `show_rows`: one list of columns, one list of rows, and `--json`
(`json_option`) prints the same rows as a JSON array of objects instead, keyed by column.
Progress goes to stderr so `smsbot export > file.csv` and `| jq` stay clean.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Column:
    title: str  # shown in the table header
    key: str  # the JSON key
    wrap: bool = False  # the one column that may wrap on a narrow terminal (message text)


def json_option(func: F) -> F:
    """`--json`: rows as a JSON array for scripts, instead of the table."""
    return click.option("--json", "as_json", is_flag=True, help="print JSON (an array of objects) instead of a table")(
        func)


def stdout_console() -> Console:
    # Not a terminal (a pipe, a file, a test): no width limit, so rows never wrap or get cut.
    return Console(file=sys.stdout, width=None if sys.stdout.isatty() else 10_000, highlight=False)


def show_rows(columns: Sequence[Column], rows: Sequence[Sequence[Any]], *, as_json: bool,
              console: Console | None = None) -> None:
    """The rows as a table (borderless, one line each), or as JSON objects keyed by column."""
    if as_json:
        print(json.dumps([{c.key: v for c, v in zip(columns, row, strict=True)} for row in rows],
                         ensure_ascii=False, indent=2))
        return
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column.title, no_wrap=not column.wrap, overflow="fold" if column.wrap else "ellipsis")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    console = console or stdout_console()
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:  # a pipe or a file: no trailing padding on each line
        console.print(table)
    for line in captured.get().splitlines():
        print(line.rstrip(), file=console.file)


class RateColumn(ProgressColumn):
    """Items per second over the bar's recent samples."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "   -/s", style="progress.data.speed")


def progress_bar(what: str, stderr: Console | None = None) -> Progress:
    """A bar with count, rate, elapsed time and ETA on stderr. On a terminal it redraws in
    place; elsewhere (a log file, CI) it prints once, when it stops."""
    console = stderr or Console(stderr=True, highlight=False)
    return Progress(
        TextColumn(f"[bold]{what}[/bold]"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TextColumn("{task.fields[note]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, speed_estimate_period=10.0,
    )


@contextmanager
def counting(what: str, total: int | None, stderr: Console | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar for a loop: yields `advance(n)`."""
    with progress_bar(what, stderr) as bar:
        task = bar.add_task(what, total=total, note="")

        def advance(n: int) -> None:
            bar.advance(task, n)

        yield advance
