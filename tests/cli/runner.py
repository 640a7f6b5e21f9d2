"""Run `smsbot ...` through Click's test runner, wired as the console script wires it."""

from __future__ import annotations

from click.testing import CliRunner, Result

from bot.app.main import wiring
from bot.cli.main import cli


def smsbot(*args: str) -> Result:
    """One command: `.exit_code`, `.stdout`, `.stderr` (kept apart), exceptions raised as they are."""
    return CliRunner().invoke(cli(wiring()), list(args), catch_exceptions=False, prog_name="smsbot")


_last: list[Result] = []


def run(*args: str) -> int:
    """`smsbot(*args)`'s exit code; its output stays readable through `last()`."""
    _last[:] = [smsbot(*args)]
    return _last[0].exit_code


def last() -> Result:
    return _last[0]
