"""`smsbot list` and `smsbot cancel ID` against a real store (and the fake Slack for the redraw)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from storage.store import NewMessage, Store
from tests.cli.runner import last, run
from tests.conftest import BOT_TOKEN
from tests.fakes.slack import FakeSlack


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for var in ("SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return Store(str(tmp_path / "cli.db"))


def add(store: Store, key: str, due: float, text: str, user: str | None = "U1") -> int:
    mid, _ = store.enqueue(NewMessage(
        idem_key=key, sender="sandbox", to_number="+16175551212", payload={"to": "+16175551212", "text": text},
        summary=text, scheduled=True, due_at=due, created_by=user, user_name=None if user else "cli",
        source="slack" if user else "cli"))
    return mid


def test_list_shows_pending_schedules_soonest_first_in_the_chosen_zone(db: Store, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    add(db, "b", now + 7200, "Second one")
    add(db, "a", now + 3630, "First one, with a long text that goes on and on past forty characters", user=None)
    add(db, "gone", now + 60, "Canceled already")
    db.cancel(3)
    assert run("list", "--tz", "Asia/Tokyo") == 0
    lines = last().stdout.splitlines()
    assert lines[0].split() == ["ID", "WHEN", "(Asia/Tokyo)", "TO", "VIA", "BY", "TEXT"]
    assert lines[1].startswith("2 ") and "JST, in 1 hour" in lines[1] and "+1 617-555-1212" in lines[1]
    assert "cli" in lines[1] and lines[1].endswith("First one, with a long text that goes…")
    assert lines[2].startswith("1 ") and "U1" in lines[2] and lines[2].endswith("Second one")
    assert len(lines) == 3

    assert run("list", "--user", "U1", "--limit", "1") == 0
    out = last().stdout.splitlines()
    assert out[1].startswith("1 ") and len(out) == 2


def test_list_when_nothing_is_pending_and_bad_zone(db: Store, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("list") == 0
    assert last().stdout.strip() == "No scheduled messages are pending."
    assert run("list", "--tz", "Mars/Olympus") == 2
    assert "unknown time zone 'Mars/Olympus'" in last().stderr


def test_cancel_refuses_what_is_being_sent_or_unknown(db: Store, capsys: pytest.CaptureFixture[str]) -> None:
    mid = add(db, "a", time.time() + 3600, "Hello")
    taken = add(db, "b", time.time() + 1, "Going out")
    db.claim_due("worker", now=time.time() + 5)
    assert run("cancel", str(mid)) == 0
    assert last().stdout.strip() == f"#{mid} canceled; it will not be sent."
    assert db.get(mid).status == "canceled"
    assert run("cancel", str(taken), "999") == 1
    err = last().stderr
    assert f"#{taken} is already being sent; nothing was canceled" in err and "there is no message #999" in err
    assert db.get(taken).status == "claimed"


def test_cancel_redraws_the_slack_message_and_notes_it_in_the_thread(
    db: Store, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", fake_slack.base_url)
    mid = add(db, "a", time.time() + 3600, "Hello")
    db.set_thread(mid, "C1", "1700000000.000100")
    assert run("cancel", str(mid)) == 0
    [update] = fake_slack.calls_to("chat.update")
    assert update["params"]["ts"] == "1700000000.000100"
    assert update["params"]["text"].startswith(f":no_entry_sign: Canceled (#{mid})")
    [note] = fake_slack.calls_to("chat.postMessage")
    assert note["params"]["thread_ts"] == "1700000000.000100"
    assert note["params"]["text"] == ":no_entry_sign: Canceled from the command line; it will not be sent."
