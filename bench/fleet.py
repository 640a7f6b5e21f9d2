"""Bulk throughput of the dispatcher against a fake Bird in its own process (bench/fake_bird.py
on uvicorn), counted at the fake, next to a plain httpx loop in the same run, interleaved
(plain, pipeline, plain...). See ../shared/benchmarking.md.

  python bench/fleet.py sqlite [--recipients 5000]           (a) one process on SQLite
  python bench/fleet.py pg [--recipients 5000] [--workers 1,2,4]
                                                               (b) `smsbot worker` processes on PostgreSQL
  python bench/fleet.py rate [--recipients 3000]             (c) limit 200/s, 50 ms fake, 4 workers

PostgreSQL: SMSBOT_BENCH_DATABASE_URL (default the test server), a fresh schema per run, dropped after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.runtime import build_runtime  # noqa: E402
from bot.core.bulk.engine import BulkEngine  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from bot.core.input.recipients import iter_csv  # noqa: E402
from bot.core.senders import build_senders  # noqa: E402
from storage import open_store  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

PG_URL = os.environ.get("SMSBOT_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEY, WS, CH = "bench-bird-key", "11111111-2222-3333-4444-555555555555", "66666666-7777-8888-9999-000000000000"
THREADS = 16  # the dispatcher's default concurrency; the plain loop gets as many


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fake_bird() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench.fake_bird:app", "--port", str(port),
                             "--http", "httptools", "--no-access-log", "--log-level", "warning"], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                _CONTROL.get(f"{url}/_stats", timeout=1)
                break
            except httpx.TransportError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


# One client for the bench's own calls: httpx.get() builds a client (and an SSL context,
# ~5-10 ms of CPU) per call, and polling the fake with it took CPU from the pipeline measured.
_CONTROL = httpx.Client(timeout=30)


def reset(url: str, latency: float = 0.0) -> None:
    _CONTROL.post(f"{url}/_reset?latency={latency}")


def stats(url: str, count_only: bool = False) -> dict[str, Any]:
    return dict(_CONTROL.get(f"{url}/_stats" + ("?count" if count_only else "")).json())


def wait_count(url: str, n: int, timeout: float) -> dict[str, Any]:
    deadline = time.time() + timeout
    while (s := stats(url, count_only=True))["count"] < n:
        if time.time() > deadline:
            raise SystemExit(f"only {s['count']} of {n} requests reached the fake in {timeout:.0f} s")
        time.sleep(0.2)
    time.sleep(0.3)  # nothing more may come: a second send would show here
    s = stats(url)
    if s["count"] != n or s["unique"] != n:
        raise SystemExit(f"{s['count']} requests for {s['unique']} recipients (expected {n} each once)")
    return s


def plain_loop(url: str, n: int, offset: int) -> float:
    """The same requests with nothing around them: httpx clients in THREADS threads."""
    reset(url)
    target = f"{url}/workspaces/{WS}/channels/{CH}/messages"
    headers = {"Authorization": f"AccessKey {KEY}", "Content-Type": "application/json"}
    counter = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body = {"receiver": {"contacts": [{"identifierKey": "phonenumber",
                                                   "identifierValue": f"+1617{offset + i:07d}"}]},
                        "body": {"type": "text", "text": {"text": f"Hi Person {i}, your order is ready"}}}
                client.post(target, content=json.dumps(body), headers=headers)

    pool = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return float(wait_count(url, n, 60)["rate"])


def csv_bytes(n: int, offset: int) -> bytes:
    return ("to,name\n" + "".join(f"+1617{offset + i:07d},Person {i}\n" for i in range(n))).encode()


def start_job(engine: BulkEngine, n: int, offset: int) -> None:
    plan = engine.draft(iter_csv(csv_bytes(n, offset)), "Hi {name}, your order is ready", "bird",
                        allow_duplicates=False, when=None, idem_key=f"bench:{offset}:{time.time_ns()}",
                        user_id="U1", channel_id="C1")
    engine.confirm(plan.job_id, post=False)


def bird_env(database_url: str, rate: float, fake: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "BIRD_API_KEY": KEY, "BIRD_API_URL": fake, "BIRD_WORKSPACE_ID": WS,
            "BIRD_CHANNEL_ID": CH, "SMS_DEFAULT_SENDER": "bird", "SMS_RATE_LIMIT_BIRD": str(rate)}


def ratio_line(name: str, rate: float, before: float, after: float) -> str:
    plain = (before + after) / 2
    return (f"  {name:<28} {rate:7.0f} msg/s   plain loop {before:.0f} / {after:.0f} msg/s"
            f"   ratio {rate / plain:.2f}")


# -- (a) one process on SQLite


def bench_sqlite(fake: str, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        env = bird_env(f"sqlite:///{Path(tmp) / 'bench.db'}", 1_000_000, fake)
        settings = Settings(_env_file=None, slack_bot_token="xoxb-test-token",  # type: ignore[call-arg]
                            slack_signing_secret="s", slack_api_url=slack.base_url,
                            **{k.lower(): v for k, v in env.items()})
        rt = build_runtime(settings, poll_interval=0.05, with_web=False, with_slack=True)
        rt.start_worker()
        engine = rt.bulk
        assert engine is not None
        lines = []
        cpu0 = own_cpu()
        before = plain_loop(fake, n, 1_000_000)
        plain_cpu = own_cpu() - cpu0
        for round_ in range(2):
            reset(fake)
            cpu0 = own_cpu()
            start_job(engine, n, 2_000_000 + round_ * n)
            rate = float(wait_count(fake, n, 120)["rate"])
            pipe_cpu = own_cpu() - cpu0
            after = plain_loop(fake, n, 3_000_000 + round_ * n)
            commits = rt.dispatcher._writer.commits if rt.dispatcher else 0
            lines.append(ratio_line(f"SQLite pipeline, round {round_ + 1}", rate, before, after)
                         + f"   CPU ms/msg: pipeline {pipe_cpu / n * 1000:.2f}, plain {plain_cpu / n * 1000:.2f}")
            before = after
        rt.stop()
    print(f"(a) one process on SQLite, {n:,} bulk rows per round, zero-latency fake, {THREADS} threads")
    print("\n".join(lines))
    print(f"  outcome transactions: {commits} for {2 * n} rows (group commit)")


# -- (b, c) `smsbot worker` processes on PostgreSQL


@contextmanager
def pg_schema() -> Iterator[str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> float:
    """CPU seconds of every postgres process so far (its backends come and go: a lower bound)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def start_workers(env: dict[str, str], count: int) -> list[subprocess.Popen[str]]:
    """`count` worker processes, returned once each logged "worker started" (on a loaded
    machine importing takes seconds: a fixed sleep let the first seconds of a run count)."""
    procs = [subprocess.Popen([sys.executable, "-m", "bot.app.main", "worker"], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    ready = threading.Barrier(count + 1, timeout=60)

    def follow(proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        told = False
        for line in proc.stderr:  # read to the end so the pipe never fills
            if not told and "worker started" in line:
                told = True
                ready.wait()
            elif "ERROR" in line or "Traceback" in line:
                sys.stderr.write(line)

    for proc in procs:
        threading.Thread(target=follow, args=(proc,), daemon=True).start()
    ready.wait()
    time.sleep(0.5)  # the LISTEN thread starts with the dispatcher
    return procs


def run_workers(fake: str, count: int, n: int, rate: float, offset: int) -> tuple[dict[str, Any], dict[str, float]]:
    with pg_schema() as url:
        store = open_store(url)
        env = {**os.environ, **bird_env(url, rate, fake), "SMSBOT_LOG_LEVEL": "WARNING"}
        env.pop("SLACK_BOT_TOKEN", None)
        procs = start_workers(env, count)
        senders = build_senders(Settings(_env_file=None, **{k.lower(): v  # type: ignore[call-arg]
                                                            for k, v in bird_env(url, rate, fake).items()}))
        engine = BulkEngine(store, senders)
        reset(fake, 0.05 if rate < 1000 else 0.0)
        cpu0 = {"workers": sum(cpu_seconds(p.pid) for p in procs), "postgres": postgres_cpu()}
        wall0 = time.time()
        start_job(engine, n, offset)
        result = wait_count(fake, n, 110)
        wall = time.time() - wall0
        cpu = {"workers": sum(cpu_seconds(p.pid) for p in procs) - cpu0["workers"],
               "postgres": postgres_cpu() - cpu0["postgres"], "wall": wall}
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(15)
        store.close()
    return result, cpu


def bench_pg(fake: str, n: int, counts: list[int]) -> None:
    lines = []
    before = plain_loop(fake, n, 1_000_000)
    for i, count in enumerate(counts):
        result, cpu = run_workers(fake, count, n, 1_000_000, 2_000_000 + i * n)
        after = plain_loop(fake, n, 5_000_000 + i * n)
        lines.append(ratio_line(f"{count} worker(s)", result["rate"], before, after)
                     + f"   CPU s: workers {cpu['workers']:.1f}, postgres {cpu['postgres']:.1f}"
                       f" over {cpu['wall']:.1f} s wall")
        before = after
    print(f"(b) PostgreSQL, `smsbot worker` processes, {n:,} bulk rows each, zero-latency fake on uvicorn")
    print("\n".join(lines))


def bench_rate(fake: str, n: int) -> None:
    result, _ = run_workers(fake, 4, n, 200.0, 7_000_000)
    print(f"(c) PostgreSQL, 4 workers, limit 200/s, 50 ms fake, {n:,} rows: {result['rate']:.1f} msg/s"
          f" = {result['rate'] / 2:.1f}% of the limit; busiest 1-s window {result['busiest']}"
          f" ({result['busiest'] / 2:.1f}% of the limit)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["sqlite", "pg", "rate"])
    parser.add_argument("--recipients", type=int, default=None)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    with fake_bird() as fake:
        if args.what == "sqlite":
            bench_sqlite(fake, args.recipients or 5000)
        elif args.what == "pg":
            bench_pg(fake, args.recipients or 5000, [int(x) for x in args.workers.split(",")])
        else:
            bench_rate(fake, args.recipients or 3000)


if __name__ == "__main__":
    main()
