"""End to end: who sees which messages (/sms status, /sms list --all, App Home, export),
and provider text never bringing a configured secret into the store or onto those surfaces."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bot.cli.history import run_export
from storage.bulk import BulkStore, DraftRow, NewBulkJob
from tests.conftest import BOT_TOKEN, E2E, SIGNING_SECRET, SOCIOCS_KEY
from tests.e2e.test_e2e_webhooks import SOCIOCS_SECRET, sociocs_post, sociocs_status
from tests.fakes.providers import Fault
from tests.fakes.slack_requests import app_home_opened_event

NUMBER = "+16175551212"


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Iterator[Callable[..., E2E]]:
    made: list[E2E] = []

    def build(**settings: Any) -> E2E:
        e2e = e2e_factory(sociocs_webhook_secret=SOCIOCS_SECRET, **settings)
        made.append(e2e)
        return e2e

    yield build
    for e2e in made:
        e2e.rt.ctx.delivery.stop()


def send(e2e: E2E, text: str, user: str, final: int) -> None:
    e2e.command(text, user_id=user, channel_id="C1")
    e2e.wait(lambda: e2e.rt.store.counts_by_status().get("sent", 0)
             + e2e.rt.store.counts_by_status().get("failed", 0) >= final, 5, f"{final} final rows")


def home_of(e2e: E2E, user: str) -> str:
    """The App Home tab published for `user` after they open it (as JSON text)."""
    def published() -> list[Any]:
        return [c for c in e2e.slack.calls_to("views.publish") if c["params"]["user_id"] == user]

    before = len(published())
    assert e2e.sender.event(app_home_opened_event(user)).status_code == 200
    e2e.wait(lambda: len(published()) > before, 5, "a published view")
    view = published()[-1]["params"]["view"]
    return view if isinstance(view, str) else json.dumps(view)


def export(e2e: E2E, tmp_path: Path, user: str | None = None) -> str:
    out = tmp_path / f"export-{user}.csv"
    args = argparse.Namespace(since=0.0, out=str(out), user=user)
    assert run_export(args, e2e.rt.settings) == 0
    return out.read_text(encoding="utf-8")


def status(e2e: E2E, query: str, user: str) -> str:
    return json.dumps(e2e.command(f"status {query}", user_id=user, channel_id="C1").json())


# --------------------------------------------------------------------------- defect 5: one visibility rule


def test_people_see_their_own_messages_managers_everyones_and_drafts_only_their_author(
    make: Callable[..., E2E], tmp_path: Path
) -> None:
    e2e = make(sms_bulk_users="UM")
    send(e2e, f"send {NUMBER} U1 private words", "U1", 1)  # #1
    e2e.command(f"send --at \"tomorrow 9am\" {NUMBER} U1 later plan", user_id="U1", channel_id="C1")  # #2
    e2e.wait(lambda: e2e.rt.store.count_pending(created_by="U1") == 1, 5, "a schedule")
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": "Blocked."}]})])
    send(e2e, f"send {NUMBER} U2 words", "U2", 2)  # #3, failed
    job = NewBulkJob(idem_key="draft-1", sender="twlo", text="U1 draft secret", created_by="U1", total=1)
    BulkStore(e2e.rt.store).create_draft(job, [DraftRow(NUMBER, None, json.dumps({"to": NUMBER}), "U1 draft secret")])
    draft_id = max(r.id for r in e2e.rt.store.since(0))
    pid = e2e.rt.store.get(1).provider_message_id

    # U2 may not read U1's messages, by number, by id or by provider id; the answer is the
    # same as for a message that does not exist.
    for query in ("1", "#2", str(draft_id)):
        assert json.loads(status(e2e, query, "U2"))["text"] == f":mag: No message #{query.lstrip('#')}."
    assert "neither a phone number nor a message id" in status(e2e, pid, "U2")
    mine = status(e2e, NUMBER, "U2")
    assert "1 message(s)" in mine and "U2 words" in mine
    for private in ("U1 private words", "U1 later plan", "U1 draft secret"):
        assert private not in mine
    assert "No message" in status(e2e, "3", "U1")

    # The author sees their own draft; the manager sees everyone's, but not a draft.
    assert "U1 draft secret" in status(e2e, NUMBER, "U1")
    everyone = status(e2e, NUMBER, "UM")
    assert "3 message(s)" in everyone
    assert all(t in everyone for t in ("U1 private words", "U1 later plan", "U2 words"))
    assert "U1 draft secret" not in everyone
    assert json.loads(status(e2e, str(draft_id), "UM"))["text"] == f":mag: No message #{draft_id}."

    # /sms list --all: the same rule.
    assert "Only people in SMS_BULK_USERS" in e2e.command("list --all", user_id="U2").text
    assert "U1 later plan" in e2e.command("list --all", user_id="UM").text

    # App Home: U2's failure is in U2's and the manager's latest failures, not in U1's.
    assert "*#3*" in home_of(e2e, "U2") and "*#3*" in home_of(e2e, "UM")
    assert "*#3*" not in home_of(e2e, "U1")

    # export: the operator writes every confirmed message; --user applies that person's view.
    ids = lambda csv_text: [line.split(",")[0] for line in csv_text.splitlines()[1:]]  # noqa: E731
    assert ids(export(e2e, tmp_path)) == ["1", "2", "3"]
    assert ids(export(e2e, tmp_path, "U2")) == ["3"]
    assert ids(export(e2e, tmp_path, "U1")) == ["1", "2", str(draft_id)]
    assert ids(export(e2e, tmp_path, "UM")) == ["1", "2", "3"]


def test_without_sms_bulk_users_everyone_allowed_is_a_manager(make: Callable[..., E2E]) -> None:
    e2e = make(sms_allowed_users="U1,U2")
    send(e2e, f"send {NUMBER} U1 words", "U1", 1)
    assert "U1 words" in status(e2e, "1", "U2")
    assert "Only people" not in e2e.command("list --all", user_id="U2").text


# --------------------------------------------------------------------------- defect 6: secrets in provider text

TEXTUS_SECRET = "tx+secret/42="
# What a provider's error text may echo: a secret alone, inside a longer string, URL-encoded,
# and the secret half of the Sociocs `user:secret` key alone.
ECHOES = [
    BOT_TOKEN,
    f"Auth failed for key={SIGNING_SECRET};retry later",
    f"callback https://x.example/cb?key={quote(TEXTUS_SECRET, safe='')}&k2={quote(SOCIOCS_KEY, safe='')}",
    "bad key sociocs-secret-key",
]
FORBIDDEN = [BOT_TOKEN, SIGNING_SECRET, TEXTUS_SECRET, quote(TEXTUS_SECRET, safe=""), quote(TEXTUS_SECRET, safe="").lower(),
             SOCIOCS_KEY, quote(SOCIOCS_KEY, safe=""), "sociocs-secret-key"]


def test_secrets_in_webhook_error_text_never_reach_the_store_or_any_surface(
    make: Callable[..., E2E], tmp_path: Path
) -> None:
    e2e = make(textus_webhook_secret=TEXTUS_SECRET)
    for n, echo in enumerate(ECHOES, start=1):
        send(e2e, f"send {NUMBER} message {n}", "U1", n)
        pid = e2e.rt.store.get(n).provider_message_id
        assert sociocs_post(e2e, sociocs_status(pid, "failed", echo)).status_code == 200
    e2e.wait(lambda: all(e2e.rt.store.get(n).delivery == "failed" for n in range(1, 5)), 5, "four failures")

    stored = [e2e.rt.store.get(n).model_dump_json() for n in range(1, 5)]
    events = [json.dumps(dict(r)) for r in e2e.rt.store.conn.execute("SELECT * FROM delivery_events")]
    surfaces = {
        "store": "\n".join(stored + events),
        "status": status(e2e, NUMBER, "U1"),
        "home": home_of(e2e, "U1"),
        "export": export(e2e, tmp_path),
    }
    for where, text in surfaces.items():
        for secret in FORBIDDEN:
            assert secret not in text, (where, secret)
    # The rest of the provider's words are kept: people still learn why.
    assert "Auth failed for key=***;retry later" in surfaces["store"]
    assert "bad key ***" in surfaces["status"]
    assert "callback https://x.example/cb?key=***&k2=***" in surfaces["export"]
