"""QA pass over issue 9 (independent): regression tests for defects still open after the fixes.

Each test here FAILS on the code it was written against; they drive the real web app over
HTTP (fake Slack and fake providers on 127.0.0.1) and assert on what a client, the log or
the provider sees.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import E2E, SIGNING_SECRET
from tests.e2e.test_e2e_bulk import form_values, open_form, submit_form, view_text
from tests.fakes.slack_requests import SlackSender, option, view_submission_body


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def web_log() -> Iterator[Records]:
    """What the web layer logs, uvicorn's own error logger included (it does not propagate).
    Attach it after the app is built: uvicorn's logging config replaces earlier handlers."""
    handler = Records()
    yield handler
    for name in WATCHED:
        logging.getLogger(name).removeHandler(handler)


WATCHED = ("uvicorn.error", "smsbot.web", "smsbot.webhooks")


def watch(handler: Records) -> None:
    loggers = [logging.getLogger(name) for name in WATCHED]
    for logger in loggers:
        if handler not in logger.handlers:
            logger.addHandler(handler)


# QA-1 ---------------------------------------------------------------------------------------


def test_qa_signed_view_submission_without_view_type_is_400_not_500(e2e: E2E) -> None:
    """Bolt reads body["view"]["type"] unguarded: a signed view_submission whose view lacks
    `type` raises KeyError inside Bolt and the app answers 500 with a traceback."""
    payload = {"type": "view_submission", "user": {"id": "U1"}, "team": {"id": "T1"},
               "view": {"callback_id": "send_modal", "private_metadata": "{}", "state": {"values": {}}}}
    body = b"payload=" + quote(json.dumps(payload)).encode()
    with SlackSender(e2e.url, SIGNING_SECRET) as sender:
        resp = sender.post(body, "application/x-www-form-urlencoded")
    assert resp.status_code < 500, resp.text
    assert e2e.rt.store.counts_by_status() == {}


# QA-2 ---------------------------------------------------------------------------------------


def _hang_up_mid_body(url: str, path: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 100000\r\n\r\n{{\"partial\":".encode())
        time.sleep(0.2)  # let the server start reading the body before the client goes away


@pytest.mark.parametrize("path", ["/slack/events", "/webhooks/bird"])
def test_qa_unauthenticated_client_hanging_up_mid_body_logs_one_line_not_a_traceback(
        e2e_factory: Any, web_log: Records, path: str) -> None:
    """An unsigned client that sends part of a body and disconnects makes starlette raise
    ClientDisconnect out of read_capped: uvicorn logs "Exception in ASGI application" with a
    ~60-line traceback, every time, for anyone who can reach the port (log flooding)."""
    e2e = e2e_factory(bird_webhook_signing_key="bird-signing-key-qa")
    watch(web_log)
    _hang_up_mid_body(e2e.url, path)
    e2e.wait(lambda: web_log.records, timeout=5, what="the web layer to log the hang-up")
    time.sleep(0.3)  # the traceback, when there is one, is logged at once with the first record
    tracebacks = [r for r in web_log.records if r.exc_info or r.levelno >= logging.ERROR]
    assert tracebacks == [], [r.getMessage() for r in tracebacks]


# QA-3 ---------------------------------------------------------------------------------------


def test_qa_send_modal_time_of_epoch_zero_is_refused_not_sent_now(e2e: E2E) -> None:
    """`selected_date_time: 0` (1970-01-01 00:00 UTC, pickable in the datetimepicker) is taken
    as "no time given" because 0 is falsy, so the form sends at once; -1 is refused as past."""
    values = {"sender": {"value": {"type": "static_select", "selected_option": option("twlo")}},
              "to": {"value": "+16175551215"}, "text": {"value": "send me later"},
              "when_dt": {"value": {"type": "datetimepicker", "selected_date_time": 0}}}
    resp = e2e.sender.post(view_submission_body("send_modal", values, user_id="U1"))
    assert resp.status_code == 200
    e2e.settle()
    assert e2e.rt.store.counts_by_status() == {}, "the message was stored to be sent now"
    answer = resp.json() if resp.content.strip() else {}
    assert answer.get("response_action") == "errors", answer


def test_qa_bulk_form_time_of_epoch_zero_is_refused_not_sent_at_once(e2e: E2E) -> None:
    """The bulk form has the same falsy check: a picked time of epoch 0 is read as no time, and
    the confirmation says "Sends as soon as you confirm." instead of refusing the time."""
    form = open_form(e2e)
    answer = submit_form(e2e, form, form_values(text="Hi", pasted="+16175559001\n+16175559002", when_epoch=0))
    assert answer.get("response_action") == "errors", view_text(answer["view"])[:300]
