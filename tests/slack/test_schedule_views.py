"""The pure Block Kit builders for scheduled messages: list pages and the edit modal."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.slack.blocks.schedules import (
    MAX_BLOCKS,
    EditMeta,
    ListPage,
    edit_modal,
    first_words,
    local_input,
    page_from_block_id,
    row_block_id,
    schedule_list_blocks,
)
from storage.store import MessageRow

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)  # Sat 28 Nov, 09:00 in New York
T = NOW.timestamp()


def row(i: int, due: float, text: str = "Hello there", **kw: Any) -> MessageRow:
    data: dict[str, Any] = dict(
        id=i, idem_key=f"k{i}", sender="twlo", to_number="+16175551212", payload={"to": "+16175551212", "text": text},
        summary=text, status="pending", scheduled=True, due_at=due, created_at=T, updated_at=T, created_by="U1",
    )
    data.update(kw)
    return MessageRow(**data)


def sections(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def actions(blocks: list[dict[str, Any]]) -> list[str]:
    return [el["action_id"] for b in blocks if b["type"] == "actions" for el in b["elements"]]


def valid(blocks: list[dict[str, Any]]) -> None:
    """slack_sdk's models check Block Kit's field limits when they parse."""
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None
        parsed.validate_json()


def test_a_row_shows_id_time_in_the_viewers_zone_recipient_sender_and_first_words() -> None:
    r = row(7, T + 3 * 86400, "Your order #123 has shipped and will arrive on Monday between 9 and 5, thanks!",
            name="Jane <Doe>")
    blocks = schedule_list_blocks([r], "America/New_York", NOW, label_for=lambda s: "Twilio SMS")
    text = sections(blocks)[1]
    assert text == (
        "*#7* · *Tue 1 Dec, 09:00 EST, in 3 days*\n"
        "→ Jane &lt;Doe&gt; (+1 617-555-1212) via Twilio SMS\n"
        "> Your order #123 has shipped and will arrive on Monday…"
    )
    assert actions(blocks) == ["schedule_edit", "schedule_cancel"]
    assert [el["value"] for b in blocks if b["type"] == "actions" for el in b["elements"]] == ["7", "7"]
    tokyo = sections(schedule_list_blocks([r], "Asia/Tokyo", NOW))[1]
    assert tokyo.startswith("*#7* · *Tue 1 Dec, 23:00 JST, in 3 days*")
    valid(blocks)


def test_everyones_list_names_who_scheduled_each() -> None:
    rows = [row(1, T + 60, created_by="U2"), row(2, T + 120, created_by=None, user_name="cli", source="cli")]
    blocks = schedule_list_blocks(rows, "UTC", NOW, show_owner=True)
    assert sections(blocks)[0] == "*Everyone's scheduled messages* (2)"
    assert "by <@U2>" in sections(blocks)[1] and "by cli" in sections(blocks)[2]
    assert "by" not in sections(schedule_list_blocks(rows, "UTC", NOW))[1].split("\n")[1]


@pytest.mark.parametrize("page_size", [5, 10, 20, 100])
def test_every_page_stays_under_50_blocks_with_previous_and_next(page_size: int) -> None:
    rows = [row(i, T + 60 * i) for i in range(1, 96)]
    pages = {}
    for page in range(0, 30):
        blocks = schedule_list_blocks(rows, "UTC", NOW, page=page, page_size=page_size)
        assert len(blocks) <= MAX_BLOCKS
        ids = [int(s.split("*")[1][1:]) for s in sections(blocks)[1:]]
        pages[page] = ids
        valid(blocks)
    effective = min(page_size, 20)
    last = -(-95 // effective) - 1
    assert pages[0] == list(range(1, effective + 1))
    assert pages[last][-1] == 95 and pages[last + 3] == pages[last]  # past the end: the last page
    first = schedule_list_blocks(rows, "UTC", NOW, page=0, page_size=page_size)
    assert actions(first)[-1] == "schedule_list_next" and "schedule_list_prev" not in actions(first)
    end = schedule_list_blocks(rows, "UTC", NOW, page=last, page_size=page_size)
    assert "schedule_list_next" not in actions(end) and actions(end)[-1] == "schedule_list_prev"
    nav = [el for b in end if b["type"] == "actions" for el in b["elements"] if el["action_id"] == "schedule_list_prev"]
    assert ListPage.load(nav[0]["value"]) == ListPage(page=last - 1, all=False)


def test_a_page_from_the_store_with_a_total() -> None:
    page_rows = [row(i, T + 60 * i) for i in range(11, 21)]
    blocks = schedule_list_blocks(page_rows, "UTC", NOW, page=1, page_size=10, show_owner=True, total=35)
    assert sections(blocks)[1].startswith("*#11*") and len(sections(blocks)) == 11
    assert "Page 2 of 4 · 11–20 of 35" in json.dumps(blocks, ensure_ascii=False)
    assert set(actions(blocks)) >= {"schedule_list_prev", "schedule_list_next"}
    # The page travels in the row's block id so a click can redraw the same page.
    block_ids = [b["block_id"] for b in blocks if b.get("block_id", "").startswith("schedrow_")]
    assert page_from_block_id(block_ids[0]) == ListPage(page=1, all=True)
    assert page_from_block_id("schedule_5") is None


def test_empty_list_says_how_to_schedule() -> None:
    blocks = schedule_list_blocks([], "UTC", NOW)
    assert "Nothing is scheduled" in sections(blocks)[1] and actions(blocks) == []


def test_notice_and_escaping() -> None:
    blocks = schedule_list_blocks([row(1, T + 60, "a < b & c > d")], "UTC", NOW, notice="Canceled #3.")
    assert blocks[1] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "Canceled #3."}]}
    assert "a &lt; b &amp; c &gt; d" in sections(blocks)[1]


def test_first_words() -> None:
    assert first_words("short  text\nhere") == "short text here"
    long = "word " * 40
    cut = first_words(long, 30)
    assert cut.endswith("…") and len(cut) <= 30 and not cut[:-1].endswith(" ")


def test_row_block_id_round_trip() -> None:
    assert page_from_block_id(row_block_id(42, ListPage(page=3, all=True))) == ListPage(page=3, all=True)


def test_edit_modal_prefills_time_in_the_editors_zone_and_fits_slacks_limits() -> None:
    r = row(12, T + 86400, "Old text", name="Jane")
    meta = EditMeta(id=12, tz="Europe/London", when0=local_input(r.due_at, "Europe/London"),
                    response_url="https://hooks.slack.com/actions/T1/1/abc")
    view = edit_modal(r, meta, NOW, label_for=lambda s: "Twilio SMS")
    assert view["callback_id"] == "schedule_edit_modal" and view["title"]["text"] == "Edit #12"
    inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
    assert inputs["when"]["element"]["initial_value"] == "2026-11-29 14:00"
    assert "Europe/London" in inputs["when"]["hint"]["text"]
    assert inputs["to"]["element"]["initial_value"] == "+16175551212"
    assert inputs["name"]["element"]["initial_value"] == "Jane"
    assert inputs["text"]["element"]["initial_value"] == "Old text" and inputs["text"]["optional"] is False
    assert EditMeta.model_validate_json(view["private_metadata"]) == meta
    View(**view).validate_json()


def test_edit_modal_for_a_template_does_not_offer_its_text() -> None:
    r = row(3, T + 60, "[template appointment]",
            payload={"to": "+16175551212", "template": {"id": "HX1", "variables": {"1": "John"}}})
    view = edit_modal(r, EditMeta(id=3, when0="2026-11-28 14:01"), NOW)
    ids = [b.get("block_id") for b in view["blocks"]]
    assert "text" not in ids and "when" in ids and "to" in ids
    assert "can't be edited here" in json.dumps(view)
    View(**view).validate_json()
