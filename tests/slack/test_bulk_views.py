"""Bulk Block Kit builders: what the person sees, within Slack's limits."""

from __future__ import annotations

import json

from bot.slack.blocks.bulk import (
    BulkPlan,
    ProblemLine,
    Progress,
    bulk_modal,
    confirmation_view,
    progress_message,
    summary_text,
)


def plan(**kw: object) -> BulkPlan:
    values: dict[str, object] = dict(
        job_id=7, sender="twlo", sender_label="Twilio SMS", mode="provider_bulk", valid=1234, total_rows=1300,
        duplicates_removed=16, allow_duplicates=False, invalid=50,
        problems=[ProblemLine(line=i + 2, raw="x" * 200, reason="Not a valid phone number.") for i in range(20)],
        encoding="UCS-2", segments=3, characters=150, preview="Hi Jane 👋", personalised=False,
        native_bulk_sender=True,
    )
    values.update(kw)
    return BulkPlan.model_validate(values)


def text_of(view: dict) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


def test_form_has_every_input_and_csv_file_input() -> None:
    view = bulk_modal([("twlo", "Twilio SMS"), ("bird", "Bird SMS")], "bird", {"channel_id": "C1"})
    ids = [b.get("block_id") for b in view["blocks"]]
    assert ids == ["sender", "text", "recipients", "csv", "options", "when_dt", "when_date", "when_time"]
    csv_el = view["blocks"][3]["element"]
    assert csv_el["type"] == "file_input" and csv_el["filetypes"] == ["csv", "txt"]
    assert view["blocks"][0]["element"]["initial_option"]["value"] == "bird"
    assert len(view["title"]["text"]) <= 24 and json.loads(view["private_metadata"]) == {"channel_id": "C1"}


def test_confirmation_shows_counts_segments_preview_and_truncated_problems() -> None:
    view = confirmation_view(plan())
    shown = text_of(view)
    assert "*1,234 recipients* via Twilio SMS" in shown
    assert "Invalid rows skipped: 50" in shown and "Duplicates removed: 16" in shown
    assert "3 SMS segments, UCS-2" in shown and "70 instead of 160" in shown
    assert "Hi Jane 👋" in shown and "Sociocs bulk jobs of up to 1,000" in shown
    assert shown.count("Line ") == 20 and "…and 30 more" in shown
    assert "Line 2: `" + "x" * 53 + "… (cut)` — Not a valid phone number." in shown
    assert view["submit"]["text"] == "Send to 1,234"
    assert len(view["blocks"]) <= 100
    assert all(len(b["text"]["text"]) <= 3000 for b in view["blocks"] if b.get("type") == "section")
    assert json.loads(view["private_metadata"]) == {"job_id": 7}


def test_confirmation_notes_personalised_sociocs_text_goes_one_by_one() -> None:
    shown = text_of(confirmation_view(plan(personalised=True, mode="per_recipient", invalid=0, problems=[])))
    assert "one message per recipient" in shown and "invalid row" not in shown.lower().replace("invalid rows skipped", "")
    assert "one message per recipient" not in text_of(confirmation_view(plan(native_bulk_sender=False)))


def test_progress_message_has_live_counts_and_controls_until_done() -> None:
    p = Progress(total=100, sent=40, failed=2, unknown=1, remaining=57, rate=12.5)
    text, blocks = progress_message(3, "U1", "Bird SMS", "Hello", p, "running")
    assert "sent 40 · failed 2 · unknown 1 · remaining 57 of 100 · 12.5/s" in text
    actions = [b for b in blocks if b["type"] == "actions"][0]["elements"]
    assert [a["action_id"] for a in actions] == ["bulk_pause", "bulk_cancel"] and actions[1]["value"] == "3"
    _, paused = progress_message(3, "U1", "Bird SMS", "Hello", p, "paused")
    assert [a["action_id"] for b in paused if b["type"] == "actions" for a in b["elements"]][0] == "bulk_resume"
    _, done = progress_message(3, "U1", "Bird SMS", "Hello", p, "done", provider_job_ids=["J1", "J2"])
    assert not [b for b in done if b["type"] == "actions"] and "`J1`, `J2`" in json.dumps(done)


def test_progress_counts_come_from_row_statuses() -> None:
    p = Progress.from_counts({"sent": 5, "failed": 1, "unknown": 2, "pending": 3, "claimed": 1, "sending": 1,
                              "paused": 4, "queued": 2, "canceled": 6})
    assert (p.total, p.remaining, p.done) == (25, 11, 14)


def test_summary_explains_unknowns_and_points_at_the_csv() -> None:
    text = summary_text(4, Progress(total=10, sent=7, failed=1, unknown=2), "Bird SMS", 75, canceled=False)
    assert text.startswith(":warning: Bulk #4 finished in 1 min 15 s via Bird SMS: 7 sent, 1 failed, 2 unknown (of 10).")
    assert "not retried" in text and "attached CSV" in text
    clean = summary_text(4, Progress(total=3, sent=3), "Bird SMS", 2, canceled=False, provider_job_ids=["J9"])
    assert clean.startswith(":white_check_mark:") and "J9" in clean and "CSV" not in clean
