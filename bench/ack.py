"""Ack latency of a signed `/sms send` over HTTP, and outbox rows written per second.

Runs the real web app and worker (sandbox sender, fake Slack on 127.0.0.1) and prints
figures. Usage: python bench/ack.py [--requests 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app.runtime import build_runtime  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from bot.core.sending import SendRequest, SendService  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.slack_requests import sign, slash_command_body  # noqa: E402

SECRET = "bench-signing-secret"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=5000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token="xoxb-test-token",
            slack_signing_secret=SECRET,
            slack_api_url=slack.base_url,
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            sms_rate_limit_sandbox=1000,
        )
        rt = build_runtime(settings)
        port = rt.start_web(host="127.0.0.1", port=0)
        rt.start_worker()
        url = f"http://127.0.0.1:{port}/slack/events"
        times: list[float] = []
        with httpx.Client(timeout=10) as client:
            for i in range(args.requests + 50):
                body = slash_command_body(text=f"send +16175551212 Bench message {i}", trigger_id=f"bench-{i}",
                                          response_url="http://127.0.0.1:9/r")
                headers = sign(SECRET, body)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                start = time.perf_counter()
                resp = client.post(url, content=body, headers=headers)
                elapsed = time.perf_counter() - start
                if resp.status_code != 200:
                    raise SystemExit(f"unexpected answer {resp.status_code}: {resp.text[:200]}")
                if i >= 50:  # warm-up excluded
                    times.append(elapsed * 1000)
        # Let the worker drain so the figures below are not fighting it.
        deadline = time.time() + 60
        while rt.store.counts_by_status().get("pending", 0) and time.time() < deadline:
            time.sleep(0.1)
        sent = rt.store.counts_by_status().get("sent", 0)

        rt.stop()

        # Outbox writes on their own (worker and Slack threads stopped, so nothing else
        # competes for the write lock): one transaction per row, as a listener does.
        service = SendService(rt.store, rt.senders)
        start = time.perf_counter()
        for i in range(args.rows):
            service.submit(SendRequest(sender="sandbox", to="+16175551212", text=f"row {i}",
                                       idem_key=f"bench-row-{i}", source="bench"))
        rows_per_s = args.rows / (time.perf_counter() - start)

    print(f"/sms send ack over HTTP ({len(times)} signed requests, keep-alive, 1 client):")
    print(f"  p50 {statistics.median(times):.2f} ms   p99 {percentile(times, 99):.2f} ms   "
          f"max {max(times):.2f} ms   (target p99 < 100 ms)")
    print(f"  worker sent {sent} of them through the sandbox meanwhile")
    print(f"outbox rows written per second (SendService.submit, one transaction each): {rows_per_s:,.0f}")


if __name__ == "__main__":
    main()
