"""Each process gets the engines it needs, and no more (bot/app: the composition root)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bot.app.main import cli_engines, worker_runtime
from bot.app.runtime import build_runtime
from bot.core.schedules import EditForm, EditTarget, Outcome, ScheduleRules
from bot.core.senders import build_senders
from bot.core.sending import SendService
from storage.store import NewMessage, Store
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack

REPO = Path(__file__).resolve().parents[2]


def test_the_worker_builds_no_slack_app_but_tells_slack_about_outcomes(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rt = worker_runtime(make_settings(tmp_path, fake_slack, None))
    try:
        assert rt.bolt is None and rt.web is None
        assert rt.ctx.subcommands == {}  # no listener was registered
        assert rt.dispatcher is not None and rt.delivery is not None and rt.bulk is not None
        conversations = rt.conversations
        assert conversations is not None and conversations.replies is not None
        assert rt.dispatcher.on_final == [rt.service.consent.on_final, rt.dispatcher.meter.final,
                                          conversations.replies.progressed, conversations.sandbox_echo,
                                          rt.bulk.on_final, rt.delivery.on_final]
    finally:
        rt.stop()


def test_the_worker_without_a_bot_token_has_no_slack_engines(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rt = worker_runtime(make_settings(tmp_path, fake_slack, None, slack_bot_token=None))
    try:
        assert rt.dispatcher is not None
        assert (rt.bolt, rt.delivery, rt.bulk) == (None, None, None)
    finally:
        rt.stop()


def test_send_from_the_cli_gets_a_dispatcher_and_nothing_of_slack(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rt = cli_engines(make_settings(tmp_path, fake_slack, None))
    try:
        assert rt.dispatcher is not None
        assert (rt.bolt, rt.web, rt.delivery, rt.bulk) == (None, None, None, None)
    finally:
        rt.stop()


def test_the_web_process_has_the_slack_app_and_the_engines_it_serves(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rt = build_runtime(make_settings(tmp_path, fake_slack, None), with_worker=False)
    try:
        assert rt.bolt is not None and rt.web is not None
        assert "cancel" in rt.ctx.subcommands
        assert rt.ctx.delivery is rt.delivery is not None and rt.ctx.bulk is rt.bulk is not None
    finally:
        rt.stop()


def test_python_dash_m_runs_the_console_entry() -> None:
    out = subprocess.run([sys.executable, "-m", "bot.app.main", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for command in ("run", "serve", "worker", "send", "list", "cancel", "bulk", "templates"):
        assert f"\n  {command} " in out.stdout  # one line per command under "Commands:"


def _rules(tmp_path: Path, fake_slack: FakeSlack, **extra: object) -> tuple[ScheduleRules, Store, list[int]]:
    settings = make_settings(tmp_path, fake_slack, None, **extra)
    store = Store(settings.database_path)
    woken: list[int] = []
    service = SendService(store, build_senders(settings), default_region="US")
    return ScheduleRules(store, settings, service, wake=lambda: woken.append(1)), store, woken


def _pending(store: Store, owner: str | None) -> int:
    due = time.time() + 3600
    mid, _ = store.enqueue(NewMessage(
        idem_key=f"k{owner}", sender="sandbox", to_number="+16175551212",
        payload={"to": "+16175551212", "text": "Hello there"}, summary="Hello there", scheduled=True,
        due_at=due, created_by=owner, source="slack"))
    return mid


def test_core_rules_say_plainly_why_nothing_changed(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rules, store, _ = _rules(tmp_path, fake_slack, sms_bulk_users="UBOSS")
    mid = _pending(store, "U1")
    assert rules.cancel(999, "U1").outcome == Outcome.NOT_FOUND
    refused = rules.cancel(mid, "U2")
    assert refused.outcome == Outcome.NOT_YOURS and refused.row is not None and refused.row.created_by == "U1"
    assert rules.cancel(mid, "U1").outcome == Outcome.DONE
    again = rules.cancel(mid, "UBOSS")
    assert (again.outcome, again.status) == (Outcome.TOO_LATE, "canceled")


def test_the_operator_cancels_anyones_schedule(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rules, store, _ = _rules(tmp_path, fake_slack, sms_bulk_users="UBOSS")
    mid = _pending(store, "U1")
    assert rules.cancel(mid, None, operator=True).outcome == Outcome.DONE
    assert store.get(mid).status == "canceled"  # type: ignore[union-attr]


def test_core_edit_reports_changes_in_plain_words_and_wakes_the_worker(tmp_path: Path, fake_slack: FakeSlack) -> None:
    rules, store, woken = _rules(tmp_path, fake_slack)
    mid = _pending(store, "U1")
    target = EditTarget(message_id=mid, tz="UTC", when0="as shown")
    same = rules.edit(target, EditForm(when="as shown", to="+16175551212", text="Hello there"), "U1")
    assert same.outcome == Outcome.UNCHANGED and woken == []
    res = rules.edit(target, EditForm(when="as shown", to="+16175551212", text="Hi <b> & bye"), "U1")
    assert res.outcome == Outcome.DONE and woken == [1]
    assert [(c.field, c.value) for c in res.changes] == [("text", "Hi <b> & bye")]  # no Slack escaping in core
