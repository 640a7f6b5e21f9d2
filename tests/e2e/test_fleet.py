"""The fleet end to end: `smsbot serve` x2 and `smsbot worker` x3, real processes on one
PostgreSQL schema, fake Slack and fake providers on 127.0.0.1 between them.

Signed Slack requests to the serve processes create 500 scheduled sends, a 2,000-recipient
Bird bulk job and a few dozen TextUs sends at TextUs's 3/s; workers are SIGKILLed and
restarted several times meanwhile. Then, from what the fakes saw: every recipient requested
exactly once or shown unknown, each visible message posted once, the TextUs limit held.

Runs in `make test-pg` (marker `fleet`); needs PostgreSQL (SMSBOT_TEST_DATABASE_URL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from storage import open_store
from tests.conftest import SIGNING_SECRET, make_settings
from tests.fakes.providers import FakeProviders
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender, slash_command_body, view_submission_body

pytestmark = [pytest.mark.fleet, pytest.mark.postgres, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
SCHEDULED, BULK, TEXTUS = 500, 2000, 36
TEXTUS_RATE, BURST = 3, 2  # the busiest 1-s window at the fake may hold at most RATE + BURST
KILLS = 4
FINAL = {"sent", "failed", "unknown", "canceled"}
# The "posted once" and "limit across processes" checks need the fleet-wide dispatcher limits
# and the once-across-processes Slack posts (other branches). Until both are merged their
# failure is an expected failure; once they pass this must be set False (a pass fails loudly).
AWAITING_FLEET_WIDE_WORK = False

# `smsbot worker` (bot.app.main's own entry) with short leases, so a killed worker's rows
# come back in seconds instead of the production minute; everything else as deployed.
WORKER = """
import functools, sys
sys.path.insert(0, {root!r})
import bot.app.runtime as runtime
runtime.Dispatcher = functools.partial(runtime.Dispatcher, lease=4.0, sending_lease=4.0)
from bot.app.main import main
sys.exit(main(["worker"]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(settings: Any, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SMS_", "SLACK_", "SOCIOCS_", "BIRD_", "TEXTUS_", "DATABASE_URL"))}
    for name, value in settings:
        if value is None:
            continue
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[name.upper()] = str(raw)
    env.update(extra)
    return env


class Fleet:
    """The processes: start, kill, stop; their output goes to files under tmp_path for failures."""

    def __init__(self, settings: Any, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp = tmp_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts = Counter[str]()

    def _spawn(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        self.starts[name] += 1
        log = open(self.tmp / f"{name}.{self.starts[name]}.log", "wb")  # noqa: SIM115 (the process owns it)
        proc = subprocess.Popen(argv, env=process_env(self.settings, **env), cwd=ROOT, stdout=log, stderr=log)
        log.close()
        self.procs[name] = proc
        return proc

    def serve(self, name: str) -> str:
        port = free_port()
        self._spawn(name, [sys.executable, "-m", "bot.app.main", "serve"], PORT=str(port), HOST="127.0.0.1")
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            assert self.procs[name].poll() is None, f"{name} exited: {self.output(name)}"
            try:
                if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{name} did not answer /healthz: {self.output(name)}")

    def worker(self, name: str) -> None:
        self._spawn(name, [sys.executable, "-c", WORKER.format(root=str(ROOT))])

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.poll() is None, f"{name} died on its own: {self.output(name)}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def output(self, name: str) -> str:
        path = self.tmp / f"{name}.{self.starts[name]}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def fleet_db() -> Iterator[str]:
    from tests.storage.conftest import fresh_pg_schema

    with fresh_pg_schema() as url:
        yield url


def command(sender: SlackSender, text: str, fake_slack: FakeSlack, user: str = "U1") -> dict[str, Any]:
    body = slash_command_body(text=text, user_id=user, channel_id="C1", response_url=fake_slack.response_url())
    resp = sender.post(body, "application/x-www-form-urlencoded")
    assert resp.status_code == 200, resp.text
    return resp.json() if resp.content.strip() else {}


def start_bulk(sender: SlackSender, fake_slack: FakeSlack, numbers: list[str]) -> None:
    before = len(fake_slack.calls_to("views.open"))
    command(sender, "bulk", fake_slack)
    form = fake_slack.wait_for("views.open", count=before + 1)[-1]["response"]["view"]
    values = {
        "sender": {"value": {"type": "static_select", "selected_option": {"value": "bird"}}},
        "text": {"value": {"type": "plain_text_input", "value": "Fleet bulk"}},
        "recipients": {"value": {"type": "plain_text_input", "value": "\n".join(numbers)}},
        "csv": {"value": {"type": "file_input", "files": []}},
        "options": {"value": {"type": "checkboxes", "selected_options": []}},
    }
    body = view_submission_body("bulk_modal", values, user_id="U1", private_metadata=form["private_metadata"],
                                view_id=form["id"])
    conf = sender.post(body, "application/x-www-form-urlencoded").json()["view"]
    if conf["callback_id"] != "bulk_confirm":  # a big list answers "Preparing…" and updates the view
        conf = fake_slack.wait_for("views.update", lambda c: c["params"]["view"].get("callback_id") == "bulk_confirm",
                                   timeout=30)[-1]["params"]["view"]
    assert f"*{len(numbers):,} recipients*" in json.dumps(conf["blocks"], ensure_ascii=False)
    body = view_submission_body("bulk_confirm", {}, user_id="U1", private_metadata=conf["private_metadata"])
    assert sender.post(body, "application/x-www-form-urlencoded").status_code == 200


def busiest_second(times: list[float]) -> int:
    times = sorted(times)
    worst, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        worst = max(worst, j - i)
    return worst


def all_final(url: str) -> dict[str, int]:
    store = open_store(url)
    try:
        return store.counts_by_status()
    finally:
        store.close()


def test_two_web_three_workers_killed_and_restarted(
    tmp_path: Path, fake_slack: FakeSlack, fake_providers: FakeProviders, fleet_db: str
) -> None:
    settings = make_settings(tmp_path, fake_slack, fake_providers, database_url=fleet_db,
                             sms_rate_limit_textus=float(TEXTUS_RATE), sms_rate_limit_bird=400.0,
                             sms_reconcile_interval=0.0)
    fleet = Fleet(settings, tmp_path)
    try:
        webs = [SlackSender(fleet.serve(f"web{i}"), SIGNING_SECRET) for i in range(2)]
        for i in range(3):
            fleet.worker(f"worker{i}")
        due = time.time() + 25
        iso = datetime.fromtimestamp(due, ZoneInfo("America/New_York")).isoformat(timespec="milliseconds")
        sched = [f"+1617550{i:04d}" for i in range(SCHEDULED)]
        bulk = [f"+1617660{i:04d}" for i in range(BULK)]
        textus = [f"+1617770{i:04d}" for i in range(TEXTUS)]
        # Half the requests to each web process, a few at a time, as Slack would.
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda a: command(webs[a[0] % 2], f'send --at "{iso}" {a[1]} Fleet {a[0]}',
                                                      fake_slack), enumerate(sched)))
        assert all("Scheduled #" in r.get("text", "") for r in replies), replies[:3]
        start_bulk(webs[0], fake_slack, bulk)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda a: command(webs[a[0] % 2], f"send --via textus {a[1]} Fleet textus {a[0]}",
                                            fake_slack), enumerate(textus)))
        # Kill a worker while the work is under way, restart it, several times.
        print(f"\nfleet: requests in {time.time() - due + 25:.1f}s (schedules due at 25s)")
        mid_work = 0
        for n in range(KILLS):
            time.sleep(4.0)
            name = f"worker{n % 3}"
            mid_work += sum(v for k, v in all_final(fleet_db).items() if k not in FINAL) > 0
            fleet.kill(name)
            fleet.worker(name)
        assert mid_work >= KILLS - 1, "the kills came after the work was done: they test nothing"
        total = SCHEDULED + BULK + TEXTUS
        deadline = time.time() + 120
        counts: dict[str, int] = {}
        while time.time() < deadline:
            counts = all_final(fleet_db)
            if sum(v for k, v in counts.items() if k in FINAL) == total:
                break
            time.sleep(0.5)
        assert sum(v for k, v in counts.items() if k in FINAL) == total, counts
        time.sleep(3.0)  # Slack work (redraws, summaries) still draining from the outbox
    finally:
        fleet.stop()
    check_at_most_once(fleet_db, fake_providers, sched + bulk + textus)
    problems = posted_once_problems(fake_slack, top_level=len(sched) + len(textus) + 1)
    problems += textus_limit_problems(fake_providers)
    if AWAITING_FLEET_WIDE_WORK:
        if problems:
            pytest.xfail("awaiting the fleet-wide dispatcher limits and once-across-processes Slack posts: "
                         + "; ".join(problems))
        pytest.fail("posted once and the TextUs limit hold now: set AWAITING_FLEET_WIDE_WORK = False")
    assert problems == []


def requested_numbers(fake: FakeProviders) -> Counter[str]:
    seen: Counter[str] = Counter()
    for r in fake.requests:
        if r.method != "POST" or not isinstance(r.json, dict):
            continue
        if r.path.startswith("/workspaces/"):
            seen[r.json["receiver"]["contacts"][0]["identifierValue"]] += 1
        elif r.path in ("/message", "/my_account/messages"):
            seen[r.json["to"]] += 1
    return seen


def check_at_most_once(url: str, fake: FakeProviders, numbers: list[str]) -> None:
    """Every recipient requested exactly once, or shown unknown (requested at most once)."""
    store = open_store(url)
    try:
        rows = {r["to_number"]: r["status"] for r in store.conn.execute("SELECT to_number, status FROM messages")}
    finally:
        store.close()
    seen = requested_numbers(fake)
    assert sorted(rows) == sorted(numbers), "a recipient has no row, or a stray row"
    assert [n for n, c in seen.items() if c > 1] == [], "a recipient was requested twice"
    statuses = Counter(rows.values())
    assert set(statuses) <= {"sent", "unknown"}, statuses
    assert [n for n, st in rows.items() if st == "sent" and seen[n] != 1] == []
    assert set(seen) <= set(numbers)
    print(f"\nfleet: {statuses}, requests {sum(seen.values())}")


def posted_once_problems(fake: FakeSlack, top_level: int) -> list[str]:
    """Each visible message once: one per send and one bulk progress post; one bulk summary."""
    posts = [c["params"] for c in fake.calls_to("chat.postMessage")]
    visible = Counter(p.get("text", "") for p in posts if not p.get("thread_ts"))
    summaries = [p for p in posts if p.get("thread_ts") and " Bulk #" in p.get("text", "")
                 and " finished in" in p.get("text", "")]
    problems = []
    if sum(visible.values()) != top_level or max(visible.values(), default=0) > 1:
        twice = sum(1 for c in visible.values() if c > 1)
        problems.append(f"{sum(visible.values())} visible posts for {top_level} messages ({twice} posted twice)")
    if len(summaries) != 1:
        problems.append(f"{len(summaries)} bulk summaries")
    return problems


def textus_limit_problems(fake: FakeProviders) -> list[str]:
    times = [r.time for r in fake.requests if r.path == "/my_account/messages" and r.method == "POST"]
    worst = busiest_second(times)
    print(f"fleet: TextUs busiest 1-s window {worst} (limit {TEXTUS_RATE}/s + burst {BURST})")
    return [f"TextUs busiest 1-s window {worst} > {TEXTUS_RATE} + {BURST}"] if worst > TEXTUS_RATE + BURST else []
