"""End to end, as people use it: the bulk messaging bugs QA found (signed Slack requests, fakes behind)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.conftest import E2E
from tests.e2e.test_e2e_bulk import (
    bird_numbers,
    bird_requests,
    confirm,
    engine,
    form_values,
    open_form,
    progress_post,
    submit_form,
    summary_reply,
    uploaded_csv,
    view_text,
)
from tests.fakes.providers import Fault
from tests.fakes.slack_requests import block_actions_body

FORM = "application/x-www-form-urlencoded"


def click(e2e: E2E, action_id: str, value: str, message_ts: str | None, **kw: Any) -> None:
    resp = e2e.sender.post(block_actions_body(action_id, value=value, message_ts=message_ts, **kw), FORM)
    assert resp.status_code == 200


def move_job_time(tmp_path: Path, job_id: int, due_at: float) -> None:
    """What a long downtime looks like to the store: the job's time is long gone."""
    db = sqlite3.connect(tmp_path / "smsbot.db")
    with db:
        db.execute("UPDATE bulk_jobs SET due_at = ? WHERE id = ?", (due_at, job_id))
        db.execute("UPDATE messages SET due_at = ? WHERE bulk_job_id = ?", (due_at, job_id))
    db.close()


def missed_prompt(e2e: E2E) -> Any:
    return e2e.slack.wait_for("chat.postMessage", lambda c: "was due" in c["params"].get("text", "")
                              and "Bulk #1" in c["params"].get("text", ""), timeout=10)[0]


def schedule_bulk_then_restart_late(e2e_factory: Any, tmp_path: Path) -> tuple[E2E, Any]:
    e2e = e2e_factory()
    engine(e2e)
    form = open_form(e2e)
    conf = submit_form(e2e, form, form_values(pasted="+16175551212, Jane\n+16175551213, Bob",
                                              text="Doors open at 9 {name}", when_epoch=int(time.time()) + 3600))
    confirm(e2e, conf["view"])
    post = progress_post(e2e)
    assert "Scheduled for" in post["params"]["text"]

    # `/sms list` shows the job: one line, with its Cancel button.
    listed = e2e.command("list", user_id="U1").json()
    shown = json.dumps(listed["blocks"])
    assert "Bulk #1" in shown and "2 recipients" in shown and "Doors open at 9" in shown and "Bird" in shown
    buttons = [b["accessory"] for b in listed["blocks"] if b.get("accessory")]
    assert [(b["action_id"], b["value"]) for b in buttons] == [("schedule_bulk_cancel", "1")]

    e2e.rt.stop()
    move_job_time(tmp_path, 1, time.time() - 7200)
    again = e2e_factory()
    engine(again)
    return again, post


def test_scheduled_bulk_found_past_its_grace_is_missed_then_sent_on_send_now(e2e_factory: Any,
                                                                               tmp_path: Path) -> None:
    e2e, post = schedule_bulk_then_restart_late(e2e_factory, tmp_path)
    prompt = missed_prompt(e2e)
    assert prompt["params"]["thread_ts"] == post["response"]["ts"]
    ids = [e["action_id"] for b in prompt["params"]["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert ids == ["bulk_missed_send_now", "bulk_missed_cancel"]
    assert e2e.rt.store.counts_by_status(1) == {"missed": 2}
    assert engine(e2e).wait_idle()  # every loop looked at the missed job again
    assert bird_requests(e2e) == []  # nobody got it two hours late
    assert len([c for c in e2e.thread_replies() if "was due" in c["params"]["text"]]) == 1  # ONE prompt

    click(e2e, "bulk_missed_send_now", "1", prompt["response"]["ts"])
    assert "2 sent, 0 failed" in summary_reply(e2e)["params"]["text"]
    assert sorted(bird_numbers(e2e)) == ["+16175551212", "+16175551213"]
    settled = e2e.slack.wait_for("chat.update", lambda c: c["params"].get("ts") == prompt["response"]["ts"])[0]
    assert "sending now" in settled["params"]["text"]
    assert e2e.command("list", user_id="U1").json()["text"].startswith("Your scheduled messages: 0")


def test_missed_bulk_cancel_sends_nothing(e2e_factory: Any, tmp_path: Path) -> None:
    e2e, _post = schedule_bulk_then_restart_late(e2e_factory, tmp_path)
    prompt = missed_prompt(e2e)
    click(e2e, "bulk_missed_cancel", "1", prompt["response"]["ts"])
    summary = summary_reply(e2e)["params"]["text"]
    assert "canceled" in summary and "2 canceled" in summary
    assert e2e.rt.store.counts_by_status(1) == {"canceled": 2}
    assert bird_requests(e2e) == []


def test_cancel_a_scheduled_bulk_job_from_sms_list(e2e: E2E) -> None:
    engine(e2e)
    form = open_form(e2e)
    confirm(e2e, submit_form(e2e, form, form_values(pasted="+16175551212", text="Later",
                                                    when_epoch=int(time.time()) + 3600))["view"])
    post = progress_post(e2e)
    listed = e2e.command("list", user_id="U1").json()
    button = next(b for b in listed["blocks"] if b.get("accessory"))
    click(e2e, "schedule_bulk_cancel", "1", "1.000", is_ephemeral=True, block_id=button["block_id"],
          response_url=e2e.slack.response_url())
    e2e.slack.wait_for_response(lambda p: "canceled" in json.dumps(p.get("blocks", [])))
    assert "canceled" in summary_reply(e2e)["params"]["text"]
    assert e2e.rt.store.counts_by_status(1) == {"canceled": 1}
    assert summary_reply(e2e)["params"]["thread_ts"] == post["response"]["ts"]
    assert bird_requests(e2e) == []


# --------------------------------------------------------------------------- the 1,600-character limit


def test_rows_whose_text_is_too_long_are_invalid_and_a_too_long_template_is_refused(e2e: E2E) -> None:
    engine(e2e)
    form = open_form(e2e)
    answer = submit_form(e2e, form, form_values(pasted="+16175551212", text="x" * 1601))
    assert answer["response_action"] == "errors"
    assert "1,601 characters; the limit is 1,600" in answer["errors"]["text"]

    long_name = "N" * 1600
    pasted = f"+16175551212, {long_name}\n+16175551213, Bob"
    conf = submit_form(e2e, form, form_values(pasted=pasted, text="Hi {name}"))["view"]
    shown = view_text(conf)
    assert "*1 recipient*" in shown and "Line 1:" in shown
    assert "text would be 1,603 characters; the limit is 1,600" in shown
    confirm(e2e, conf)
    assert "1 sent" in summary_reply(e2e)["params"]["text"]
    assert bird_numbers(e2e) == ["+16175551213"]


# --------------------------------------------------------------------------- Resume is never undone


def test_resume_landing_after_the_tracker_read_the_jobs_is_not_undone(e2e_factory: Any) -> None:
    e2e = e2e_factory(sms_rate_limit_bird=10)
    eng = engine(e2e)
    pasted = "\n".join(f"+1617555{1700 + i:04d}" for i in range(12))
    confirm(e2e, submit_form(e2e, open_form(e2e), form_values(text="Hi", pasted=pasted))["view"])
    ts = progress_post(e2e)["response"]["ts"]
    e2e.wait(lambda: len(bird_requests(e2e)) >= 2, what="a few sends")
    click(e2e, "bulk_pause", "1", ts)
    e2e.slack.wait_for("chat.update", lambda c: "Paused" in c["params"].get("text", ""))

    # Resume arrives just after the tracker read the job list (it still says paused).
    real = eng.jobs.live_jobs
    fired: list[bool] = []

    def read_then_resume() -> list[Any]:
        jobs = real()
        if not fired and any(j.status == "paused" for j in jobs):
            fired.append(True)
            click(e2e, "bulk_resume", "1", ts)
        return jobs

    eng.jobs.live_jobs = read_then_resume  # type: ignore[method-assign]
    e2e.wait(lambda: fired, what="the tracker's pass")
    assert "12 sent, 0 failed" in summary_reply(e2e)["params"]["text"]
    assert sorted(bird_numbers(e2e)) == sorted(f"+1617555{1700 + i:04d}" for i in range(12))


# --------------------------------------------------------------------------- the failure CSV


def test_failure_csv_defuses_formulas_in_names_and_provider_errors(e2e: E2E) -> None:
    engine(e2e)
    bad = {"code": "InvalidPayload", "message": "=HYPERLINK(\"http://evil\")"}
    e2e.providers.script("/workspaces/", [Fault(status=422, body=bad), Fault(status=422, body=bad)])
    e2e.rt.dispatcher.concurrency = 1
    pasted = "+16175551212, =SUM(A1)\n+16175551213, @cmd"
    confirm(e2e, submit_form(e2e, open_form(e2e), form_values(pasted=pasted))["view"])
    assert "2 failed" in summary_reply(e2e)["params"]["text"]
    report = uploaded_csv(e2e)
    assert sorted(r["name"] for r in report) == ["'=SUM(A1)", "'@cmd"]
    assert all(not r["reason"].startswith(("=", "+", "-", "@")) for r in report)
    assert all("HYPERLINK" in r["reason"] for r in report)
    assert [r["to"] for r in report] == ["+16175551212", "+16175551213"]  # numbers stay numbers


# --------------------------------------------------------------------------- confirming an expired draft


def test_confirming_an_expired_draft_says_so_and_a_double_click_stays_silent(e2e: E2E, tmp_path: Path) -> None:
    engine(e2e)
    stale = submit_form(e2e, open_form(e2e), form_values(pasted="+16175551212"))["view"]
    db = sqlite3.connect(tmp_path / "smsbot.db")
    with db:
        db.execute("UPDATE bulk_jobs SET created_at = created_at - 2 * 86400 WHERE id = 1")
    db.close()
    # Someone starts another bulk send the next day: the old draft is discarded.
    fresh = submit_form(e2e, open_form(e2e), form_values(pasted="+16175551213"))["view"]
    answer = confirm(e2e, stale)
    assert answer["response_action"] == "update"
    assert "This draft expired; nothing was sent. Start again with /sms bulk." in view_text(answer["view"])

    assert confirm(e2e, fresh).get("response_action") == "clear"
    assert confirm(e2e, fresh).get("response_action") == "clear"  # the double click: silent
    summary_reply(e2e)
    assert bird_numbers(e2e) == ["+16175551213"]
    assert len([c for c in e2e.slack.calls_to("chat.postMessage") if "bulk #" in c["params"].get("text", "")
                and not c["params"].get("thread_ts")]) == 1


# --------------------------------------------------------------------------- the name column


def test_first_name_column_fills_name_and_missing_names_are_warned(e2e: E2E) -> None:
    engine(e2e)
    e2e.slack.add_file("F1", "people.csv", b"Phone Number,First Name\n+16175551212,Jane\n+16175551213,Bob\n")
    conf = submit_form(e2e, open_form(e2e), form_values(text="Hi {name}", file_id="F1"))["view"]
    assert "Hi Jane" in view_text(conf) and "no recipient has a name" not in view_text(conf)
    confirm(e2e, conf)
    summary_reply(e2e)
    texts = sorted(r.json["body"]["text"]["text"] for r in bird_requests(e2e))
    assert texts == ["Hi Bob", "Hi Jane"]

    e2e.slack.add_file("F2", "people.csv", b"phone,nickname\n+16175551214,JJ\n")
    shown = view_text(submit_form(e2e, open_form(e2e), form_values(text="Hi {name}", file_id="F2"))["view"])
    assert "uses {name} but no recipient has a name" in shown and "`nickname`" in shown

    shown = view_text(submit_form(e2e, open_form(e2e), form_values(text="Hi {name}",
                                                                   pasted="+16175551215"))["view"])
    assert "no recipient has a name" in shown

    e2e.slack.add_file("F3", "people.csv", b"to,name,name\n+16175551216,First,Second\n")
    shown = view_text(submit_form(e2e, open_form(e2e), form_values(text="Hi {name}", file_id="F3"))["view"])
    assert "Hi First" in shown and "2 'name' columns" in shown

    hint = json.dumps(open_form(e2e)["blocks"])
    assert "first_name" in hint and "full_name" in hint
