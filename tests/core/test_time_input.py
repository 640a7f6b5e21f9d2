"""Times typed or picked by people: clear answers, never "something went wrong"."""

from __future__ import annotations

from tests.conftest import E2E
from tests.fakes.slack_requests import option, view_submission_body


def test_iso_times_at_the_edge_of_the_calendar_get_a_clear_answer(e2e: E2E) -> None:
    for at in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        reply = e2e.command(f'send --at "{at}" +16175551212 Hi').json()["text"]
        assert reply.startswith(":warning: ") and "too far in the past or future" in reply, reply
    assert e2e.rt.store.counts_by_status() == {}


def test_at_now_sends_at_once_instead_of_saying_scheduled(e2e: E2E) -> None:
    resp = e2e.command('send --at now +16175551212 Hi')
    assert resp.status_code == 200 and "Scheduled" not in resp.text
    e2e.wait(lambda: e2e.rt.store.counts_by_status().get("sent") == 1, 5, "the send")
    row = e2e.rt.store.get(1)
    assert row is not None and not row.scheduled


def test_modal_refuses_a_time_the_clocks_skip_like_the_command(e2e: E2E) -> None:
    e2e.slack.users["U1"] = {"tz": "America/New_York"}
    typed = e2e.command('send --at "2027-03-14 02:30" +16175551212 Hi').json()["text"]
    body = view_submission_body("send_modal", {
        "sender": {"value": {"type": "static_select", "selected_option": option("twlo")}},
        "to": {"value": "+16175551212"}, "text": {"value": "Hi"},
        "when_date": {"value": {"selected_date": "2027-03-14"}},
        "when_time": {"value": {"selected_time": "02:30"}}})
    answer = e2e.sender.post(body).json()
    assert answer["response_action"] == "errors"
    message = answer["errors"]["when_date"]
    assert "doesn't exist in America/New_York" in message
    assert typed == f":warning: {message}"
    assert e2e.rt.store.counts_by_status() == {}
