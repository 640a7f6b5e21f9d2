"""End to end over Socket Mode: the real app and slack_sdk's builtin client, offline.

The app is wired as `smsbot run` wires it when SLACK_APP_TOKEN is set (no signing
secret): SocketModeHandler asks FakeSlack's apps.connections.open for a URL,
connects to FakeSocketMode, and answers each envelope over the socket.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.app.runtime import Runtime, build_runtime
from bot.core.config import require_slack
from tests.conftest import make_settings, settle
from tests.fakes.providers import FakeProviders
from tests.fakes.slack import DEFAULT_APP_TOKEN, FakeSlack
from tests.fakes.slack_requests import slash_command_body
from tests.fakes.socket_mode import (
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FakeSocketMode,
    accept_key,
    encode_frame,
)

APP_TOKEN = DEFAULT_APP_TOKEN  # "xapp-1-test"


@dataclass
class SocketE2E:
    rt: Runtime
    slack: FakeSlack
    providers: FakeProviders
    sock: FakeSocketMode
    handler: SocketModeHandler

    def command_body(self, text: str, **kw: Any) -> dict[str, str]:
        # Socket Mode carries the same fields as the HTTP form post, as a JSON object.
        kw.setdefault("response_url", self.slack.response_url())
        return dict(parse_qsl(slash_command_body(text=text, **kw).decode()))

    def sends(self) -> list[Any]:
        return [r for r in self.providers.requests if r.path == "/message"]

    def announcements(self) -> list[Any]:
        return [c for c in self.slack.calls_to("chat.postMessage") if not c["params"].get("thread_ts")]


@pytest.fixture
def socket_e2e(tmp_path: Path, fake_slack: FakeSlack, fake_providers: FakeProviders) -> Iterator[SocketE2E]:
    sock = FakeSocketMode().start()
    fake_slack.socket_mode_url = sock.new_url
    settings = make_settings(tmp_path, fake_slack, fake_providers,
                             slack_app_token=APP_TOKEN, slack_signing_secret=None)
    require_slack(settings)  # what `smsbot run` checks first: an app token stands in for the secret
    rt = build_runtime(settings, with_worker=True, poll_interval=0.1,
                       http_client=httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0)))
    handler: SocketModeHandler | None = None
    try:
        rt.start_worker()
        rt.start_web(host="127.0.0.1", port=0)  # cmd_run serves webhooks and /healthz beside the socket
        assert settings.slack_app_token is not None
        handler = SocketModeHandler(rt.bolt, settings.slack_app_token.get_secret_value())
        handler.connect()  # start() without blocking forever
        sock.wait_connected()
        yield SocketE2E(rt=rt, slack=fake_slack, providers=fake_providers, sock=sock, handler=handler)
    finally:
        if handler is not None:
            # The builtin client only notices its own close() after a blocked read times out
            # (3 s); a close frame from the server ends that read at once. Without reconnecting.
            handler.client.auto_reconnect_enabled = False
        sock.stop()
        if handler is not None:
            handler.close()
        rt.stop()


def test_connects_with_the_app_token_and_keeps_the_socket_alive(socket_e2e: SocketE2E) -> None:
    [opened] = socket_e2e.slack.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN and opened.ok
    [conn] = socket_e2e.sock.open_connections()
    # The client pings right after the handshake; our pong reached it and was matched.
    deadline = time.monotonic() + 2
    session = socket_e2e.handler.client.current_session
    assert session is not None
    while session.last_ping_pong_time is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert conn.pings >= 1 and session.last_ping_pong_time is not None
    assert socket_e2e.handler.client.is_connected()


def test_slash_command_send_acks_over_the_socket_and_a_retry_sends_once(socket_e2e: SocketE2E) -> None:
    e2e = socket_e2e
    body = e2e.command_body("send +16175551212 Hi", trigger_id="trig-socket-1", user_id="U1", channel_id="C1")
    first = e2e.sock.push_slash_command(body)
    ack = e2e.sock.wait_for_ack(first, timeout=3)
    # The quick send answers nothing ephemeral: the visible channel message is the feedback.
    assert ack == {"envelope_id": first}
    assert e2e.sock.ack_seconds(first) < 3  # Slack's deadline for an ack

    announce = e2e.slack.wait_for("chat.postMessage", lambda c: not c["params"].get("thread_ts"))[0]
    assert announce["params"]["channel"] == "C1"
    assert announce["params"]["text"] == "<@U1> → +1 617-555-1212 via Twilio SMS: Hi"
    reply = e2e.slack.wait_for(
        "chat.postMessage", lambda c: "Accepted by Twilio SMS" in (c["params"].get("text") or ""))[0]
    assert reply["params"]["thread_ts"] == announce["response"]["ts"]
    assert len(e2e.sends()) == 1 and e2e.sends()[0].json["text"] == "Hi"

    # Slack re-delivers the same invocation (same trigger_id) as a retry: acked, not re-sent.
    again = e2e.sock.push_slash_command(body, retry_attempt=1, retry_reason="timeout")
    assert e2e.sock.wait_for_ack(again, timeout=3) == {"envelope_id": again}
    settle(e2e.rt)  # the app did all it will do: the checks below are not a race
    assert len(e2e.sends()) == 1
    assert len(e2e.announcements()) == 1
    assert e2e.rt.store.counts_by_status() == {"sent": 1}
    assert e2e.sock.errors == []


def test_invalid_number_acks_with_an_ephemeral_error(socket_e2e: SocketE2E) -> None:
    e2e = socket_e2e
    eid = e2e.sock.push_slash_command(e2e.command_body("send 555-12 Hello"))
    ack = e2e.sock.wait_for_ack(eid, timeout=3)
    assert ack["envelope_id"] == eid
    assert ack["payload"]["response_type"] == "ephemeral"
    assert "not a valid phone number" in ack["payload"]["text"]
    settle(e2e.rt)  # the app did all it will do: the checks below are not a race
    assert e2e.rt.store.counts_by_status() == {}
    assert e2e.sends() == [] and e2e.announcements() == []
    assert e2e.sock.errors == []


def test_shortcut_and_event_envelopes_are_dispatched(socket_e2e: SocketE2E) -> None:
    e2e = socket_e2e
    shortcut = {
        "type": "shortcut", "token": "fake-verification-token", "action_ts": f"{time.time():.6f}",
        "team": {"id": "T1", "domain": "fake-team"},
        "user": {"id": "U1", "username": "alice", "team_id": "T1"},
        "is_enterprise_install": False, "enterprise": None,
        "callback_id": "send_sms", "trigger_id": "trig-socket-short",
    }
    eid = e2e.sock.push_interactive(shortcut)
    assert e2e.sock.wait_for_ack(eid, timeout=3) == {"envelope_id": eid}
    opened = e2e.slack.wait_for("views.open")[0]
    assert opened["params"]["trigger_id"] == "trig-socket-short"

    event = {"type": "app_home_opened", "user": "U1", "channel": "DU1", "tab": "home",
             "event_ts": f"{time.time():.6f}"}
    first = e2e.sock.push_event(event, event_id="Ev0SOCKET1")
    assert e2e.sock.wait_for_ack(first, timeout=3) == {"envelope_id": first}
    e2e.slack.wait_for("views.publish", lambda c: c["params"].get("user_id") == "U1")
    # The re-delivered event (same event_id) is acked but handled once.
    again = e2e.sock.push_event(event, event_id="Ev0SOCKET1", retry_attempt=1, retry_reason="timeout")
    assert e2e.sock.wait_for_ack(again, timeout=3) == {"envelope_id": again}
    settle(e2e.rt)  # the app did all it will do: the checks below are not a race
    assert len(e2e.slack.calls_to("views.publish")) == 1
    assert e2e.sock.errors == []


def test_reconnects_when_slack_asks_and_keeps_working(socket_e2e: SocketE2E) -> None:
    e2e = socket_e2e
    e2e.sock.request_reconnect()
    # The client fetches a fresh URL (tickets are single use) and opens a second connection.
    e2e.slack.wait_for("apps.connections.open", count=2, timeout=5)
    deadline = time.monotonic() + 5
    while len(e2e.sock.connections) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(e2e.sock.connections) == 2
    e2e.sock.wait_connected()
    eid = e2e.sock.push_slash_command(e2e.command_body("help"))
    # The client reads the new socket only once its read on the old one ends (at the close).
    assert "/sms send" in e2e.sock.wait_for_ack(eid, timeout=5)["payload"]["text"]
    assert e2e.sock.errors == []


# ---------------------------------------------------------------------- the fake itself, with a raw client


class _RawClient:
    """The bare minimum of a WebSocket client, to poke the fake server's edges."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=2)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.hostname}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.rfile = self.sock.makefile("rb")
        self.status = int(self.rfile.readline().split()[1])
        headers = {}
        while (line := self.rfile.readline().decode()) not in ("\r\n", ""):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if self.status == 101:
            assert headers["sec-websocket-accept"] == accept_key(key)

    def send(self, opcode: int, payload: bytes, *, masked: bool = True, fin: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, mask=os.urandom(4) if masked else None, fin=fin))

    def recv(self) -> tuple[int, bytes]:
        b1, b2 = self.rfile.read(2)
        assert not b2 & 0x80, "server frames are never masked"
        n = b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self.rfile.read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self.rfile.read(8))
        return b1 & 0x0F, self.rfile.read(n)

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def test_fake_server_speaks_rfc6455_and_reports_misbehaving_clients() -> None:
    with FakeSocketMode() as server:
        # A URL is good for one connection, like Slack's.
        url = server.new_url()
        client = _RawClient(url)
        assert client.status == 101
        opcode, hello = client.recv()
        assert opcode == OP_TEXT and json.loads(hello)["type"] == "hello"
        client.send(OP_PING, b"are you there")
        assert client.recv() == (OP_PONG, b"are you there")

        # An ack split over three frames, with a 16-bit length in the middle, is put back together.
        eid = server.push_slash_command({"command": "/sms", "text": "help"})
        assert json.loads(client.recv()[1])["envelope_id"] == eid
        ack = json.dumps({"envelope_id": eid, "payload": {"text": "x" * 300}}).encode()
        client.send(OP_TEXT, ack[:10], fin=False)
        client.send(OP_CONT, ack[10:200], fin=False)
        client.send(OP_CONT, ack[200:])
        assert server.wait_for_ack(eid, timeout=2)["payload"]["text"] == "x" * 300
        assert server.errors == []

        client.send(OP_CLOSE, struct.pack("!H", 1000))
        assert client.recv()[0] == OP_CLOSE
        client.close()
        assert _RawClient(url).status == 401  # the ticket was used

        # Unmasked client frames break the protocol: closed with 1002 and recorded.
        rude = _RawClient(server.new_url())
        rude.recv()  # hello
        rude.send(OP_TEXT, b"{}", masked=False)
        opcode, data = rude.recv()
        assert opcode == OP_CLOSE and struct.unpack("!H", data[:2])[0] == 1002
        rude.close()
        assert any("not masked" in e for e in server.errors)


def test_unsigned_http_requests_are_refused_in_socket_mode(socket_e2e: SocketE2E) -> None:
    import httpx

    from tests.fakes.slack_requests import slash_command_body

    e2e = socket_e2e
    assert e2e.rt._server is not None
    port = [s for srv in e2e.rt._server.servers for s in srv.sockets][0].getsockname()[1]
    body = slash_command_body(text="send +16175551212 forged", response_url=e2e.slack.response_url())
    resp = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 401
    settle(e2e.rt)  # the app did all it will do: the checks below are not a race
    assert e2e.sends() == [] and e2e.rt.store.counts_by_status() == {}
