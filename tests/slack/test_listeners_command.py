"""The `/sms` router: the ack it answers with and whether the slow part runs, handler by handler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.slack.commands import help_text
from bot.slack.context import AppContext, SubCommand
from bot.slack.listeners.command import ack_command, fast_senders, run_slow
from tests.slack.kit import FakeAck, FakeClient, command_body, make_ctx


class Recorder:
    """A subcommand whose fast part answers `answer` and whose slow part records its calls."""

    def __init__(self, answer: Any = "done") -> None:
        self.answer = answer
        self.fast_args: list[str] = []
        self.slow_args: list[str] = []

    def fast(self, ctx: AppContext, body: dict[str, Any], args: str) -> Any:
        self.fast_args.append(args)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def slow(self, ctx: AppContext, body: dict[str, Any], args: str, client: Any) -> None:
        self.slow_args.append(args)


def with_recorder(tmp_path: Path, answer: Any = "done", **settings: Any) -> tuple[AppContext, Recorder]:
    ctx = make_ctx(tmp_path, **settings)
    rec = Recorder(answer)
    ctx.subcommands["demo"] = SubCommand("demo", rec.fast, rec.slow)
    ctx.subcommands["help"] = SubCommand("help", lambda c, b, a: help_text())
    return ctx, rec


def test_subcommand_answer_is_the_ack_and_gets_the_unescaped_args(tmp_path: Path) -> None:
    ctx, rec = with_recorder(tmp_path)
    ack = FakeAck()
    ack_command(ctx, ack, command_body("Demo <tel:+16175551212|617-555-1212> a &amp; b"))
    assert ack.only == {"response_type": "ephemeral", "text": "done"}
    assert rec.fast_args == ["617-555-1212 a & b"]


def test_unknown_subcommand_is_answered_with_the_help(tmp_path: Path) -> None:
    ctx, _ = with_recorder(tmp_path)
    ack = FakeAck()
    ack_command(ctx, ack, command_body("frobnicate now"))
    assert ack.only == {"response_type": "ephemeral",
                        "text": f":thinking_face: I don't know `/sms frobnicate`.\n\n{help_text()}"}


def test_someone_not_allowed_gets_the_refusal_and_nothing_runs(tmp_path: Path) -> None:
    ctx, rec = with_recorder(tmp_path, sms_allowed_users="U2")
    ack = FakeAck()
    body = command_body("demo go")
    ack_command(ctx, ack, body)
    run_slow(ctx, body, FakeClient())
    assert ack.only["text"].startswith(":no_entry: You are not allowed to send messages with smsbot.")
    assert rec.fast_args == [] and rec.slow_args == []


def test_help_is_open_to_someone_not_allowed(tmp_path: Path) -> None:
    ctx, _ = with_recorder(tmp_path, sms_allowed_users="U2")
    ack = FakeAck()
    ack_command(ctx, ack, command_body("help"))
    assert ack.only == {"response_type": "ephemeral", "text": help_text()}


def test_a_crashing_subcommand_answers_in_words(tmp_path: Path) -> None:
    ctx, _ = with_recorder(tmp_path, answer=RuntimeError("secret detail"))
    ack = FakeAck()
    ack_command(ctx, ack, command_body("demo"))
    assert ack.only == {"response_type": "ephemeral", "text": ":boom: Something went wrong on our side; nothing "
                        "was sent. Try again, or tell an admin."}


def test_slow_part_runs_after_the_ack_with_the_args(tmp_path: Path) -> None:
    ctx, rec = with_recorder(tmp_path)
    run_slow(ctx, command_body("demo one two"), FakeClient())
    assert rec.slow_args == ["one two"]


def test_senders_lists_the_sandbox_as_default_and_says_nothing_is_delivered(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    assert fast_senders(ctx, command_body(), "") == (
        "*Configured senders*\n• `sandbox` Sandbox (default)\n"
        "_No provider is configured: sends go to the sandbox and are not delivered._"
    )
