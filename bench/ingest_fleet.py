"""Webhook ingest on PostgreSQL with two `smsbot serve` processes (and one `smsbot worker`,
which posts the coalesced thread updates): signed Sociocs status events over HTTP, events
per second end to end.

Every process is its own: fake Slack, the two web processes, the worker, and the client
processes, which keep connections open to both web processes (as a load balancer would
spread them) and send pre-signed requests, many in flight. Figures:

- answered: events per second until the last HTTP answer (an answer comes after its event
  is stored);
- end to end: events per second until every message shows its final delivery state in the
  store, read back from PostgreSQL;
- Slack calls per 1,000 events (thread updates are coalesced per message).

Usage: python bench/ingest_fleet.py [--messages 2000] [--clients 2] [--connections 16]
PostgreSQL: SMSBOT_BENCH_DATABASE_URL (default the test server), a fresh schema per run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import cpu_seconds, free_port, pg_schema, postgres_cpu, start_workers  # noqa: E402
from storage import open_store  # noqa: E402
from storage.store import NewMessage, Store  # noqa: E402

SECRET = "bench-webhook-secret"
SIGNING = "bench-signing"


def run_fake_slack(queue: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    from tests.fakes.slack import FakeSlack

    with FakeSlack() as slack:
        queue.put(slack.base_url)
        stop.wait()
        queue.put(len(slack.calls))


def signed(host: str, body: bytes) -> bytes:
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (f"POST /webhooks/sociocs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Sociocs-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _lane(port: int, requests: list[bytes], failures: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for raw in requests:
        writer.write(raw)
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        if b" 200 " not in status_line:
            failures.append(1)
    writer.close()


def run_clients(ports: list[int], bodies: list[bytes], connections: int, start: mp.Event,  # type: ignore[type-arg]
                out: mp.Queue) -> None:  # type: ignore[type-arg]
    """`connections` keep-alive connections, spread over the web processes' ports."""
    lanes = [(ports[i % len(ports)], [signed(f"127.0.0.1:{ports[i % len(ports)]}", b)
                                      for b in bodies[i::connections]]) for i in range(connections)]
    failures: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(_lane(port, lane, failures) for port, lane in lanes if lane))

    start.wait()
    began = time.time()
    asyncio.run(main())
    out.put((began, time.time(), len(failures)))


def sent_messages(store: Store, slack_url: str, n: int) -> list[str]:
    """`n` sent messages with a thread and a status line, as the dispatcher leaves them."""
    from slack_sdk import WebClient

    client = WebClient(token="xoxb-test-token", base_url=slack_url.rstrip("/") + "/")
    pids = []
    for i in range(n):
        mid, _ = store.enqueue(NewMessage(idem_key=f"b{i}", sender="twlo", to_number="+16175551212",
                                          payload={"to": "+16175551212", "text": f"m{i}"}, summary=f"m{i}",
                                          due_at=time.time(), created_by="U1", channel_id="C1",
                                          needs_announce=False))
        store.claim_one(mid, "bench")
        store.mark_sending(mid, "bench")
        store.record_outcome(mid, "sent", provider_message_id=f"SOC{i:06d}", delivery="accepted")
        head = client.chat_postMessage(channel="C1", text=f"m{i}")
        line = client.chat_postMessage(channel="C1", text="accepted", thread_ts=head["ts"])
        store.set_thread(mid, "C1", str(head["ts"]), status_ts=str(line["ts"]))
        pids.append(f"SOC{i:06d}")
    return pids


def events_for(pids: list[str]) -> tuple[list[bytes], int]:
    """Per message: sent, then delivered (5% failed); 10% duplicated; shuffled. Also how many
    messages end failed."""
    rng = random.Random(7)
    events: list[dict[str, Any]] = []
    failed = 0
    for pid in pids:
        events.append({"message_id": pid, "event": "status_update", "event_data": {"status": "sent"}})
        data: dict[str, Any] = {"status": "failed" if rng.random() < 0.05 else "delivered"}
        if data["status"] == "failed":
            failed += 1
            data["error"] = {"code": 30003, "message": "Unreachable destination handset"}
        events.append({"message_id": pid, "event": "status_update", "event_data": data})
    events += rng.sample(events, len(events) // 10)
    rng.shuffle(events)
    return [json.dumps(e).encode() for e in events], failed


def start_web(env: dict[str, str], count: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    ports = [free_port() for _ in range(count)]
    procs = [subprocess.Popen([sys.executable, "-m", "bot.app.main", "serve"], cwd=ROOT,
                              env={**env, "PORT": str(port), "HOST": "127.0.0.1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in ports]
    deadline = time.time() + 60
    for port in ports:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                raise SystemExit(f"smsbot serve on port {port} did not answer /healthz in 60 s")
            time.sleep(0.2)
    return procs, ports


def wait_final(store: Store, n: int, timeout: float) -> float:
    """When every message showed its final delivery state (delivered or failed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = store.conn.execute(
            "SELECT count(*) FROM messages WHERE delivery IN ('delivered', 'failed')").fetchone()[0]
        if done >= n:
            return time.time()
        time.sleep(0.05)
    raise SystemExit(f"only {done} of {n} messages reached their final delivery state in {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--web", type=int, default=2, help="smsbot serve processes")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    slack_q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    slack_stop = ctx.Event()
    slack_proc = ctx.Process(target=run_fake_slack, args=(slack_q, slack_stop), daemon=True)
    slack_proc.start()
    slack_url = slack_q.get(timeout=20)

    with pg_schema() as url:
        store = open_store(url)
        pids = sent_messages(store, slack_url, args.messages)
        bodies, _ = events_for(pids)
        env = {**os.environ, "DATABASE_URL": url, "SLACK_BOT_TOKEN": "xoxb-test-token",
               "SLACK_SIGNING_SECRET": SIGNING, "SLACK_API_URL": slack_url, "SOCIOCS_WEBHOOK_SECRET": SECRET,
               "SMS_NOTIFY_CHANNEL": "C2", "SMS_NOTIFY_ON": "failures"}
        env.pop("SLACK_APP_TOKEN", None)
        web, ports = start_web(env, args.web)
        workers = start_workers(env, 1)
        start = ctx.Event()
        out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        clients = [ctx.Process(target=run_clients, args=(ports, bodies[i::args.clients], args.connections,
                                                         start, out), daemon=True) for i in range(args.clients)]
        for p in clients:
            p.start()
        time.sleep(1.5)  # let the clients sign their requests first
        cpu0 = sum(cpu_seconds(p.pid) for p in web), postgres_cpu()
        start.set()
        results = [out.get(timeout=300) for _ in clients]
        began, answered = min(r[0] for r in results), max(r[1] for r in results)
        final = wait_final(store, args.messages, 120)
        cpu = sum(cpu_seconds(p.pid) for p in web) - cpu0[0], postgres_cpu() - cpu0[1]
        stored = store.conn.execute("SELECT count(*) FROM delivery_events").fetchone()[0]
        time.sleep(2.0)  # the leader's coalesced thread updates
        for p in web + workers:
            p.terminate()
        for p in web + workers:
            p.wait(15)
        store.close()
    slack_stop.set()
    slack_calls = slack_q.get(timeout=10) - 2 * args.messages
    slack_proc.join(5)

    events = len(bodies)
    print(f"webhook ingest on PostgreSQL: {args.web} `smsbot serve` + 1 `smsbot worker`, {events:,} signed Sociocs"
          f" events for {args.messages:,} messages, {args.clients} client processes x {args.connections} connections")
    print(f"  non-200 answers:        {sum(r[2] for r in results)}")
    print(f"  answered:               {events / (answered - began):,.0f} events/s ({answered - began:.2f} s)")
    print(f"  end to end (stored):    {events / (final - began):,.0f} events/s (every message final after"
          f" {final - began:.2f} s); {stored:,} distinct events stored")
    print(f"  CPU s: web processes {cpu[0]:.1f}, postgres {cpu[1]:.1f}")
    print(f"  Slack calls:            {slack_calls} ({1000 * slack_calls / events:.0f} per 1,000 events)")


if __name__ == "__main__":
    main()
