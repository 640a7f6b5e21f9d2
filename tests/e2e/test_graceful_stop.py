"""SIGTERM/SIGINT stop a real `smsbot worker` / `smsbot run` process gracefully.

The process runs `python -m bot.app.main ...` against a temporary store, the fake Slack and slow
fake providers. The tests wait for what the fakes received (never a fixed sleep) before the
signal, then check what the provider got and what the store and Slack say.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.sending import SendRequest
from tests.conftest import E2E, make_settings
from tests.e2e.test_e2e_bulk import (
    bird_numbers,
    bird_requests,
    confirm,
    form_values,
    open_form,
    progress_post,
    submit_form,
    summary_reply,
    worker_env,
)
from tests.fakes.providers import Fault

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """`python -m bot.app.main <command>` with the test's settings; its log goes to a file."""

    def __init__(self, command: str, e2e: E2E, tmp_path: Path, **settings: Any) -> None:
        env = worker_env(make_settings(tmp_path, e2e.slack, e2e.providers, **settings))
        env.update(PYTHONPATH=str(ROOT), PORT="0", HOST="127.0.0.1")
        self.log_path = tmp_path / f"{command}.log"
        self._log = self.log_path.open("w")
        # cwd: the temp dir, so no developer .env is read.
        self.popen = subprocess.Popen([sys.executable, "-m", "bot.app.main", command], env=env, cwd=tmp_path,
                                      stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 25.0) -> tuple[int, float]:
        """Signal it; (exit code, seconds it took to exit)."""
        start = time.monotonic()
        self.popen.send_signal(sig)
        code = self.popen.wait(timeout)
        return code, time.monotonic() - start

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)
        self._log.close()


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


def start(procs: list[Proc], command: str, e2e: E2E, tmp_path: Path, **settings: Any) -> Proc:
    proc = Proc(command, e2e, tmp_path, **settings)
    procs.append(proc)
    return proc


def statuses(e2e: E2E, bulk_job_id: int | None = None) -> dict[str, int]:
    return e2e.rt.store.counts_by_status(bulk_job_id)


def submit_singles(e2e: E2E, numbers: list[str]) -> list[int]:
    ids = []
    for i, number in enumerate(numbers):
        req = SendRequest(sender="bird", to=number, text=f"Hello {i}", idem_key=f"t:{i}", source="slack",
                          user_id="U1", user_name="jane", channel_id="C1")
        ids.append(e2e.rt.service.submit(req)[0])
    return ids


def assert_each_sent_once_rest_pending(e2e: E2E, numbers: list[str], bulk_job_id: int | None) -> int:
    """No row unknown or stuck; the provider got each sent row exactly once and nothing else."""
    counts = statuses(e2e, bulk_job_id)
    assert set(counts) <= {"sent", "pending"}, counts
    per_number = Counter(bird_numbers(e2e))
    assert not per_number or max(per_number.values()) == 1, "a recipient got the message twice"
    sent = {r.to_number for r in e2e.rt.store.since(0) if r.status == "sent"}
    assert sent == set(per_number)  # sent means the provider has it; pending means it never went
    assert counts.get("sent", 0) + counts.get("pending", 0) == len(numbers)
    return counts.get("pending", 0)


# --------------------------------------------------------------------------- worker


def test_sigterm_mid_bulk_lets_worker_finish_calls_in_flight_and_gives_the_rest_back(
        e2e_factory: Any, tmp_path: Path, procs: list[Proc]) -> None:
    e2e = e2e_factory(with_worker=False)
    e2e.providers.latency = 0.6  # up to 16 calls in flight at once
    numbers = [f"+1617555{1700 + i:04d}" for i in range(80)]
    form = open_form(e2e)
    confirm(e2e, submit_form(e2e, form, form_values(text="Hi {name}", pasted="\n".join(numbers)))["view"])
    post = progress_post(e2e)
    worker = start(procs, "worker", e2e, tmp_path, sms_rate_limit_bird=20)
    e2e.wait(lambda: len(bird_requests(e2e)) >= 10, timeout=15, what="the worker to start sending")
    in_flight = statuses(e2e, 1).get("sending", 0)
    code, _ = worker.stop()
    assert code == 0, worker.log()
    assert in_flight >= 1  # calls were under way at the signal, and they ended as sent
    pending = assert_each_sent_once_rest_pending(e2e, numbers, 1)
    assert pending >= 1  # claimed and waiting rows were given back, not left claimed or unknown
    assert "stop signal received" in worker.log()
    # The progress message was redrawn with the counts the worker stopped with.
    sent = statuses(e2e, 1)["sent"]
    root = next(m for m in e2e.slack.messages("C1") if m["ts"] == post["response"]["ts"])
    assert f"sent {sent} · failed 0 · unknown 0 · remaining {80 - sent} of 80" in root["text"]

    # A new worker carries on from there: every recipient gets it exactly once.
    worker2 = start(procs, "worker", e2e, tmp_path, sms_rate_limit_bird=50)
    e2e.providers.latency = 0.0
    assert "80 sent, 0 failed, 0 unknown (of 80)" in summary_reply(e2e, timeout=20)["params"]["text"]
    assert worker2.stop(signal.SIGINT)[0] == 0
    assert sorted(bird_numbers(e2e)) == sorted(numbers)


def test_sigterm_mid_sociocs_batch_records_the_batch_as_sent(
        e2e_factory: Any, tmp_path: Path, procs: list[Proc]) -> None:
    e2e = e2e_factory(with_worker=False)
    e2e.providers.script("/messages/bulk", [Fault(delay=1.5)])  # the batch call is still out at the signal
    numbers = [f"+1617555{1800 + i:04d}" for i in range(30)]
    form = open_form(e2e)
    confirm(e2e, submit_form(e2e, form, form_values(sender="twlo", text="Store closes at 6",
                                                    pasted="\n".join(numbers)))["view"])
    worker = start(procs, "worker", e2e, tmp_path)
    e2e.wait(lambda: [r for r in e2e.providers.requests if r.path == "/messages/bulk"], timeout=15,
             what="the batch call")
    assert statuses(e2e, 1) == {"sending": 30}
    code, _ = worker.stop()
    assert code == 0, worker.log()
    assert statuses(e2e, 1) == {"sent": 30}
    assert len([r for r in e2e.providers.requests if r.path == "/messages/bulk"]) == 1
    job_id = list(e2e.providers.sociocs_jobs._items)[0]
    assert e2e.rt.store.get(1).provider_message_id == f"bulk:{job_id}"  # type: ignore[union-attr]
    # The job finished during the stop: its summary reached the thread before the exit.
    assert "30 sent, 0 failed, 0 unknown (of 30)" in summary_reply(e2e, timeout=1)["params"]["text"]


def test_call_outliving_the_grace_period_is_recorded_unknown_reported_and_logged(
        e2e_factory: Any, tmp_path: Path, procs: list[Proc]) -> None:
    e2e = e2e_factory(with_worker=False)
    e2e.providers.latency = 8.0  # answers long after the 1 s grace period (the client waits 10 s)
    [message_id] = submit_singles(e2e, ["+16175551900"])
    worker = start(procs, "worker", e2e, tmp_path, sms_shutdown_grace=1)
    e2e.wait(lambda: bird_requests(e2e), timeout=15, what="the send")
    code, took = worker.stop()
    assert code == 0, worker.log()
    assert took < 6  # the grace period, not the provider, decided when the process ended
    row = e2e.rt.store.get(message_id)
    assert row is not None and row.status == "unknown" and "SMS_SHUTDOWN_GRACE" in (row.error or "")
    assert "1 send(s) still waiting for the provider after the 1 s grace period" in worker.log()
    # Reported in the message's thread, like any unknown outcome.
    replies = [c["params"]["text"] for c in e2e.thread_replies("C1")]
    assert any("Outcome unknown" in t and "SMS_SHUTDOWN_GRACE" in t for t in replies), replies


# --------------------------------------------------------------------------- run (uvicorn)


def test_sigterm_under_uvicorn_runs_the_cleanup_and_exits_0(
        e2e_factory: Any, tmp_path: Path, procs: list[Proc]) -> None:
    e2e = e2e_factory(with_worker=False)
    e2e.providers.latency = 0.6
    numbers = [f"+1617555{2000 + i:04d}" for i in range(40)]
    ids = submit_singles(e2e, numbers)
    app = start(procs, "run", e2e, tmp_path, sms_rate_limit_bird=20)
    e2e.wait(lambda: "Uvicorn running on" in app.log(), timeout=15, what="uvicorn to serve")
    e2e.wait(lambda: len(bird_requests(e2e)) >= 5, timeout=15, what="the worker to start sending")
    in_flight = statuses(e2e).get("sending", 0)
    code, _ = app.stop()
    assert code == 0, app.log()
    assert in_flight >= 1
    assert_each_sent_once_rest_pending(e2e, numbers, None)
    # Every outcome reached its Slack thread before the exit.
    rows = [e2e.rt.store.get(i) for i in ids]
    sent = [r for r in rows if r is not None and r.status == "sent"]
    assert sent and all(r.status_ts for r in sent)


def test_sigterm_stops_serve_cleanly(e2e_factory: Any, tmp_path: Path, procs: list[Proc]) -> None:
    e2e = e2e_factory(with_worker=False)
    web = start(procs, "serve", e2e, tmp_path)
    e2e.wait(lambda: "Uvicorn running on" in web.log(), timeout=15, what="uvicorn to serve")
    code, _ = web.stop()
    assert code == 0, web.log()  # uvicorn's re-raised SIGTERM no longer kills it before the cleanup
    assert "stop signal received" in web.log()
