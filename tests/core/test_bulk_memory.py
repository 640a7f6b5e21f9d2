"""A 100,000-recipient bulk job must fit in memory: the draft reads the CSV one row at a time.

These check the behaviour that saves the memory (rows streamed, nothing kept per row but the
numbers seen for duplicates); bench/bulk.py prints the peak RSS of the whole process.
"""

from __future__ import annotations

import gc
import io
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.core.bulk.engine as bulk_module
from bot.core.bulk.engine import BulkEngine
from bot.core.input.recipients import (
    LazyRecipients,
    Recipient,
    RecipientRow,
    RecipientStream,
    iter_csv,
    parse_csv,
)
from bot.core.senders import Senders
from providers.sandbox import SandboxProvider
from storage.store import Store

TEXT = "Hi {name}, your order is ready"


def csv_text(n: int, offset: int = 0) -> str:
    return "to,name,city\n" + "".join(
        f"+1617{2000000 + offset + i:07d},Person {i},{'Boston' if i % 2 else ''}\n" for i in range(n)
    )


def make_engine(tmp_path: Path, name: str = "m.db") -> BulkEngine:
    return BulkEngine(Store(str(tmp_path / name)), Senders({"sandbox": SandboxProvider()}, "sandbox"))


def draft(engine: BulkEngine, recipients: Any, text: str = TEXT, key: str = "k") -> Any:
    return engine.draft(recipients, text, "sandbox", allow_duplicates=False, when=None, idem_key=key, now=1000.0)


def stored(engine: BulkEngine) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in engine.store.conn.execute(
        "SELECT idem_key, to_number, name, payload, summary, status FROM messages ORDER BY id")]


class _TrackedRow(RecipientRow):
    """A RecipientRow that counts itself while alive (a tuple takes no weak reference)."""

    alive = 0

    def __new__(cls, *args: Any) -> _TrackedRow:
        _TrackedRow.alive += 1
        return super().__new__(cls, *args)

    def __del__(self) -> None:
        _TrackedRow.alive -= 1


class Watched:
    """A RecipientStream whose rows are counted while alive: what the draft keeps, it shows."""

    def __init__(self, stream: RecipientStream) -> None:
        self.stream = stream
        self.most_alive = 0
        self.yielded = 0

    def iter_rows(self) -> Iterator[RecipientRow]:
        for row in self.stream:
            tracked = _TrackedRow(*row)
            self.most_alive = max(self.most_alive, _TrackedRow.alive)
            self.yielded += 1
            yield tracked
            del tracked

    def __getattr__(self, name: str) -> Any:  # problems, totals, notes, columns
        return getattr(self.stream, name)


def test_iter_csv_streams_compact_rows_once_and_counts_at_the_end() -> None:
    text = csv_text(5) + "not a number,X,\n+16172000001,Again,\n"
    stream = iter_csv(text)
    assert stream.columns == ["to", "name", "city"]  # known before any row is read
    with pytest.raises(RuntimeError, match="to the end"):
        _ = stream.total_rows
    rows = iter(stream)
    first = next(rows)
    assert isinstance(first, RecipientRow)
    assert first.fields == {"to": "+16172000000", "name": "Person 0", "city": ""}
    rest = list(rows)
    assert all(r.columns is first.columns for r in rest)  # one column tuple, not a dict a row
    whole = parse_csv(text)
    assert [r.recipient() for r in [first, *rest]] == list(whole.recipients)
    assert (stream.total_rows, stream.duplicates_removed) == (whole.total_rows, whole.duplicates_removed) == (7, 1)
    assert list(stream.problems) == whole.problems and stream.problems[0].line == 7
    with pytest.raises(RuntimeError, match="read once"):
        iter(stream)


def test_parse_csv_keeps_compact_rows_and_builds_recipients_on_access() -> None:
    got = parse_csv(csv_text(3))
    assert isinstance(got.recipients, LazyRecipients)
    assert all(isinstance(r, RecipientRow) for r in got.recipients.rows)
    assert got.recipients[1] == Recipient(to="+16172000001", name="Person 1",
                                          fields={"to": "+16172000001", "name": "Person 1", "city": "Boston"}, line=3)
    assert [r.line for r in got.recipients[-2:]] == [3, 4]
    assert list(got.iter_rows()) == got.recipients.rows


def test_draft_holds_one_recipient_at_a_time_and_stores_what_a_whole_list_would(tmp_path: Path) -> None:
    n = 3 * bulk_module.DRAFT_CHUNK + 17  # several chunks go through the spool file
    text = csv_text(n)
    watched = Watched(iter_csv(text))
    streamed = make_engine(tmp_path, "streamed.db")
    plan = draft(streamed, watched)
    assert watched.yielded == n and plan.valid == n
    assert watched.most_alive <= 2  # the row being rendered (and the one before it, at most)

    whole = make_engine(tmp_path, "whole.db")
    expected = draft(whole, parse_csv(text))
    assert plan.model_dump() == expected.model_dump()
    assert stored(streamed) == stored(whole)
    assert len(stored(streamed)) == n


def test_draft_inserts_rows_as_they_are_rendered_not_from_a_list(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(tmp_path)
    seen: dict[str, Any] = {}
    original = engine.jobs.create_draft

    def spy(job: Any, rows: Any, now: float | None = None) -> Any:
        seen["type"] = type(rows)
        seen["in_memory"] = len(rows.rows)
        return original(job, rows, now=now)

    monkeypatch.setattr(engine.jobs, "create_draft", spy)
    n = 2 * bulk_module.DRAFT_CHUNK + 5
    draft(engine, iter_csv(csv_text(n)))
    assert not isinstance(seen["type"], list | tuple)
    assert seen["in_memory"] < bulk_module.DRAFT_CHUNK  # the other rows wait on disk
    assert engine.store.counts_by_status() == {"draft": n}


def test_a_failed_draft_stores_nothing_and_leaves_no_spool_open(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    with pytest.raises(Exception, match="No valid recipients"):
        draft(engine, iter_csv("to,name\n" + "".join(f"+1617{2000000 + i:07d},\n" for i in range(2500))),
              text="{name}")
    assert engine.store.counts_by_status() == {}


def _draft_peak(tmp_path: Path, n: int) -> int:
    engine = make_engine(tmp_path, f"peak{n}.db")
    data = csv_text(n, offset=n).encode()
    gc.collect()
    tracemalloc.start()
    try:
        draft(engine, iter_csv(data), key=f"peak{n}")
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_draft_memory_per_recipient_is_a_small_fraction_of_a_parsed_row(tmp_path: Path) -> None:
    # Kept per recipient: its number in the duplicates set (~100 bytes). A pydantic Recipient
    # with its dict was ~1,200 bytes, its rendered row ~300 more.
    small, large = 1_000, 11_000
    growth = (_draft_peak(tmp_path, large) - _draft_peak(tmp_path, small)) / (large - small)
    assert growth < 400, f"{growth:.0f} bytes a recipient"


def test_failure_csv_is_written_as_the_query_yields(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    plan = draft(engine, iter_csv(csv_text(3)))
    engine.store.conn.execute("UPDATE messages SET status = 'failed', error = 'no' WHERE bulk_job_id = ?",
                              (plan.job_id,))
    out = io.StringIO()
    engine.write_failure_csv(plan.job_id, out)
    assert out.getvalue().encode() == engine.failure_csv(plan.job_id)
    assert out.getvalue().splitlines()[1] == "+16172000000,Person 0,failed,no"
    assert not isinstance(engine.jobs.failures(plan.job_id), list)
