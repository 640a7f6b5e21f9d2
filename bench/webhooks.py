"""Provider webhooks end to end: signed Sociocs status events, then customers' messages
(issue 13), over HTTP into the real web app.

Prints events ingested per second (the HTTP answer comes after the event is stored) and
the Slack calls made per 1,000 events (thread updates are coalesced per message); then
inbound messages per second (stored, 10% re-delivered) and how long until each one was
posted in its send's thread.

The app (uvicorn + Starlette + the store + the delivery thread) runs in this process like
`smsbot run`; fake Slack and the HTTP clients run in other processes so they do not share
the app's GIL. Clients keep connections open and send pre-signed requests, many in flight.

Usage: python bench/webhooks.py [--messages 2000] [--clients 2] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app.runtime import build_runtime  # noqa: E402
from bot.core.config import Settings  # noqa: E402
from storage.store import NewMessage  # noqa: E402

SECRET = "bench-webhook-secret"


def run_fake_slack(queue: mp.Queue, stop: mp.Event) -> None:  # type: ignore[type-arg]
    from tests.fakes.slack import FakeSlack

    with FakeSlack() as slack:
        queue.put(slack.base_url)
        stop.wait()
        queue.put(len(slack.calls))


def request_bytes(host: str, body: bytes) -> bytes:
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (f"POST /webhooks/sociocs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"X-Sociocs-Signature: {sig}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _connection(host: str, port: int, requests: list[bytes], failures: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    for raw in requests:
        writer.write(raw)
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        if b" 200 " not in status_line:
            failures.append(1)
    writer.close()


def run_clients(host: str, port: int, bodies: list[bytes], connections: int, start: mp.Event,  # type: ignore[type-arg]
                out: mp.Queue) -> None:  # type: ignore[type-arg]
    raws = [request_bytes(f"{host}:{port}", b) for b in bodies]
    lanes = [raws[i::connections] for i in range(connections)]
    failures: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(_connection(host, port, lane, failures) for lane in lanes if lane))

    start.wait()
    began = time.perf_counter()
    asyncio.run(main())
    out.put((began, time.perf_counter(), len(failures)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections per client process")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    slack_q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    slack_stop = ctx.Event()
    slack_proc = ctx.Process(target=run_fake_slack, args=(slack_q, slack_stop), daemon=True)
    slack_proc.start()
    slack_url = slack_q.get(timeout=20)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            slack_bot_token="xoxb-test-token", slack_signing_secret="bench-signing", slack_api_url=slack_url,
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", sociocs_webhook_secret=SECRET,
            sms_notify_channel="C2", sms_notify_on="failures",
        )
        rt = build_runtime(settings, with_worker=False)
        delivery = rt.ctx.delivery
        assert delivery is not None and rt.conversations is not None
        store = rt.store

        # Sent messages with a thread and a status line, as the dispatcher leaves them.
        pids: list[str] = []
        for i in range(args.messages):
            number = f"+1617555{i % 10000:04d}"
            mid, _ = store.enqueue(NewMessage(idem_key=f"b{i}", sender="twlo", to_number=number,
                                              payload={"to": number, "text": f"m{i}"}, summary=f"m{i}",
                                              due_at=time.time(), created_by="U1", channel_id="C1"))
            store.claim_one(mid, "bench")
            store.mark_sending(mid, "bench")
            store.record_outcome(mid, "sent", provider_message_id=f"SOC{i:06d}", delivery="accepted")
            head = rt.client.chat_postMessage(channel="C1", text=f"m{i}")
            line = rt.client.chat_postMessage(channel="C1", text="accepted", thread_ts=head["ts"])
            store.set_thread(mid, "C1", head["ts"], status_ts=line["ts"])
            pids.append(f"SOC{i:06d}")

        # Per message: sent, delivered (5% failed instead); 10% duplicated; shuffled, so some
        # arrive out of order.
        events: list[dict[str, object]] = []
        rng = random.Random(7)
        for pid in pids:
            events.append({"message_id": pid, "event": "status_update", "event_data": {"status": "sent"}})
            final = "failed" if rng.random() < 0.05 else "delivered"
            data: dict[str, object] = {"status": final}
            if final == "failed":
                data["error"] = {"code": 30003, "message": "Unreachable destination handset"}
            events.append({"message_id": pid, "event": "status_update", "event_data": data})
        events += rng.sample(events, len(events) // 10)
        rng.shuffle(events)
        bodies = [json.dumps(e).encode() for e in events]

        port = rt.start_web(host="127.0.0.1", port=0)
        calls_before = delivery.outbox.calls
        elapsed, failures = blast(ctx, port, bodies, args)
        drain_start = time.perf_counter()
        delivery.outbox.flush(120)
        drained = time.perf_counter() - drain_start
        calls = delivery.outbox.calls - calls_before
        counts = dict(store.conn.execute("SELECT delivery, count(*) FROM messages GROUP BY delivery").fetchall())
        stored = store.conn.execute("SELECT count(*) FROM delivery_events").fetchone()[0]

        # Customers answer: one message per send (10% re-delivered), each into its send's thread.
        replies = [inbound_event(i) for i in range(args.messages)]
        replies += rng.sample(replies, len(replies) // 10)
        rng.shuffle(replies)
        in_elapsed, in_failures = blast(ctx, port, [json.dumps(e).encode() for e in replies], args)
        shown_start = time.perf_counter()
        rt.conversations.flush(300)
        shown = time.perf_counter() - shown_start
        inbound_stored = store.conn.execute("SELECT count(*) FROM inbound_messages").fetchone()[0]
        rt.stop()
    slack_stop.set()
    slack_proc.join(5)

    print(f"events posted:            {len(events)} ({args.messages} messages, {args.clients} client processes x "
          f"{args.connections} connections)")
    print(f"non-200 answers:          {failures}")
    print(f"ingested per second:      {len(events) / elapsed:,.0f} events/s (all answered in {elapsed:.2f} s)")
    print(f"distinct events stored:   {stored}; messages by delivery: {counts}")
    print(f"Slack calls:              {calls} ({1000 * calls / len(events):.0f} per 1,000 events); "
          f"thread updates drained {drained:.2f} s after the last answer")
    print(f"inbound posted:           {len(replies)} ({inbound_stored} distinct stored; non-200 answers: {in_failures})")
    print(f"inbound per second:       {len(replies) / in_elapsed:,.0f} messages/s (all answered in {in_elapsed:.2f} s); "
          f"all in their threads {shown:.2f} s after the last answer")


def inbound_event(i: int) -> dict[str, object]:
    return {"message_id": f"IN{i:06d}", "event": "message", "provider": "twlo", "channel_key": "twlo_1",
            "direction": "incoming", "from": f"1617555{i % 10000:04d}", "to": "15550001111",
            "text": f"reply {i}", "timestamp": int(time.time() * 1000)}


def blast(ctx: Any, port: int, bodies: list[bytes], args: argparse.Namespace) -> tuple[float, int]:
    """Post `bodies` from the client processes at once; (seconds from first to last answer, non-200s)."""
    start = ctx.Event()
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=run_clients, args=("127.0.0.1", port, bodies[i::args.clients],
                                                   args.connections, start, out), daemon=True)
             for i in range(args.clients)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # let the clients sign their requests first
    start.set()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(10)
    return max(r[1] for r in results) - min(r[0] for r in results), sum(r[2] for r in results)


if __name__ == "__main__":
    main()
