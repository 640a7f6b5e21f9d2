"""A fake Slack Socket Mode endpoint: a small RFC 6455 WebSocket server on 127.0.0.1.

FakeSlack's apps.connections.open hands out `new_url()`; the app's Socket Mode
client connects, gets {"type": "hello"}, and from then on a test pushes
envelopes and waits for the acks the app sends back over the socket::

    with FakeSocketMode() as sock:
        fake_slack.socket_mode_url = sock.new_url
        handler = SocketModeHandler(app, "xapp-1-test"); handler.connect()
        envelope_id = sock.push_slash_command({"command": "/sms", "text": "help", ...})
        ack = sock.wait_for_ack(envelope_id)   # {"envelope_id": ..., "payload": {...}}

Only what Socket Mode uses is implemented: text frames (fragmented or not),
ping/pong and close. Client frames must be masked and server frames never are,
as RFC 6455 section 5.1 requires; violations land in `.errors` instead of
crashing, so a test can assert there were none.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import socket
import socketserver
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

# Socket Mode frames are small JSON; refuse absurd lengths instead of allocating them.
_MAX_MESSAGE = 16 * 1024 * 1024


class _Closed(Exception):
    """The peer went away, or the connection must end (protocol error, server stop)."""


def accept_key(client_key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((client_key + _WS_GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, *, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame; the server sends unmasked ones, `mask` is for a client (and tests of the server)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if mask is None:
        return bytes(head) + payload
    return bytes(head) + mask + _unmask(payload, mask)


def _unmask(data: bytes, mask: bytes) -> bytes:
    # XOR with the 4-byte key repeated: one big-int XOR instead of a Python loop per byte.
    if not data:
        return data
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(len(data), "big")


@dataclass
class Connection:
    """One accepted WebSocket; frames are written under a lock since several threads send."""

    id: int
    ticket: str
    sock: socket.socket
    opened: float = field(default_factory=time.time)
    closed: float | None = None
    close_code: int | None = None  # what the client sent in its close frame, if it sent one
    pings: int = 0
    pongs: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)  # every JSON text message
    _send_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def open(self) -> bool:
        return self.closed is None

    def send_frame(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            if self.closed is not None:
                raise _Closed("connection already closed")
            try:
                self.sock.sendall(encode_frame(opcode, payload))
            except OSError as exc:
                raise _Closed(str(exc)) from None

    def send_json(self, message: dict[str, Any]) -> None:
        self.send_frame(OP_TEXT, json.dumps(message, separators=(",", ":")).encode())


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, fake: FakeSocketMode) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    # Frames are short; without this Nagle plus delayed ACK stalls the ack ~40 ms.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        fake = self.server.fake
        conn = fake._handshake(self.request, self.rfile)
        if conn is None:
            return
        try:
            fake._on_open(conn)
            self._read_loop(fake, conn)
        except _Closed:
            pass
        finally:
            fake._on_closed(conn)

    def _read_exact(self, n: int) -> bytes:
        try:
            data = self.rfile.read(n) if n else b""
        except OSError as exc:  # reset by the peer, or shut down by stop()
            raise _Closed(str(exc)) from None
        if len(data) < n:
            raise _Closed("peer closed the connection")
        return data

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = self._read_exact(2)
        fin, opcode, masked, n = bool(b1 & 0x80), b1 & 0x0F, bool(b2 & 0x80), b2 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        if n > _MAX_MESSAGE:
            raise _ProtocolError(1009, f"frame of {n} bytes")
        if b1 & 0x70:
            raise _ProtocolError(1002, "reserved bits set without an extension")
        if not masked:
            raise _ProtocolError(1002, "client frame not masked")
        mask = self._read_exact(4)
        return fin, opcode, _unmask(self._read_exact(n), mask)

    def _read_loop(self, fake: FakeSocketMode, conn: Connection) -> None:
        parts: list[bytes] = []  # a fragmented text message in progress
        while True:
            try:
                fin, opcode, data = self._read_frame()
                if opcode >= 0x8 and (not fin or len(data) > 125):
                    raise _ProtocolError(1002, "control frames must be whole and at most 125 bytes")
            except _ProtocolError as exc:
                fake._error(f"connection {conn.id}: {exc.reason}")
                fake._close(conn, exc.code, exc.reason)
                return
            if opcode == OP_PING:
                conn.pings += 1
                conn.send_frame(OP_PONG, data)
            elif opcode == OP_PONG:
                conn.pongs += 1
            elif opcode == OP_CLOSE:
                conn.close_code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                fake._close(conn, 1000, "")  # echo the close, as the closing handshake asks
                return
            elif opcode in (OP_TEXT, OP_CONT):
                if (opcode == OP_TEXT) == bool(parts):
                    fake._error(f"connection {conn.id}: unexpected {'text' if parts else 'continuation'} frame")
                    fake._close(conn, 1002, "bad fragmentation")
                    return
                parts.append(data)
                if fin:
                    text, parts = b"".join(parts), []
                    fake._on_text(conn, text)
            else:
                fake._error(f"connection {conn.id}: unsupported opcode {opcode:#x}")


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FakeSocketMode:
    """Socket Mode on 127.0.0.1: `new_url()` for apps.connections.open, push envelopes, read acks."""

    def __init__(self, *, app_id: str = "A1", send_hello: bool = True) -> None:
        self.app_id = app_id
        self.send_hello = send_hello
        self.connections: list[Connection] = []
        self.errors: list[str] = []  # protocol or ack problems seen; a healthy run has none
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._tickets: set[str] = set()
        self._conn_ids = itertools.count(1)
        self._pushed: dict[str, dict[str, Any]] = {}
        self._pushed_at: dict[str, float] = {}
        self._acks: dict[str, list[dict[str, Any]]] = {}
        self._acked_at: dict[str, float] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSocketMode:
        if self._server is None:
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="fake-socket-mode", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close every connection (1001 going away) and stop listening."""
        if self._server is None:
            return
        for conn in self.open_connections():
            self._close(conn, 1001, "server stopping")
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSocketMode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSocketMode is not started")
        return int(self._server.server_address[1])

    def new_url(self) -> str:
        """A one-time URL like the wss://wss-primary.slack.com/link/?ticket=... that Slack issues."""
        ticket = str(uuid.uuid4())
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    # ------------------------------------------------------------------ connections

    def open_connections(self) -> list[Connection]:
        with self._lock:
            return [c for c in self.connections if c.open]

    def wait_connected(self, count: int = 1, timeout: float = 5.0) -> list[Connection]:
        """Block until `count` connections are open; return them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.open_connections()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for {count} open Socket Mode connection(s); "
                        f"{len(self.connections)} ever opened; errors: {self.errors or 'none'}"
                    )
                self._changed.wait(remaining)
            return self.open_connections()

    def request_reconnect(self, reason: str = "refresh_requested", close_after: float | None = 1.0) -> None:
        """Send Slack's {"type": "disconnect"}: the client should fetch a new URL and reconnect.

        Like Slack, the old connections are closed a little later (`close_after` seconds;
        None leaves them open).
        """
        old = self.open_connections()
        for conn in old:
            conn.send_json({"type": "disconnect", "reason": reason,
                            "debug_info": {"host": "fake-applink"}})
        if close_after is not None:
            def close_old() -> None:
                for conn in old:
                    self._close(conn, 1001, "reconnect requested")

            timer = threading.Timer(close_after, close_old)
            timer.daemon = True
            timer.start()

    # ------------------------------------------------------------------ envelopes

    def push(
        self,
        type: str,  # noqa: A002 - Slack's field name
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = True,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
        envelope_id: str | None = None,
        timeout: float = 5.0,
    ) -> str:
        """Send one envelope over the newest open connection; returns its envelope_id."""
        conn = self.wait_connected(timeout=timeout)[-1]
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": type,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        # Slack sends the retry fields on events_api envelopes (0 and "" for a first delivery).
        if retry_attempt is not None or type == "events_api":
            envelope["retry_attempt"] = retry_attempt or 0
            envelope["retry_reason"] = retry_reason or ""
        eid = envelope["envelope_id"]
        with self._lock:
            self._pushed[eid] = envelope
            self._pushed_at[eid] = time.monotonic()
        conn.send_json(envelope)
        return eid

    def push_slash_command(self, body: dict[str, Any], **kw: Any) -> str:
        """`body` holds the slash command's fields (as Slack would form-encode them over HTTP)."""
        return self.push("slash_commands", body, **kw)

    def push_interactive(self, payload: dict[str, Any], **kw: Any) -> str:
        """Shortcuts, block actions, view submissions: the JSON HTTP mode sends as `payload=`."""
        return self.push("interactive", payload, **kw)

    def push_event(
        self, event: dict[str, Any], *, event_id: str | None = None, team_id: str = "T1", **kw: Any
    ) -> str:
        """An Events API event, wrapped in its event_callback the way Slack delivers it."""
        event_id = event_id or f"Ev{secrets.token_hex(5).upper()}"
        payload = {
            "token": "fake-verification-token",
            "team_id": team_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": team_id, "user_id": "UBOT",
                                "is_bot": True, "is_enterprise_install": False}],
            "is_ext_shared_channel": False,
        }
        kw.setdefault("accepts_response_payload", False)
        return self.push("events_api", payload, **kw)

    # ------------------------------------------------------------------ acks

    def acks(self, envelope_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._acks.get(envelope_id, ()))

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """Block until the app acknowledges `envelope_id`; return its ack message."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._acks.get(envelope_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"timed out after {timeout}s waiting for the ack of {envelope_id}; "
                        f"acked so far: {list(self._acks)}; errors: {self.errors or 'none'}"
                    )
                self._changed.wait(remaining)
            return self._acks[envelope_id][0]

    def ack_seconds(self, envelope_id: str) -> float:
        """How long the app took to ack (Slack gives up after 3 s and may retry)."""
        with self._lock:
            return self._acked_at[envelope_id] - self._pushed_at[envelope_id]

    # ------------------------------------------------------------------ internals

    def _error(self, message: str) -> None:
        with self._changed:
            self.errors.append(message)
            self._changed.notify_all()

    def _handshake(self, sock: socket.socket, rfile: Any) -> Connection | None:
        """Read the HTTP Upgrade request; answer 101 and return the connection, or refuse it."""
        try:
            request_line = rfile.readline(8192).decode("latin-1").strip()
            headers: dict[str, str] = {}
            while True:
                line = rfile.readline(8192).decode("latin-1")
                if line in ("\r\n", "\n", ""):
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        except OSError:
            return None
        parts = request_line.split(" ")
        target = urlsplit(parts[1]) if len(parts) == 3 else None
        ticket = (parse_qs(target.query).get("ticket") or [""])[0] if target else ""
        key = headers.get("sec-websocket-key", "")
        problem = None
        if target is None or parts[0] != "GET" or target.path != "/link/":
            problem = ("404 Not Found", f"bad request line {request_line!r}")
        elif headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in headers.get(
            "connection", ""
        ).lower():
            problem = ("426 Upgrade Required", "not a WebSocket upgrade")
        elif headers.get("sec-websocket-version") != "13" or len(_b64(key)) != 16:
            problem = ("400 Bad Request", "bad Sec-WebSocket-Version or Sec-WebSocket-Key")
        else:
            with self._lock:
                known = ticket in self._tickets
                self._tickets.discard(ticket)  # one connection per URL, as with Slack
            if not known:
                problem = ("401 Unauthorized", f"unknown or reused ticket {ticket!r}")
        try:
            if problem is not None:
                self._error(f"handshake refused: {problem[1]}")
                body = problem[1].encode()
                sock.sendall(f"HTTP/1.1 {problem[0]}\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n".encode() + body)
                return None
            sock.sendall(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
            )
        except OSError:  # the client gave up mid-handshake
            return None
        return Connection(id=next(self._conn_ids), ticket=ticket, sock=sock)

    def _on_open(self, conn: Connection) -> None:
        with self._changed:
            self.connections.append(conn)
            self._changed.notify_all()
        if self.send_hello:
            conn.send_json({
                "type": "hello",
                "num_connections": len(self.open_connections()),
                "debug_info": {"host": "fake-applink", "approximate_connection_time": 18060},
                "connection_info": {"app_id": self.app_id},
            })

    def _on_text(self, conn: Connection, raw: bytes) -> None:
        try:
            message = json.loads(raw.decode("utf-8"))
        except ValueError:
            self._error(f"connection {conn.id}: text frame is not JSON: {raw[:200]!r}")
            return
        if not isinstance(message, dict) or not message.get("envelope_id"):
            self._error(f"connection {conn.id}: message without envelope_id: {raw[:200]!r}")
            return
        eid = message["envelope_id"]
        with self._changed:
            conn.received.append(message)
            if eid not in self._pushed:
                self.errors.append(f"ack for an envelope never sent: {eid}")
            elif self._acks.get(eid):
                self.errors.append(f"envelope {eid} acknowledged more than once")
            if "payload" in message and not isinstance(message["payload"], dict):
                self.errors.append(f"ack payload for {eid} is not an object")
            self._acks.setdefault(eid, []).append(message)
            self._acked_at.setdefault(eid, time.monotonic())
            self._changed.notify_all()

    def _close(self, conn: Connection, code: int, reason: str) -> None:
        """Send a close frame (best effort) and drop the TCP connection."""
        try:
            conn.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        except _Closed:
            pass
        self._on_closed(conn)

    def _on_closed(self, conn: Connection) -> None:
        with conn._send_lock:
            if conn.closed is None:
                conn.closed = time.time()
                try:
                    conn.sock.shutdown(socket.SHUT_RDWR)  # wakes our reader thread
                except OSError:
                    pass
        with self._changed:
            self._changed.notify_all()


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return b""

