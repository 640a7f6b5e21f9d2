"""`/sms optouts [page]`: the page text."""

from __future__ import annotations

from bot.slack.blocks.consent import optouts_page
from storage.consent import ConsentState


def _state(n: int) -> ConsentState:
    return ConsentState(number=f"+1617555{n:04d}", family="sms", opted_out=True, source="manual",
                        by_recipient=False, reason=None, actor="U1", changed_at=1_764_500_000.0, confirmed_at=None)


def test_a_page_past_the_last_says_how_many_there_are() -> None:
    text = optouts_page([], total=3, page=999)
    assert "page 999 of 1" not in text and "No more on this page" not in text
    assert "only 1 page" in text and "`/sms optouts 1`" in text


def test_a_page_in_range_lists_its_numbers() -> None:
    text = optouts_page([_state(1)], total=1, page=1)
    assert "page 1 of 1" in text and "+1 617-555-0001" in text
