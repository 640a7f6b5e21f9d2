"""Bulk sends through the real pipeline against a local fake provider; prints figures.

1. Throughput: N recipients (CSV parse -> draft -> confirm -> Dispatcher -> fake Bird with
   no latency), next to a plain httpx loop (same concurrency) against the same fake.
2. Rate: a fake taking 50 ms a call and SMS_RATE_LIMIT_BIRD=200: achieved rate (>= 95%).
3. Ack: p99 of signed `/sms send` requests to the real web app while job 1 runs (< 100 ms).
4. Peak memory (RSS) of the whole process, fakes included (< 150 MB).

Usage: python bench/bulk.py [--recipients 100000] [--rate-recipients 3000]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app.runtime import Runtime, build_runtime  # noqa: E402
from bot.core.bulk.engine import BulkEngine  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from bot.core.input.recipients import iter_csv  # noqa: E402
from tests.fakes.providers import FakeProviders  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.slack_requests import sign, slash_command_body  # noqa: E402

SECRET = "bench-signing-secret"
BIRD_KEY, BIRD_WS, BIRD_CH = "bench-bird-key", "11111111-2222-3333-4444-555555555555", \
    "66666666-7777-8888-9999-000000000000"


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def runtime(tmp: str, name: str, slack: FakeSlack, fake: FakeProviders, rate: float) -> Runtime:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_bot_token="xoxb-test-token", slack_signing_secret=SECRET, slack_api_url=slack.base_url,
        database_url=f"sqlite:///{Path(tmp) / name}", bird_api_key=BIRD_KEY, bird_api_url=fake.url,
        bird_workspace_id=BIRD_WS, bird_channel_id=BIRD_CH, sms_rate_limit_bird=rate, sms_default_sender="bird",
    )
    rt = build_runtime(settings, poll_interval=0.05)
    return rt


def csv_bytes(n: int, offset: int = 0) -> bytes:
    return ("to,name\n" + "".join(f"+1617{2000000 + offset + i:07d},Person {i}\n" for i in range(n))).encode()


def start_job(rt: Runtime, n: int, offset: int = 0) -> tuple[BulkEngine, int, float]:
    engine: BulkEngine = rt.bulk  # type: ignore[assignment]
    start = time.perf_counter()
    parsed = iter_csv(csv_bytes(n, offset))  # as `/sms bulk` and `smsbot bulk` read a file: streamed
    plan = engine.draft(parsed, "Hi {name}, your order is ready", "bird", allow_duplicates=False, when=None,
                        idem_key=f"bench:{offset}:{time.time_ns()}", user_id="U1", channel_id="C1")
    del parsed
    prepare = time.perf_counter() - start
    engine.confirm(plan.job_id)
    return engine, plan.job_id, prepare


def wait_done(engine: BulkEngine, job_id: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = engine.jobs.get(job_id)
        if job is not None and job.status == "done":
            return
        time.sleep(0.1)
    raise SystemExit(f"bulk #{job_id} did not finish in {timeout:.0f} s: {engine.jobs.counts(job_id)}")


def ack_probe(url: str, stop: threading.Event, out: list[float], interval: float) -> None:
    # Each probe is a real send that FakeSlack keeps forever: space them so ~1,000 are made
    # and the fake's memory does not pass for ours.
    with httpx.Client(timeout=10) as client:
        i = 0
        while not stop.is_set() and i < 1005:
            body = slash_command_body(text=f"send +16175551212 Probe {i}", trigger_id=f"probe-{time.time_ns()}",
                                      response_url="http://127.0.0.1:9/r")
            headers = sign(SECRET, body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            t0 = time.perf_counter()
            resp = client.post(url, content=body, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            if resp.status_code == 200 and i >= 5:  # the first few warm up
                out.append(elapsed)
            i += 1
            stop.wait(interval)


def plain_loop(fake: FakeProviders, n: int, threads: int) -> float:
    """The same requests with nothing around them: httpx clients in `threads` threads."""
    url = f"{fake.url}/workspaces/{BIRD_WS}/channels/{BIRD_CH}/messages"
    headers = {"Authorization": f"AccessKey {BIRD_KEY}", "Content-Type": "application/json"}
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
                                                   "identifierValue": f"+1617{2000000 + i:07d}"}]},
                        "body": {"type": "text", "text": {"text": f"Hi Person {i}, your order is ready"}}}
                client.post(url, content=json.dumps(body), headers=headers)

    start = time.perf_counter()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--rate-recipients", type=int, default=3000)
    args = parser.parse_args()
    n = args.recipients
    figures: dict[str, Any] = {}
    base_rss = rss_now_mb()

    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack, \
            FakeProviders(bird_access_key=BIRD_KEY, bird_workspace_id=BIRD_WS, bird_channel_ids=(BIRD_CH,),
                          record=False, max_stored=1000) as fake:
        # 1 + 3: throughput with a zero-latency fake, and /sms send acks meanwhile.
        rt = runtime(tmp, "throughput.db", slack, fake, rate=1_000_000)
        port = rt.start_web(host="127.0.0.1", port=0)
        rt.start_worker()
        concurrency = rt.dispatcher.concurrency if rt.dispatcher else 0
        acks: list[float] = []
        stop = threading.Event()
        engine, job_id, prepare = start_job(rt, n)
        start = time.perf_counter()
        probe = threading.Thread(target=ack_probe, args=(f"http://127.0.0.1:{port}/slack/events", stop, acks,
                                                      max(0.02, n / 300 / 1000)))
        probe.start()
        wait_done(engine, job_id, timeout=max(120, n / 200))
        elapsed = time.perf_counter() - start
        stop.set()
        probe.join()
        counts = engine.jobs.counts(job_id)
        figures["pipeline"] = counts.get("sent", 0) / elapsed
        figures["prepare"] = prepare
        rt.stop()
        figures["plain"] = plain_loop(fake, n, concurrency)

        # 2: the configured rate with a 50 ms provider.
        fake.latency = 0.05
        m = args.rate_recipients
        rt2 = runtime(tmp, "rate.db", slack, fake, rate=200)
        rt2.start_worker()
        engine2, job2, _ = start_job(rt2, m, offset=5_000_000)
        wait_done(engine2, job2, timeout=max(60, m / 100))
        stamps = [r[0] for r in rt2.store.conn.execute(
            "SELECT sent_at FROM messages WHERE bulk_job_id = ? AND status = 'sent' ORDER BY sent_at", (job2,))]
        figures["rate"] = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
        figures["rate_concurrency"] = rt2.dispatcher.concurrency if rt2.dispatcher else 0
        rt2.stop()

    peak = rss_peak_mb()
    print(f"bulk of {n:,} recipients (per-recipient Bird sends, fake provider on 127.0.0.1, record=False)")
    print(f"  parse + render + draft of {n:,} rows: {figures['prepare']:.2f} s")
    print(f"  pipeline, zero-latency fake:    {figures['pipeline']:,.0f} msg/s (concurrency {concurrency})")
    print(f"  plain httpx loop, same fake:    {figures['plain']:,.0f} msg/s ({concurrency} threads)")
    print(f"  ratio pipeline / plain:         {figures['pipeline'] / figures['plain']:.2f}")
    pct = figures["rate"] / 200 * 100
    print(f"  50 ms fake, limit 200/s, {args.rate_recipients:,} recipients: {figures['rate']:.1f} msg/s "
          f"= {pct:.1f}% of the limit (target >= 95%; concurrency {figures['rate_concurrency']})")
    if acks:
        print(f"  /sms send ack during the job:   p50 {percentile(acks, 50):.1f} ms   p99 {percentile(acks, 99):.1f} ms"
              f"   max {max(acks):.1f} ms over {len(acks)} signed requests (target p99 < 100 ms)")
    print(f"  peak RSS: {peak:.0f} MB (at start {base_rss:.0f} MB; target < 150 MB)")


if __name__ == "__main__":
    main()
