"""The thread's final status survives Slack trouble: 5xx and internal errors are retried with
backoff, and a line Slack never took is flagged in the store and redrawn after a restart."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from slack_sdk import WebClient

import bot.slack.outbox
from bot.slack.outbox import RETRY_ATTEMPTS, SlackOutbox
from storage.delivery import DeliveryQueries
from tests.conftest import E2E
from tests.e2e.test_e2e_webhooks import SECRETS, sociocs_post, sociocs_status
from tests.fakes.slack import FakeSlack


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Iterator[Callable[..., E2E]]:
    made: list[E2E] = []

    def build(**settings: Any) -> E2E:
        e2e = e2e_factory(**{**SECRETS, "sms_notify_channel": "C2", **settings})
        made.append(e2e)
        return e2e

    yield build
    for e2e in made:
        e2e.rt.ctx.delivery.stop()


def sent_row(e2e: E2E) -> Any:
    e2e.command("send +16175551212 Your order has shipped", user_id="U1", channel_id="C1")
    return e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r, 5, "the status line")


def line_in_slack(e2e: E2E, row: Any) -> str:
    """The status line as people see it in the thread now."""
    found = [m for m in e2e.slack.messages(row.thread_channel) if m["ts"] == row.status_ts]
    assert len(found) == 1
    return str(found[0]["text"])


def line_calls(e2e: E2E, row: Any) -> list[Any]:
    return [c for c in e2e.slack.calls_to("chat.update") if c["params"].get("ts") == row.status_ts]


def dirty(e2e: E2E, message_id: int = 1) -> bool:
    return DeliveryQueries(e2e.rt.store).is_dirty(message_id)


@pytest.mark.parametrize("status", [500, 200])  # a 5xx, and Slack's ok:false internal_error
def test_slack_internal_error_on_the_status_line_is_retried_until_it_shows_delivered(
        make: Callable[..., E2E], status: int) -> None:
    e2e = make()
    row = sent_row(e2e)
    assert e2e.rt.ctx.delivery.outbox.flush()
    e2e.slack.fail_next("chat.update", error="internal_error", status=status)
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered")).status_code == 200
    e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts and c.ok)
    calls = line_calls(e2e, row)
    assert [c.error for c in calls] == ["internal_error", None]
    assert "Status: delivered" in line_in_slack(e2e, row)
    assert e2e.rt.ctx.delivery.outbox.flush()
    assert not dirty(e2e)


def test_failure_reply_survives_a_slack_503(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e)
    assert e2e.rt.ctx.delivery.outbox.flush()
    e2e.slack.fail_next("chat.postMessage", error="service_unavailable", status=503)
    sociocs_post(e2e, sociocs_status(row.provider_message_id, "failed", "Handset off"))
    e2e.slack.wait_for("chat.postMessage", lambda c: c.ok and "was not delivered" in c["params"].get("text", ""))
    assert e2e.rt.ctx.delivery.outbox.flush()
    replies = [m for m in e2e.slack.messages(row.thread_channel, row.thread_ts) if "was not delivered" in m["text"]]
    assert len(replies) == 1
    assert [t for t in (m["text"] for m in e2e.slack.messages("C2")) if "Handset off" in t]  # the notice too


def test_a_pending_update_lost_in_a_restart_is_redrawn_by_the_next_runtime(
        make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e)
    assert e2e.rt.ctx.delivery.outbox.flush()
    e2e.slack.fail_next("chat.update", status=429, retry_after=30)
    assert sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered")).status_code == 200
    e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts and c.status == 429)
    assert dirty(e2e)  # the store knows the thread is behind
    e2e.rt.stop()  # within Retry-After: the update never reached Slack
    assert "Status: delivered" not in line_in_slack(e2e, row)

    again = make()  # same database, new process
    e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts and c.ok)
    assert "Status: delivered" in line_in_slack(e2e, row)
    assert again.rt.ctx.delivery.outbox.flush()
    assert not dirty(again)


def test_retries_are_bounded_and_the_line_stays_flagged_for_the_next_start(
        make: Callable[..., E2E], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bot.slack.outbox, "RETRY_BASE", 0.01)
    e2e = make()
    row = sent_row(e2e)
    assert e2e.rt.ctx.delivery.outbox.flush()
    e2e.slack.fail_next("chat.update", error="internal_error", status=502, times=RETRY_ATTEMPTS)
    sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered"))
    e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts, count=RETRY_ATTEMPTS)
    assert e2e.rt.ctx.delivery.outbox.flush()  # given up: nothing left in memory
    assert len(line_calls(e2e, row)) == RETRY_ATTEMPTS
    assert dirty(e2e) and "Status: delivered" not in line_in_slack(e2e, row)
    e2e.rt.stop()

    again = make()
    e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts and c.ok)
    assert "Status: delivered" in line_in_slack(e2e, row)
    assert again.rt.ctx.delivery.outbox.flush()
    assert not dirty(again)


def test_a_deleted_status_line_is_not_redrawn_forever(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e)
    assert e2e.rt.ctx.delivery.outbox.flush()
    e2e.slack.fail_next("chat.update", error="message_not_found", status=200)
    sociocs_post(e2e, sociocs_status(row.provider_message_id, "delivered"))
    e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == row.status_ts)
    assert e2e.rt.ctx.delivery.outbox.flush()
    assert len(line_calls(e2e, row)) == 1  # not retried
    assert not dirty(e2e)


class _DropsTheFirstCall(WebClient):
    """A client whose first chat.update hits a reset connection (after its own retries)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped = 0

    def chat_update(self, **kwargs: Any) -> Any:  # type: ignore[override]
        if not self.dropped:
            self.dropped += 1
            raise ConnectionResetError("connection reset by peer")
        return super().chat_update(**kwargs)


def test_outbox_retries_an_update_after_a_connection_error() -> None:
    with FakeSlack() as slack:
        client = _DropsTheFirstCall(token="xoxb-test-token", base_url=slack.base_url)
        msg = client.chat_postMessage(channel="C1", text="status")
        drawn = threading.Event()

        def render(message_id: int) -> Callable[[], None]:
            def draw() -> None:
                outbox.update_line(message_id, "C1", msg["ts"], "delivered")
                drawn.set()
            return draw

        outbox = SlackOutbox(client, [], render, hold=0)
        outbox.start()
        try:
            outbox.touch(1)
            assert drawn.wait(5)
            assert client.dropped == 1
            assert [c["params"]["text"] for c in slack.calls_to("chat.update")] == ["delivered"]
            assert outbox.flush()
        finally:
            outbox.stop()
