"""End to end: scheduling over signed Slack requests, the worker sending on time, list/edit/cancel.

The real web app and dispatcher run against FakeSlack and FakeProviders; assertions are
on what Slack would show and what the provider received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.input.timeparse import describe_when, parse_when
from bot.core.sending import SendRequest
from tests.conftest import E2E
from tests.fakes.slack_requests import block_actions_body, view_submission_body

NY = "America/New_York"


# Only "never early" is exact end to end. The upper bound catches "not on time at all" and
# leaves room for a loaded CI box; that the dispatcher wakes for the due time, not for its
# next poll, is pinned in tests/core/test_schedule_rules.py with a long poll interval.
LATE = 5.0

def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def sends(e2e: E2E) -> list[Any]:
    assert e2e.providers is not None
    return [r for r in e2e.providers.requests if r.path == "/message"]


def visible(e2e: E2E, row_id: int, timeout: float = 5.0) -> Any:
    """The visible (top-level) message announcing row `row_id`."""
    return e2e.slack.wait_for(
        "chat.postMessage",
        lambda c: not c["params"].get("thread_ts") and f"(#{row_id})" in c["params"].get("text", ""),
        timeout=timeout,
    )[0]


def thread_text(e2e: E2E, ts: str, contains: str, timeout: float = 5.0) -> dict[str, Any]:
    return e2e.slack.wait_for(
        "chat.postMessage",
        lambda c: c["params"].get("thread_ts") == ts and contains in c["params"].get("text", ""),
        timeout=timeout,
    )[0]["params"]


def updates_of(e2e: E2E, ts: str) -> list[dict[str, Any]]:
    return [c["params"] for c in e2e.slack.calls_to("chat.update") if c["params"].get("ts") == ts]


def action_ids(blocks: Any) -> list[str]:
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return [el.get("action_id") for b in blocks or [] if b.get("type") == "actions" for el in b["elements"]]


def iso_in(seconds: float, tz: str = NY) -> tuple[float, str]:
    due = round(time.time() + seconds, 3)
    return due, datetime.fromtimestamp(due, ZoneInfo(tz)).isoformat(timespec="milliseconds")


def click(e2e: E2E, action_id: str, value: str, *, user_id: str = "U1", message_ts: str | None = None,
          channel_id: str = "C1", ephemeral: bool = False, block_id: str | None = None,
          trigger_id: str | None = None) -> tuple[Any, str]:
    url = e2e.slack.response_url()
    body = block_actions_body(action_id, value, user_id=user_id, channel_id=channel_id, message_ts=message_ts,
                              response_url=url, is_ephemeral=ephemeral, block_id=block_id, trigger_id=trigger_id)
    resp = e2e.sender.post(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 200
    return resp, url


def response_at(e2e: E2E, url: str, timeout: float = 5.0) -> dict[str, Any]:
    return e2e.wait(lambda: (e2e.slack.responses_to(url) or [None])[-1], timeout, what=f"a post to {url}")


def schedule(e2e: E2E, seconds: float, text: str = "Hi", user_id: str = "U1", key: str | None = None) -> int:
    """Schedule through the service (the slash command path is tested separately)."""
    when = datetime.fromtimestamp(time.time() + seconds, UTC)
    mid, _ = e2e.rt.service.submit(SendRequest(
        to="+16175551212", text=text, when=when, idem_key=key or f"t:{time.time_ns()}",
        user_id=user_id, user_tz=NY, channel_id="C1"))
    return mid


def test_at_over_slack_is_sent_on_time_and_the_thread_gets_the_outcome(e2e: E2E) -> None:
    due, iso = iso_in(2.0)
    resp = e2e.command(f'send --at "{iso}" +16175551212 Your table is ready', user_id="U1", channel_id="C1")
    reply = resp.json()
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(":alarm_clock: Scheduled #1 for ")
    assert datetime.fromtimestamp(due, ZoneInfo(NY)).strftime("%H:%M %Z") in reply["text"]

    announce = visible(e2e, 1)
    assert announce["params"]["channel"] == "C1"
    assert announce["params"]["text"].startswith(":alarm_clock: Scheduled for ")
    assert announce["params"]["text"].endswith("<@U1> → +1 617-555-1212 via Twilio SMS: Your table is ready")
    assert action_ids(announce["params"]["blocks"]) == ["schedule_edit", "schedule_cancel"]
    assert [s for s in sends(e2e) if s.time < due] == []  # not before its time (exact, whatever the load)

    ts = announce["response"]["ts"]
    outcome = thread_text(e2e, ts, "Accepted by Twilio SMS", timeout=5)
    [sent] = sends(e2e)
    lateness = sent.time - due
    assert 0 <= lateness < LATE, lateness
    assert sent.json["text"] == "Your table is ready" and sent.json["to"] == "+16175551212"
    assert outcome["channel"] == "C1"
    # Once sent, the visible message is redrawn without Edit/Cancel.
    e2e.wait(lambda: updates_of(e2e, ts), what="the visible message redrawn")
    last = updates_of(e2e, ts)[-1]
    assert action_ids(last["blocks"]) == [] and "Scheduled" not in last["text"]


def test_at_in_words_is_read_in_the_users_zone_and_confirmed_exactly(e2e: E2E) -> None:
    e2e.slack.users["U5"] = {"tz": "Asia/Kolkata"}
    resp = e2e.command('send --at "tomorrow 9am" +16175551212 Standup', user_id="U5", channel_id="C1")
    expected = parse_when("tomorrow 9am", "Asia/Kolkata")
    assert resp.json()["text"] == f":alarm_clock: Scheduled #1 for {describe_when(expected, 'Asia/Kolkata')}."
    assert "09:00 IST, in " in resp.json()["text"]
    row = e2e.rt.store.get(1)
    assert row is not None and row.scheduled and row.due_at == expected.timestamp()
    local = datetime.fromtimestamp(row.due_at, ZoneInfo("Asia/Kolkata"))
    assert (local.hour, local.minute) == (9, 0)


def test_unreadable_past_and_too_far_times_are_refused_and_nothing_is_stored(e2e: E2E) -> None:
    past = e2e.command('send --at "2026-01-05 09:00" +16175551212 Hi', user_id="U1").json()["text"]
    assert "'2026-01-05 09:00' (Mon 5 Jan, 09:00 EST) is in the past" in past
    far = e2e.command('send --at "in 400 days" +16175551212 Hi', user_id="U1").json()["text"]
    assert "more than 365 days ahead" in far
    garbled = e2e.command('send --at "whenever" +16175551212 Hi', user_id="U1").json()["text"]
    assert "Couldn't read 'whenever' as a time" in garbled
    assert e2e.rt.store.counts_by_status() == {}


def test_send_later_in_the_modal(e2e: E2E) -> None:
    e2e.slack.users["U1"] = {"tz": "Europe/London"}
    # Far enough ahead that a loaded machine still announces it as scheduled before it is due.
    due = int(time.time()) + 4
    base = {"sender": {"value": {"selected_option": "twlo"}}, "to": {"value": "+16175551212"}}
    picker = {**base, "text": {"value": "Later via the picker"}, "when_dt": {"value": {"selected_date_time": due}}}
    body = view_submission_body("send_modal", picker, user_id="U1", view_id="VLATER1",
                                private_metadata=json.dumps({"channel_id": "C1"}))
    assert e2e.sender.post(body, "application/x-www-form-urlencoded").status_code == 200

    tomorrow = (datetime.now(ZoneInfo("Europe/London")).date()).toordinal() + 1
    day = datetime.fromordinal(tomorrow).date().isoformat()
    split = {**base, "text": {"value": "Later via date and time"},
             "when_date": {"value": {"selected_date": day}}, "when_time": {"value": {"selected_time": "09:30"}}}
    body = view_submission_body("send_modal", split, user_id="U1", view_id="VLATER2",
                                private_metadata=json.dumps({"channel_id": "C1"}))
    assert e2e.sender.post(body, "application/x-www-form-urlencoded").status_code == 200

    announce = visible(e2e, 1)
    assert action_ids(announce["params"]["blocks"]) == ["schedule_edit", "schedule_cancel"]
    assert "BST" in announce["params"]["text"] or "GMT" in announce["params"]["text"]
    thread_text(e2e, announce["response"]["ts"], "Accepted by Twilio SMS", timeout=8)
    [sent] = sends(e2e)
    assert sent.json["text"] == "Later via the picker" and 0 <= sent.time - due < LATE
    second = e2e.rt.store.get(2)
    assert second is not None and second.status == "pending" and second.scheduled
    local = datetime.fromtimestamp(second.due_at, ZoneInfo("Europe/London"))
    assert (local.date().isoformat(), local.strftime("%H:%M")) == (day, "09:30")


def test_list_is_paginated_soonest_first_and_cancel_from_it_redraws_everything(e2e_factory: Callable[..., E2E]) -> None:
    e2e = e2e_factory(sms_bulk_users="U9")
    for i in range(23):
        schedule(e2e, 3600 + 60 * (23 - i), text=f"Message number {i} with some words after it", key=f"k{i}")
    schedule(e2e, 1800, text="Someone else's", user_id="U2", key="other")
    e2e.wait(lambda: len([c for c in e2e.slack.calls_to("chat.postMessage") if not c["params"].get("thread_ts")]) == 24,
             what="24 visible messages")

    data = e2e.command("list", user_id="U1").json()
    assert data["response_type"] == "ephemeral" and data["text"] == "Your scheduled messages: 23 pending."
    blocks = data["blocks"]
    assert len(blocks) < 50
    rows = [b["text"]["text"] for b in blocks if b["type"] == "section"][1:]
    assert len(rows) == 10
    assert rows[0].startswith("*#23* · *") and "→ +1 617-555-1212 via Twilio SMS" in rows[0]
    assert "> Message number 22 with some words after it" in rows[0]
    assert "Someone else" not in dump(blocks)
    assert "Page 1 of 3" in dump(blocks)
    assert action_ids(blocks)[-1] == "schedule_list_next"

    nav = next(el for b in blocks if b["type"] == "actions" for el in b["elements"]
               if el["action_id"] == "schedule_list_next")
    _, url = click(e2e, "schedule_list_next", nav["value"], ephemeral=True, block_id="schedule_list_nav")
    page2 = response_at(e2e, url)
    assert page2["replace_original"] is True and "Page 2 of 3" in dump(page2["blocks"])
    assert set(action_ids(page2["blocks"])) >= {"schedule_list_prev", "schedule_list_next"}
    assert "*#13* ·" in dump(page2["blocks"])

    # Cancel #13 from page 2 of the list.
    row_block = next(b for b in page2["blocks"] if b["type"] == "actions" and b["block_id"].startswith("schedrow_13_"))
    _, url = click(e2e, "schedule_cancel", "13", ephemeral=True, block_id=row_block["block_id"])
    redrawn = response_at(e2e, url)
    assert redrawn["replace_original"] is True
    assert "Canceled #13; it will not be sent." in dump(redrawn["blocks"])
    assert "Your scheduled messages* (22)" in dump(redrawn["blocks"])
    assert e2e.rt.store.get(13).status == "canceled"
    ts = visible(e2e, 13)["response"]["ts"]
    thread_text(e2e, ts, "Canceled by <@U1>; it will not be sent.")
    last = updates_of(e2e, ts)[-1]
    assert last["text"].startswith(":no_entry_sign: Canceled (#13)") and action_ids(last["blocks"]) == []

    # Everyone's list is for SMS_BULK_USERS.
    assert "Only people in SMS_BULK_USERS" in e2e.command("list --all", user_id="U1").json()["text"]
    everyone = e2e.command("list --all", user_id="U9").json()
    assert everyone["text"] == "Everyone's scheduled messages: 23 pending."
    first = [b["text"]["text"] for b in everyone["blocks"] if b["type"] == "section"][1]
    assert first.startswith("*#24* ·") and "by <@U2>" in first


def test_cancel_command_only_for_your_own_and_nothing_goes_out(e2e_factory: Callable[..., E2E]) -> None:
    e2e = e2e_factory(sms_bulk_users="U9")
    mid = schedule(e2e, 3600, text="Do not send")  # far enough that the cancel cannot lose a race
    ts = visible(e2e, mid)["response"]["ts"]
    refused = e2e.command(f"cancel {mid}", user_id="U2").json()["text"]
    assert refused == f":no_entry: #{mid} was scheduled by <@U1>; only they or people in SMS_BULK_USERS can cancel it."
    assert e2e.command(f"cancel #{mid}", user_id="U1").json()["text"] == f":no_entry_sign: Canceled #{mid}; it will not be sent."
    thread_text(e2e, ts, "Canceled by <@U1>")
    assert updates_of(e2e, ts)[-1]["text"].startswith(f":no_entry_sign: Canceled (#{mid})")
    again = e2e.command(f"cancel {mid}", user_id="U1").json()["text"]
    assert again == f":warning: #{mid} was already canceled; nothing was canceled."
    assert "no message #999" in e2e.command("cancel 999", user_id="U1").json()["text"]
    assert "Give its number" in e2e.command("cancel soon", user_id="U1").json()["text"]
    with e2e.rt.store.write() as db:  # its time comes, as the clock would bring it
        db.execute("UPDATE messages SET due_at = ? WHERE id = ?", (time.time() - 1, mid))
    e2e.settle()  # the dispatcher looked at it with its time gone
    assert sends(e2e) == [] and e2e.rt.store.get(mid).status == "canceled"


def test_edit_button_opens_a_modal_that_revalidates_and_the_new_version_goes_out(e2e: E2E) -> None:
    mid = schedule(e2e, 3600, text="Old text")
    ts = visible(e2e, mid)["response"]["ts"]
    click(e2e, "schedule_edit", str(mid), message_ts=ts, trigger_id="trig-edit-1")
    opened = e2e.slack.wait_for("views.open")[0]["params"]["view"]
    opened = json.loads(opened) if isinstance(opened, str) else opened
    assert opened["callback_id"] == "schedule_edit_modal" and opened["title"]["text"] == f"Edit #{mid}"
    inputs = {b["block_id"]: b["element"].get("initial_value") for b in opened["blocks"] if b["type"] == "input"}
    row = e2e.rt.store.get(mid)
    assert inputs["when"] == datetime.fromtimestamp(row.due_at, ZoneInfo(NY)).strftime("%Y-%m-%d %H:%M")
    assert inputs["to"] == "+16175551212" and inputs["text"] == "Old text"
    meta = opened["private_metadata"]

    def submit(when: str, to: str = "+16175551212", text: str = "New text") -> dict[str, Any]:
        values = {"when": {"value": when}, "to": {"value": to}, "name": {"value": None}, "text": {"value": text}}
        resp = e2e.sender.post(view_submission_body("schedule_edit_modal", values, user_id="U1",
                                                    private_metadata=meta, view_id="VEDIT1"),
                               "application/x-www-form-urlencoded")
        return resp.json() if resp.content.strip() else {}

    past = submit("2026-01-05 09:00")
    assert past["response_action"] == "errors" and "is in the past" in past["errors"]["when"]
    far = submit("in 400 days")
    assert "more than 365 days ahead" in far["errors"]["when"]
    bad = submit(inputs["when"], to="12345")
    assert set(bad["errors"]) == {"to"} and "not a valid phone number" in bad["errors"]["to"]
    assert e2e.rt.store.get(mid).summary == "Old text"

    due, iso = iso_in(1.2)
    assert submit(iso, to="(617) 555-0000") == {}
    outcome = thread_text(e2e, ts, "Accepted by Twilio SMS", timeout=5)
    edited = thread_text(e2e, ts, "Edited by <@U1>")
    assert "time → " in edited["text"] and "to → +1 617-555-0000" in edited["text"] and "text → “New text”" in edited["text"]
    [sent] = sends(e2e)
    assert sent.json["to"] == "+16175550000" and sent.json["text"] == "New text"
    assert 0 <= sent.time - due < LATE
    assert outcome["thread_ts"] == ts
    redraws = updates_of(e2e, ts)
    assert any("New text" in u["text"] and "Scheduled" in u["text"] for u in redraws)
    # report_outcome posts the thread line, then redraws the visible message without buttons.
    e2e.wait(lambda: action_ids(updates_of(e2e, ts)[-1]["blocks"]) == [], what="the buttons removed")


def test_claimed_row_refuses_cancel_and_edit_and_says_it_is_being_sent(e2e: E2E) -> None:
    mid = schedule(e2e, 3600, text="Racing")
    ts = visible(e2e, mid)["response"]["ts"]
    click(e2e, "schedule_edit", str(mid), message_ts=ts, trigger_id="trig-edit-race")
    view = e2e.slack.wait_for("views.open")[0]["params"]["view"]
    meta = (json.loads(view) if isinstance(view, str) else view)["private_metadata"]
    # Another worker claims it (as if its time had come) while the modal is open.
    row = e2e.rt.store.get(mid)
    claimed, _ = e2e.rt.store.claim_due("other-worker", now=row.due_at + 0.1, lease=7200)
    assert [r.id for r in claimed] == [mid]

    _, url = click(e2e, "schedule_cancel", str(mid), message_ts=ts)
    said = response_at(e2e, url)
    assert said["response_type"] == "ephemeral" and said["replace_original"] is False
    assert said["text"] == f":warning: #{mid} is already being sent; nothing was canceled."

    values = {"when": {"value": "tomorrow 10am"}, "to": {"value": "+16175551212"}, "text": {"value": "Changed"}}
    resp = e2e.sender.post(view_submission_body("schedule_edit_modal", values, user_id="U1", private_metadata=meta),
                           "application/x-www-form-urlencoded").json()
    assert resp["response_action"] == "update"
    assert f"#{mid} is already being sent; nothing was changed." in dump(resp["view"])

    _, url = click(e2e, "schedule_edit", str(mid), message_ts=ts)
    assert response_at(e2e, url)["text"] == f":warning: #{mid} is already being sent; nothing was changed."
    after = e2e.rt.store.get(mid)
    assert after.status == "claimed" and after.summary == "Racing" and after.due_at == row.due_at
    assert not [c for c in e2e.thread_replies() if "Canceled" in c["params"].get("text", "")]


def test_after_downtime_recent_ones_go_stale_ones_ask_and_send_now_sends(e2e_factory: Callable[..., E2E]) -> None:
    a = e2e_factory(sms_misfire_grace=900)
    stale = schedule(a, 3600, text="Stale one")
    recent = schedule(a, 7200, text="Recent one")
    stale_ts = visible(a, stale)["response"]["ts"]
    visible(a, recent)
    a.rt.stop()
    # Downtime: their times pass while nothing runs.
    now = time.time()
    assert a.rt.store.edit(stale, due_at=now - 3600).ok and a.rt.store.edit(recent, due_at=now - 60).ok

    b = e2e_factory(sms_misfire_grace=900)
    prompt = thread_text(b, stale_ts, "Missed: it was due")
    assert "Send it now, or cancel it?" in prompt["text"]
    assert action_ids(prompt["blocks"]) == ["missed_send_now", "schedule_cancel"]
    b.wait(lambda: [s for s in sends(b) if s.json["text"] == "Recent one"], what="the recent one sent")
    assert b.rt.store.get(stale).status == "missed"
    assert [s.json["text"] for s in sends(b)] == ["Recent one"]

    prompt_ts = b.slack.wait_for("chat.postMessage", lambda c: c["params"].get("thread_ts") == stale_ts
                                 and "Missed" in c["params"].get("text", ""))[0]["response"]["ts"]
    click(b, "missed_send_now", str(stale), message_ts=prompt_ts)
    thread_text(b, stale_ts, "Accepted by Twilio SMS")
    assert [s.json["text"] for s in sends(b)] == ["Recent one", "Stale one"]
    settled = b.wait(lambda: updates_of(b, prompt_ts), what="the prompt settled")[-1]
    assert settled["text"] == f":outbox_tray: Sending #{stale} now, as <@U1> asked." and action_ids(settled["blocks"]) == []
    _, url = click(b, "missed_send_now", str(stale), message_ts=prompt_ts)
    assert "has already been sent; nothing was done." in response_at(b, url)["text"]


def test_a_new_runtime_on_the_same_database_sends_what_the_old_one_left_exactly_once(
    e2e_factory: Callable[..., E2E],
) -> None:
    a = e2e_factory()
    due, iso = iso_in(1.2)
    assert "Scheduled #1" in a.command(f'send --at "{iso}" +16175551212 Survives restarts', user_id="U1",
                                       channel_id="C1").json()["text"]
    ts = visible(a, 1)["response"]["ts"]
    a.rt.stop()
    b = e2e_factory()
    thread_text(b, ts, "Accepted by Twilio SMS", timeout=5)
    b.settle()  # the new runtime did all it will do: one send, not two
    assert [s.json["text"] for s in sends(b)] == ["Survives restarts"]
    assert 0 <= sends(b)[0].time - due < LATE
    top_level = [c for c in b.slack.calls_to("chat.postMessage") if not c["params"].get("thread_ts")]
    assert len(top_level) == 1  # announced once, by the first runtime
