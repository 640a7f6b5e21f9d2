"""`smsbot bulk`: the plan, a progress line on stderr, the summary and the failure CSV."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pytest

from tests.cli.runner import last, run
from tests.conftest import BIRD_CH, BIRD_KEY, BIRD_WS, CHANNEL_KEYS, SOCIOCS_KEY
from tests.fakes.providers import FakeProviders, Fault


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_providers: FakeProviders) -> FakeProviders:
    monkeypatch.chdir(tmp_path)  # no developer .env; failure CSVs land here
    for key in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SMS_DEFAULT_SENDER"):
        monkeypatch.delenv(key, raising=False)
    values = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # no Slack: nothing may be posted
        "SOCIOCS_API_KEY": SOCIOCS_KEY, "SOCIOCS_API_URL": fake_providers.url,
        "SOCIOCS_CHANNEL_KEY_TWLO": CHANNEL_KEYS["twlo"],
        "BIRD_API_KEY": BIRD_KEY, "BIRD_API_URL": fake_providers.url, "BIRD_WORKSPACE_ID": BIRD_WS,
        "BIRD_CHANNEL_ID": BIRD_CH, "SMS_RATE_LIMIT_BIRD": "200",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return fake_providers


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "list.csv"
    path.write_text(text)
    return path


def test_cli_bulk_sends_with_progress_and_summary(env: FakeProviders, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"+1617555{1700 + i:04d},P{i},{i}\n" for i in range(12))
    path = write_csv(tmp_path, "to,name,code\n" + rows + "+16175551700,Again,99\nbad,X,1\n")
    code = run("bulk", "--via", "bird", "--csv", str(path), "--text", "Hi {name}, code {code}")
    out, err = last().stdout, last().stderr
    assert code == 0
    assert "Bulk #1: 12 recipients via Bird SMS (bird)." in out
    assert "duplicates removed: 1" in out and "Line 15: bad,X,1" in out
    assert "Preview: Hi P0, code 0" in out
    assert "12 sent, 0 failed, 0 unknown (of 12)" in out
    assert "Bulk #1" in err and "12/12" in err and "sent 12  failed 0  unknown 0" in err  # the bar, once done
    sent = [r.json for r in env.requests if r.path.startswith("/workspaces/")]
    assert Counter(m["receiver"]["contacts"][0]["identifierValue"] for m in sent) == \
        {f"+1617555{1700 + i:04d}": 1 for i in range(12)}
    assert {m["body"]["text"]["text"] for m in sent} == {f"Hi P{i}, code {i}" for i in range(12)}


def test_cli_bulk_failures_go_to_a_csv_and_exit_1(env: FakeProviders, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    env.script("/workspaces/", [Fault(status=422, body={"code": "InvalidPayload", "message": "Blocked number."})])
    path = write_csv(tmp_path, "to\n+16175551801\n")
    code = run("bulk", "--via", "bird", "--csv", str(path), "--text", "Hello")
    out = last().stdout
    assert code == 1
    assert "0 sent, 1 failed, 0 unknown (of 1)" in out and "bulk-1-failures.csv" in out
    report = list(csv.DictReader(io.StringIO((tmp_path / "bulk-1-failures.csv").read_text())))
    assert report == [{"to": "+16175551801", "name": "", "status": "failed", "reason": report[0]["reason"]}]
    assert "Blocked number." in report[0]["reason"]


def test_cli_bulk_sociocs_plain_text_uses_bulk_jobs(env: FakeProviders, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = write_csv(tmp_path, "to,name\n+16175551901,A\n+16175551902,B\n+16175551901,A2\n")
    assert run("bulk", "--via", "twlo", "--csv", str(path), "--text", "Closed today",
               "--allow-duplicates") == 0
    out = last().stdout
    bulk = [r.json for r in env.requests if r.path == "/messages/bulk"]
    assert len(bulk) == 1 and bulk[0]["duplicates_allowed"] is True
    assert [p["to"] for p in bulk[0]["recipients"]] == ["+16175551901", "+16175551902", "+16175551901"]
    assert "Sociocs bulk jobs" in out and "3 sent" in out and list(env.sociocs_jobs._items)[0] in out


@pytest.mark.parametrize(("content", "args", "message"), [
    ("phone_no\n+16175551212\n", [], "no 'to' column"),
    ("to\n+16175551212\n", ["--text", "Hi {city}"], "Unknown placeholder {city}"),
    ("to\n123\n", [], "No valid recipients"),
    ("to\n+16175551212\n", ["--at", "2020-01-01T09:00:00+00:00"], "in the past"),
    ("to\n+16175551212\n", ["--at", "someday maybe"], "error: Couldn't read 'someday maybe' as a time."),
])
def test_cli_bulk_bad_input_says_why_and_sends_nothing(env: FakeProviders, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], content: str,
                                                        args: list[str], message: str) -> None:
    path = write_csv(tmp_path, content)
    argv = ["bulk", "--via", "bird", "--csv", str(path), "--text", "Hi", *args]
    if "--text" in args:
        argv = ["bulk", "--via", "bird", "--csv", str(path), *args]
    assert run(*argv) == 2
    assert message in last().stderr
    assert env.requests == []


def test_cli_send_unreadable_time_says_why_and_sends_nothing(env: FakeProviders,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # `send` and `bulk` share one --at reader; the root group answers its WhenError.
    assert run("send", "--via", "bird", "--to", "+16175551212", "--text", "Hi", "--at", "someday maybe") == 2
    assert "error: Couldn't read 'someday maybe' as a time." in last().stderr
    assert env.requests == []
