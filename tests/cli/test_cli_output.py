"""What the Click CLI adds: `--json` listings, progress on stderr, one-line registration of a
command group (and of an argparse-style extension), LOG_FORMAT and redaction for every command."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
import pytest

from bot.app.logs import RedactSecrets
from bot.cli import main as cli_main
from storage.store import NewMessage, Store
from tests.cli.runner import last, run
from tests.cli.test_cli_schedules import add


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.chdir(tmp_path)  # no developer .env
    for var in ("SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_SIGNING_SECRET", "LOG_FORMAT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    return Store(str(tmp_path / "cli.db"))


def test_list_json_gives_whole_values_for_scripts(db: Store) -> None:
    due = time.time() + 3600
    mid = add(db, "a", due, "A text longer than the forty characters the table shows of it")
    assert run("list", "--json") == 0
    rows = json.loads(last().stdout)
    assert rows == [{"id": mid, "when": rows[0]["when"], "to": "+16175551212", "via": "sandbox", "by": "U1",
                     "text": "A text longer than the forty characters the table shows of it"}]
    assert abs(datetime.fromisoformat(rows[0]["when"]).timestamp() - due) < 0.001  # ISO 8601, UTC
    db.cancel(mid)
    assert run("list", "--json") == 0 and json.loads(last().stdout) == []  # never the "nothing" sentence


def test_export_shows_its_progress_on_stderr_and_keeps_stdout_clean(db: Store) -> None:
    for i in range(3):
        db.enqueue(NewMessage(idem_key=f"k{i}", sender="sandbox", to_number="+16175551212",
                              payload={"to": "+16175551212", "text": f"m{i}"}, summary=f"m{i}", due_at=time.time()))
    assert run("export", "--since", "2000-01-01") == 0
    assert len(list(csv.DictReader(io.StringIO(last().stdout)))) == 3
    assert "Export" in last().stderr and "3/3" in last().stderr


@pytest.fixture
def registered() -> Iterator[None]:
    """Registrations made by a test, taken back after it."""
    commands, extensions = dict(cli_main.APP.commands), dict(cli_main.EXTENSIONS)
    yield
    cli_main.APP.commands.clear()
    cli_main.APP.commands.update(commands)
    cli_main.EXTENSIONS.clear()
    cli_main.EXTENSIONS.update(extensions)


def test_a_command_group_is_one_line_and_shares_the_error_handling(db: Store, registered: None) -> None:
    things = cli_main.command_group("things", "manage things")

    @things.command("show")
    @click.option("--at", default=None)
    def show(at: str | None) -> int:
        cli_main.when_from(at, "UTC")  # a WhenError is answered by the root group
        print("shown")
        return 3

    assert run("things", "show") == 3 and last().stdout == "shown\n"
    assert run("things", "show", "--at", "whenever") == 2 and "error: Couldn't read 'whenever'" in last().stderr
    assert run("--help") == 0 and "things" in last().stdout


def test_an_argparse_style_extension_still_runs(db: Store, registered: None) -> None:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", required=True)

    def go(args: argparse.Namespace, settings: object) -> int:
        print(f"hello {args.name}")
        return 0

    cli_main.EXTENSIONS["hello"] = ("say hello", (configure, go))
    assert run("hello", "--name", "Ada") == 0 and last().stdout == "hello Ada\n"
    assert run("hello") == 2 and "--name" in last().stderr  # argparse's own usage error


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A plain stream handler on the root logger, as a process has; removed after."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for existing in root.handlers:
            existing.filters = [f for f in existing.filters if not isinstance(f, RedactSecrets)]


def test_log_format_json_and_redaction_apply_to_every_command(db: Store, stream: io.StringIO,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("TEXTUS_API_TOKEN", "textus-token-hush-123")
    monkeypatch.setenv("TEXTUS_ACCOUNT", "acme")
    assert run("list") == 0  # not a process: before, only run/serve/worker set the format up
    logging.getLogger("smsbot.cli").warning("provider said %s", "textus-token-hush-123")
    logging.getLogger("smsbot.cli").info("chatter")  # a command logs warnings and errors only
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "WARNING" and record["logger"] == "smsbot.cli"
    assert record["message"] == "provider said ***"


def test_shell_completion_offers_commands_and_options() -> None:
    from click.testing import CliRunner

    from bot.app.main import wiring

    def complete(words: str) -> list[str]:
        env = {"_SMSBOT_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
        result = CliRunner().invoke(cli_main.cli(wiring()), [], env=env, prog_name="smsbot")
        return [line.split(",", 1)[1] for line in result.stdout.splitlines()]

    assert complete("smsbot li") == ["list"]
    assert complete("smsbot list --") == ["--user", "--tz", "--limit", "--json", "--help"]
