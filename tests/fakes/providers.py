"""One local HTTP server that answers like Sociocs, Bird and TextUs, written from their docs.

    with FakeProviders() as fake:
        provider = SociocsProvider("twlo", fake.sociocs_api_key, fake.sociocs_channel_keys["twlo"],
                                   base_url=fake.url)
        fake.script("/message", [Fault(status=429, headers={"Retry-After": "1"})])

It checks credentials and bodies the way the real APIs document them, keeps what it
accepted (bounded, so long benchmarks stay flat), and can inject faults: a status, a delay,
or a dropped connection. Every request is recorded (unless `record=False`), faulted or not.
"""

from __future__ import annotations

import base64
import json
import random
import socket
import string
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

JSON = "application/json"
TEXTUS_TYPE = "application/vnd.textus+jsonld"
TEXTUS_CONTENT_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "application/rtf", "text/rtf", "application/pdf", "text/calendar",
     "text/vcard", "text/x-vcard"}
)
SOCIOCS_MEDIA = ("image_url", "image_urls", "video_url", "file_url")
_ALNUM = string.ascii_letters + string.digits

Reply = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class BodySchema:
    """What one endpoint's docs allow in a request body: its Content-Type and its field names.

    `nested` maps a dotted path ("template", "receiver.contacts") to the keys allowed in the
    object there (in each object, for a list). Anything else is refused, so a misspelled
    field fails every test that sends, as it would against the real API.
    """

    content_types: frozenset[str]
    fields: frozenset[str]
    nested: dict[str, frozenset[str]] = field(default_factory=dict)

    def problem(self, headers: dict[str, str], body: Any) -> str | None:
        """The first thing the docs do not allow, or None."""
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in self.content_types:
            return f"Content-Type must be {' or '.join(sorted(self.content_types))}, not {kind or 'missing'}."
        if not isinstance(body, dict):
            return None  # the endpoint's own check words this one
        unknown = sorted(set(body) - self.fields)
        if unknown:
            return f"Unknown field(s): {', '.join(unknown)}."
        for path, allowed in self.nested.items():
            for obj in _objects_at(body, path.split(".")):
                extra = sorted(set(obj) - allowed)
                if extra:
                    return f"Unknown field(s) in {path}: {', '.join(extra)}."
        return None


def _objects_at(value: Any, path: list[str]) -> list[dict[str, Any]]:
    """The dicts found at `path`, stepping into lists on the way."""
    if isinstance(value, list):
        return [o for item in value for o in _objects_at(item, path)]
    if not isinstance(value, dict):
        return []
    if not path:
        return [value]
    return _objects_at(value.get(path[0]), path[1:]) if path[0] in value else []


_JSON_ONLY = frozenset({JSON})
# One schema per endpoint, from the send pages in /work/shared/api-docs/ (add new endpoints here).
SCHEMAS: dict[str, BodySchema] = {
    "sociocs.send": BodySchema(
        _JSON_ONLY,
        frozenset({"provider", "channel_key", "to", "name", "text", "image_url", "image_urls", "video_url",
                   "file_url", "template", "contact_saving", "schedule", "user_id"}),
        {"template": frozenset({"id", "variables"}),
         "contact_saving": frozenset({"save", "list_id", "extra_fields"})},
    ),
    "sociocs.bulk": BodySchema(
        _JSON_ONLY,
        frozenset({"provider", "channel_key", "recipients", "text", "image_url", "image_urls", "video_url",
                   "file_url", "duplicates_allowed", "schedule", "user_id"}),
        {"recipients": frozenset({"to", "name"})},
    ),
    "bird.send": BodySchema(
        _JSON_ONLY,
        frozenset({"sender", "receiver", "reference", "template", "meta", "replyTo", "body", "notification",
                   "capFrequency", "enableLinkTracking", "ignoreQuietHours", "tags", "shortLinks", "scheduledFor",
                   "validity"}),
        {"receiver": frozenset({"contacts"}),
         "receiver.contacts": frozenset({"identifierKey", "identifierValue"}),
         "template": frozenset({"projectId", "version", "locale", "parameters", "shortLinks"}),
         "template.parameters": frozenset({"type", "key", "value"})},
    ),
    "textus.send": BodySchema(
        frozenset({TEXTUS_TYPE}),
        frozenset({"to", "body", "channel", "template", "attachments", "saved_reply"}),
        {"template": frozenset({"id", "variable_values"}),
         "attachments": frozenset({"media_url", "content_type"})},
    ),
}


@dataclass(frozen=True)
class Fault:
    """One scripted misbehaviour. `delay` runs first; then `drop` closes the connection
    without an answer, or `status` answers with `headers`/`body`; a delay alone then
    carries on with the normal answer."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict/list -> JSON, str/bytes as is
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased
    json: Any  # the decoded body, None when empty or not JSON
    raw: bytes
    time: float


def _rand(n: int) -> str:
    return "".join(random.choices(_ALNUM, k=n))


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_dt(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _BoundedStore:
    """id -> object, forgetting the oldest beyond `limit` (O(1) per insert)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.limit:
                self._items.popitem(last=False)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(key)

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items.values())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # no per-connection thread list to grow during benchmarks
    request_queue_size = 512
    fake: FakeProviders

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or vanish mid-answer are part of the scenarios; stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients reuse connections
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Small answers must not wait for Nagle + delayed ACK (~40 ms each).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.fake._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, False)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.server.fake
        generation = fake._generation
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        path, _, query_text = self.path.partition("?")
        query = dict(parse_qsl(query_text)) if query_text else {}
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        if fake.record:
            fake._record(RecordedRequest(self.command, path, query, headers, body, raw, time.time()))
        if fake.latency > 0:
            time.sleep(fake.latency)
        fault = fake._next_fault(self.path)
        if fault is not None:
            if fault.delay > 0:
                time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.status is not None:
                kind = JSON if isinstance(fault.body, dict | list) else "text/plain; charset=utf-8"
                self._reply(fault.status, fault.body, {"Content-Type": kind, **fault.headers})
                return
        if fake._generation != generation:
            # reset() ran while this request slept (a delayed fault outliving its test): it
            # belongs to a finished scenario and must not store into the next one.
            self.close_connection = True
            return
        status, payload, extra = fake._route(self.command, path, query, headers, body, raw)
        self._reply(status, payload, extra)

    def _reply(self, status: int, payload: Any, headers: dict[str, str]) -> None:
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = json.dumps(payload).encode()
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]  # reason may be empty; the space stays
        head.append(f"Date: {self.date_time_string()}")
        for name, value in headers.items():
            if name.lower() != "content-length":
                head.append(f"{name}: {value}")
        head.append(f"Content-Length: {len(data)}")
        if self.close_connection:
            head.append("Connection: close")
        # One write per answer: headers and body in a single segment.
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)


class FakeProviders:
    """Sociocs, Bird and TextUs on one 127.0.0.1 port, in a background thread."""

    def __init__(
        self,
        *,
        sociocs_api_key: str = "socuser:socsecret-9f3a",
        sociocs_channel_keys: dict[str, str] | None = None,
        bird_access_key: str = "bird-access-7c1e2d",
        bird_workspace_id: str = "8f6c1a52-4b1e-4d7e-9a0b-1c2d3e4f5a6b",
        bird_channel_ids: Iterable[str] = ("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",),
        textus_token: str = "textus-token-5b8e11",
        textus_account: str = "my_account",
        textus_templates: dict[str, dict[str, Any]] | None = None,
        record: bool = True,
        max_stored: int = 10_000,
    ) -> None:
        self.sociocs_api_key = sociocs_api_key
        self.sociocs_channel_keys = sociocs_channel_keys or {
            "twlo": "ck-twlo-41a2",
            "twlowa": "ck-twlowa-77b3",
            "gswa": "ck-gswa-90c4",
        }
        self.bird_access_key = bird_access_key
        self.bird_workspace_id = bird_workspace_id
        self.bird_channel_ids = frozenset(bird_channel_ids)
        self.bird_channel_id = sorted(self.bird_channel_ids)[0]
        self.textus_token = textus_token
        self.textus_account = textus_account
        # id -> {"status": "approved"|"pending"|"rejected", "variables": [required names]}
        self.textus_templates = textus_templates or {
            "dkDdrbR": {"status": "approved", "variables": ["appt_date", "appt_time"]},
            "pndTmpl": {"status": "pending", "variables": []},
        }
        self.record = record
        self.latency = 0.0
        # GET /messages documents no paging: a real answer may be cut short without saying so.
        # Set this to answer at most that many messages per call (newest first).
        self.sociocs_list_limit: int | None = None
        # Set to list a bulk job's messages in GET /messages, as the app's History shows them.
        self.sociocs_bulk_lists_messages = False
        self.sociocs_messages = _BoundedStore(max_stored)
        self.sociocs_jobs = _BoundedStore(max_stored)
        self.bird_messages = _BoundedStore(max_stored)
        self.textus_messages = _BoundedStore(max_stored)
        #: Bird media served at /media/<path> (only with the access key), as media.api.bird.com does
        self.bird_media: dict[str, bytes] = {}
        # phone -> OptOut, as GET /{account}/opt_outs lists them (inbound-notes.md)
        self.textus_opt_outs = _BoundedStore(max_stored)
        # numbers (digits with country code) whose Sociocs contact is blocked: GET /contacts/isblocked/{phone}
        self.sociocs_blocked: set[str] = set()
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        self._scripts: list[tuple[str | None, deque[Fault]]] = []
        self._scripts_lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._generation = 0  # bumped by reset(), so requests from before it store nothing
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeProviders is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviders:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-providers", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:  # unblock keep-alive handlers waiting for a next request
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, conn: socket.socket, opened: bool) -> None:
        with self._conns_lock:
            if opened:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # ------------------------------------------------------------------ recording and faults

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the recorded requests, oldest first."""
        with self._requests_lock:
            return list(self._requests)

    def _record(self, request: RecordedRequest) -> None:
        with self._requests_lock:
            self._requests.append(request)

    def reset(self) -> None:
        """Forget requests, scripts, latency and stored messages."""
        self._generation += 1
        with self._requests_lock:
            self._requests.clear()
        with self._scripts_lock:
            self._scripts.clear()
        self.latency = 0.0
        for store in (self.sociocs_messages, self.sociocs_jobs, self.bird_messages, self.textus_messages,
                      self.textus_opt_outs):
            store.clear()

    def script(self, match: str | None, faults: Sequence[Fault]) -> None:
        """Answer the next len(faults) requests whose path contains `match` (None: any)
        with these faults, one each, before behaving normally again."""
        with self._scripts_lock:
            self._scripts.append((match, deque(faults)))

    def _next_fault(self, path: str) -> Fault | None:
        if not self._scripts:  # the common case stays lock-free
            return None
        with self._scripts_lock:
            for i, (match, queue) in enumerate(self._scripts):
                if match is None or match in path:
                    fault = queue.popleft()
                    if not queue:
                        del self._scripts[i]
                    return fault
        return None

    # ------------------------------------------------------------------ routing

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any, raw: bytes
    ) -> Reply:
        if path == "/message" and method == "POST":
            return self._sociocs_send(headers, query, body)
        if path == "/messages/bulk" and method == "POST":
            return self._sociocs_bulk(headers, query, body)
        if path == "/messages" and method == "GET":
            return self._sociocs_list(headers, query)
        parts = path.strip("/").split("/")
        if parts[0] == "media" and method == "GET":  # Bird's media host: the access key is required
            if headers.get("authorization") != f"AccessKey {self.bird_access_key}":
                return self._bird_error(401, "Unauthorized", "The access key is missing or invalid.")
            data = self.bird_media.get("/".join(parts[1:]))
            return (200, data, {"Content-Type": "image/png"}) if data is not None else self._bird_error(
                404, "NotFound", "Media not found.")
        if len(parts) == 3 and parts[:2] in (["contacts", "isblocked"], ["contact", "isblocked"]) and method == "GET":
            return self._sociocs_is_blocked(headers, query, parts[2])
        if parts[0] == "workspaces":
            return self._bird(method, parts, headers, body)
        if len(parts) == 2 and parts[1] == "messages" and method == "POST":
            return self._textus_send(parts[0], headers, body)
        if len(parts) == 2 and parts[1] == "opt_outs" and method == "GET":
            return self._textus_opt_outs(parts[0], headers, query)
        return 404, {"status": "error", "errors": [{"msg": "Requested API endpoint not found."}]}, {}

    # ------------------------------------------------------------------ Sociocs

    def _sociocs_is_blocked(self, headers: dict[str, str], query: dict[str, str], phone: str) -> Reply:
        """GET /contacts/isblocked/{phone}: country code, `+` optional (inbound-notes.md section 1)."""
        if not self._sociocs_authorized(headers, query):
            return self._sociocs_error(401, "Invalid API key.")
        return 200, {"status": "success", "data": {"is_blocked": phone.lstrip("+") in self.sociocs_blocked}}, \
            {"Content-Type": JSON}

    def _sociocs_error(self, status: int, msg: str) -> Reply:
        return status, {"status": "error", "errors": [{"msg": msg}]}, {"Content-Type": JSON}

    def _sociocs_authorized(self, headers: dict[str, str], query: dict[str, str]) -> bool:
        key = self.sociocs_api_key
        if headers.get("apikey") == key or query.get("apikey") == key:
            return True
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                return base64.b64decode(auth[6:]).decode() == key
            except (ValueError, UnicodeDecodeError):
                return False
        return False

    def _sociocs_common(self, body: Any) -> str | None:
        """The first problem with provider/channel_key/media/schedule, or None."""
        if not isinstance(body, dict):
            return "Request body must be a JSON object."
        provider = body.get("provider")
        if provider not in ("twlo", "twlowa", "gswa"):
            return "Invalid provider."
        if body.get("channel_key") != self.sociocs_channel_keys.get(provider):
            return "Invalid channel_key."
        if provider != "twlo" and any(body.get(k) for k in SOCIOCS_MEDIA):
            return "Media is supported only when provider is twlo."
        if "image_urls" in body and not (
            isinstance(body["image_urls"], list) and all(isinstance(u, str) for u in body["image_urls"])
        ):
            return "image_urls must be an array of URLs."
        if "schedule" in body and _parse_dt(body["schedule"]) is None:
            return "Invalid schedule. Use ISO 8601, e.g. 2006-01-02T15:04:05-04:00."
        return None

    def _sociocs_send(self, headers: dict[str, str], query: dict[str, str], body: Any) -> Reply:
        if not self._sociocs_authorized(headers, query):
            return self._sociocs_error(401, "Invalid API key.")
        problem = SCHEMAS["sociocs.send"].problem(headers, body) or self._sociocs_common(body)
        if problem:
            return self._sociocs_error(400, problem)
        to = body.get("to")
        if not isinstance(to, str) or not to.lstrip("+").isdigit():
            return self._sociocs_error(400, "to is required: a phone number with the country code.")
        template = body.get("template")
        if template is not None:
            if body["provider"] == "twlo":
                return self._sociocs_error(400, "template is supported only when provider is twlowa or gswa.")
            if not isinstance(template, dict) or not template.get("id"):
                return self._sociocs_error(400, "template.id is required.")
        if not (body.get("text") or any(body.get(k) for k in SOCIOCS_MEDIA) or template):
            return self._sociocs_error(400, "text, image_url, video_url, file_url or template is required.")
        if "contact_saving" in body and not isinstance(body["contact_saving"], dict):
            return self._sociocs_error(400, "contact_saving must be an object.")
        message_id = _rand(10)
        stored = {k: v for k, v in body.items() if k != "channel_key"}
        stored.update(message_id=message_id, direction="outbound", created_at=_now_iso(), _t=time.time())
        self.sociocs_messages.put(message_id, stored)
        return 200, {"status": "success", "data": {"message_id": message_id}}, {"Content-Type": JSON}

    def _sociocs_bulk(self, headers: dict[str, str], query: dict[str, str], body: Any) -> Reply:
        if not self._sociocs_authorized(headers, query):
            return self._sociocs_error(401, "Invalid API key.")
        problem = SCHEMAS["sociocs.bulk"].problem(headers, body) or self._sociocs_common(body)
        if problem:
            return self._sociocs_error(400, problem)
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            return self._sociocs_error(400, "recipients is required.")
        for r in recipients:
            if not isinstance(r, dict) or not isinstance(r.get("to"), str) or not r["to"]:
                return self._sociocs_error(400, "Every recipient needs a to.")
        if not (body.get("text") or any(body.get(k) for k in SOCIOCS_MEDIA)):
            return self._sociocs_error(400, "text, image_url, video_url or file_url is required.")
        if "duplicates_allowed" in body and not isinstance(body["duplicates_allowed"], bool):
            return self._sociocs_error(400, "duplicates_allowed must be true or false.")
        job_id = _rand(10)
        self.sociocs_jobs.put(job_id, {"job_id": job_id, "count": len(recipients), "body": body})
        if self.sociocs_bulk_lists_messages:
            for r in recipients:
                self.sociocs_record(r["to"], body.get("text"), provider=body["provider"], job_id=job_id)
        return 200, {"status": "success", "data": {"job_id": job_id}}, {"Content-Type": JSON}

    def _sociocs_list(self, headers: dict[str, str], query: dict[str, str]) -> Reply:
        # The response shape is not documented (inferred): data is a list of messages.
        if not self._sociocs_authorized(headers, query):
            return self._sociocs_error(401, "Invalid API key.")
        start, end = _parse_dt(query.get("start_date")), _parse_dt(query.get("end_date"))
        if start is None or end is None:
            return self._sociocs_error(400, "start_date and end_date are required (ISO 8601).")
        if end < start or end - start > timedelta(days=31):
            return self._sociocs_error(400, "The date range must be at most 31 days.")
        lo, hi = start.timestamp(), end.timestamp()
        if len(query.get("end_date", "")) == 10:  # YYYY-MM-DD, as documented: the whole day is included
            hi += 86400 - 0.001
        found = sorted((m for m in self.sociocs_messages.values() if lo <= m["_t"] <= hi),
                       key=lambda m: m["_t"], reverse=True)
        if self.sociocs_list_limit is not None:
            found = found[: self.sociocs_list_limit]
        data = [{k: v for k, v in m.items() if k != "_t"} for m in found]
        return 200, {"status": "success", "data": data}, {"Content-Type": JSON}

    def sociocs_record(self, to: str, text: str | None, *, provider: str = "twlo", at: float | None = None,
                       status: str | None = None, **extra: Any) -> str:
        """Store a message as Sociocs would list it (e.g. one it sent for a bulk job); its id."""
        message_id = _rand(10)
        when = time.time() if at is None else at
        stored: dict[str, Any] = {"message_id": message_id, "provider": provider, "to": to, "text": text,
                                  "direction": "outbound", "_t": when,
                                  "created_at": datetime.fromtimestamp(when, UTC).isoformat()}
        if status is not None:
            stored["status"] = status
        stored.update(extra)
        self.sociocs_messages.put(message_id, stored)
        return message_id

    # ------------------------------------------------------------------ Bird

    def _bird_error(self, status: int, code: str, message: str) -> Reply:
        return status, {"code": code, "message": message}, {"Content-Type": JSON}

    def _bird(self, method: str, parts: list[str], headers: dict[str, str], body: Any) -> Reply:
        if headers.get("authorization") != f"AccessKey {self.bird_access_key}":
            return self._bird_error(401, "Unauthorized", "The access key is missing or invalid.")
        if JSON not in headers.get("accept", ""):
            return self._bird_error(406, "NotAcceptable", f"Accept must include {JSON}.")
        if len(parts) < 2 or parts[1] != self.bird_workspace_id:
            return self._bird_error(404, "NotFound", "Workspace not found.")
        if len(parts) < 5 or parts[2] != "channels" or parts[4] != "messages":
            return self._bird_error(404, "NotFound", "Not found.")
        if parts[3] not in self.bird_channel_ids:
            return self._bird_error(404, "NotFound", "Channel not found.")
        if len(parts) == 5 and method == "POST":
            return self._bird_send(parts[3], headers, body)
        if len(parts) == 6 and method == "GET":
            message = self.bird_messages.get(parts[5])
            if message is None:
                return self._bird_error(404, "NotFound", "Message not found.")
            return 200, message, {"Content-Type": JSON}
        return self._bird_error(404, "NotFound", "Not found.")

    def _bird_problem(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "The request body must be a JSON object."
        contacts = (body.get("receiver") or {}).get("contacts") if isinstance(body.get("receiver"), dict) else None
        if not isinstance(contacts, list) or not contacts:
            return "receiver.contacts is required."
        for c in contacts:
            if not isinstance(c, dict) or not isinstance(c.get("identifierValue"), str) or not c["identifierValue"]:
                return "Every receiver contact needs an identifierValue."
            # The send page's Body/Template examples name the key; an SMS channel knows phonenumber only.
            if c.get("identifierKey") != "phonenumber":
                return "Every receiver contact needs identifierKey phonenumber on an SMS channel."
        has_body, has_template = body.get("body") is not None, body.get("template") is not None
        if has_body and has_template:
            return "Set either body or template, not both."
        if not has_body and not has_template:
            return "body or template is required."
        if has_body:
            problem = self._bird_body_problem(body["body"])
            if problem:
                return problem
        else:
            t = body["template"]
            if not isinstance(t, dict) or not t.get("projectId") or not t.get("locale"):
                return "template.projectId and template.locale are required."
            params = t.get("parameters", [])
            if not isinstance(params, list) or any(
                not isinstance(p, dict) or p.get("type") != "string" or not p.get("key") or "value" not in p
                for p in params
            ):
                return "template.parameters must be {type: string, key, value} objects."
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, list) or len(tags) > 10):
            return "At most 10 tags."
        if "scheduledFor" in body:
            when = _parse_dt(body["scheduledFor"])
            if when is None:
                return "scheduledFor must be an RFC 3339 timestamp."
            if when - datetime.now(UTC) > timedelta(days=35):
                return "scheduledFor cannot be more than 35 days ahead."
        return None

    def _bird_body_problem(self, msg_body: Any) -> str | None:
        if not isinstance(msg_body, dict):
            return "body must be an object."
        kind = msg_body.get("type")
        if kind not in ("text", "image", "file"):
            return f"Unsupported body type {kind!r} for an SMS channel."
        part = msg_body.get(kind)
        if not isinstance(part, dict):
            return f"body.{kind} is required."
        if kind == "text":
            return None if isinstance(part.get("text"), str) and part["text"] else "body.text.text is required."
        items = part.get("images" if kind == "image" else "files")
        if not isinstance(items, list) or not 1 <= len(items) <= 10:
            return f"body.{kind} needs 1 to 10 media items."
        for item in items:
            if not isinstance(item, dict) or not item.get("mediaUrl"):
                return "Every media item needs a mediaUrl."
            if kind == "file" and not item.get("contentType"):
                return "Every file needs a contentType."
        return None

    def _bird_send(self, channel_id: str, headers: dict[str, str], body: Any) -> Reply:
        strict = SCHEMAS["bird.send"].problem(headers, body)
        if strict:
            return self._bird_error(400 if strict.startswith("Content-Type") else 422, "InvalidPayload", strict)
        problem = self._bird_problem(body)
        if problem:
            status = 400 if not isinstance(body, dict) else 422
            return self._bird_error(status, "InvalidPayload", problem)
        now = _now_iso()
        when = _parse_dt(body.get("scheduledFor"))
        # "Messages scheduled ... within 10 minutes of the request may be sent immediately."
        scheduled = when is not None and when - datetime.now(UTC) > timedelta(minutes=10)
        message: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "channelId": channel_id,
            "sender": {"connector": {"id": channel_id, "identifierValue": "+15550100000"}},
            "receiver": {
                "contacts": [{"id": str(uuid.uuid4()), **c} for c in body["receiver"]["contacts"]],
            },
            "status": "scheduled" if scheduled else "accepted",
            "direction": "outgoing",
            "lastStatusAt": now,
            "createdAt": now,
            "updatedAt": now,
        }
        for key in ("reference", "body", "template", "tags", "scheduledFor", "meta"):
            if key in body:
                message[key] = body[key]
        self.bird_messages.put(message["id"], message)
        return 202, message, {"Content-Type": JSON}

    def set_bird_status(self, message_id: str, status: str, failure_description: str | None = None) -> None:
        """Move a stored Bird message on, e.g. to "delivered" or "delivery_failed"."""
        message = self.bird_messages.get(message_id)
        if message is None:
            raise KeyError(message_id)
        updated = {**message, "status": status, "lastStatusAt": _now_iso(), "updatedAt": _now_iso()}
        if failure_description is not None:
            updated["failure"] = {"description": failure_description, "source": {"code": "fake", "name": "fake"}}
        self.bird_messages.put(message_id, updated)

    # ------------------------------------------------------------------ TextUs

    def _textus_error(self, status: int, message: str | None) -> Reply:
        if message is None:  # the docs show 422 answers without a body
            return status, None, {}
        return status, {"@type": "Error", "message": message}, {"Content-Type": TEXTUS_TYPE}

    def _textus_send(self, account: str, headers: dict[str, str], body: Any) -> Reply:
        if headers.get("authorization") != f"Bearer {self.textus_token}":
            return self._textus_error(401, "Unauthorized")
        if TEXTUS_TYPE not in headers.get("accept", ""):
            return self._textus_error(406, f"Accept must be {TEXTUS_TYPE}")
        if account != self.textus_account:
            return self._textus_error(404, "Account not found")
        strict = SCHEMAS["textus.send"].problem(headers, body)
        if strict:
            return self._textus_error(415 if strict.startswith("Content-Type") else 400, strict)
        if not isinstance(body, dict):
            return self._textus_error(400, "The request body must be a JSON object.")
        to = body.get("to")
        numbers = to if isinstance(to, list) else [to]
        if not numbers or not all(isinstance(n, str) and n for n in numbers):
            return self._textus_error(400, "to can't be blank")
        channel = body.get("channel", "sms")
        if channel not in ("sms", "whatsapp"):
            return self._textus_error(400, "channel must be sms or whatsapp")
        template = body.get("template")
        if template is None and not body.get("body"):
            return self._textus_error(400, "body can't be blank")
        attachments = body.get("attachments", [])
        if not isinstance(attachments, list) or len(attachments) > 1:
            return self._textus_error(400, "Only one attachment per message.")
        for a in attachments:
            if not isinstance(a, dict) or not a.get("media_url"):
                return self._textus_error(400, "attachments need a media_url.")
            if a.get("content_type") not in TEXTUS_CONTENT_TYPES:
                return self._textus_error(400, "Unsupported attachment content_type.")
        template_info = None
        if template is not None:
            if not isinstance(template, dict):
                return self._textus_error(400, "template must be an object.")
            known = self.textus_templates.get(str(template.get("id")))
            values = template.get("variable_values") or {}
            if known is None or known.get("status") != "approved" or not isinstance(values, dict):
                return self._textus_error(422, None)
            if any(not values.get(name) for name in known.get("variables", [])):
                return self._textus_error(422, None)
            template_info = {"@type": "WhatsApp::Template", "id": template["id"], "status": "approved"}
        if len(numbers) > 1:
            return 202, None, {}
        message_id = f"/messages/{_rand(10)}"
        now = _now_iso()
        members = [
            {"@type": "Attachment", "id": f"/attachments/{_rand(8)}", "url": a["media_url"],
             "contentType": a["content_type"]}
            for a in attachments
        ]
        message = {
            "@type": "Message",
            "id": message_id,
            "@context": "/contexts/Message.jsonld",
            "direction": "out",
            "body": body.get("body") or "",
            "displayTimestamp": now,
            "timelinePosition": now,
            # Not enumerated in the docs (inferred): a fresh message is not yet delivered.
            "deliveryState": "queued",
            "conversation": f"/conversations/{_rand(6)}",
            "sender": "/users/fake",
            "attachments": {
                "@context": "/contexts/hydra:Collection.jsonld",
                "@type": "hydra:Collection",
                "id": f"{message_id}/attachments",
                "members": members,
                "totalItems": len(members),
            },
            "latestEventAt": now,
            "source": "textus",
            "channel": channel,
            "whatsAppTemplate": template_info,
        }
        self.textus_messages.put(message_id, message)
        return 201, message, {"Content-Type": TEXTUS_TYPE}

    def _textus_auth_problem(self, account: str, headers: dict[str, str]) -> Reply | None:
        if headers.get("authorization") != f"Bearer {self.textus_token}":
            return self._textus_error(401, "Unauthorized")
        if TEXTUS_TYPE not in headers.get("accept", ""):
            return self._textus_error(406, f"Accept must be {TEXTUS_TYPE}")
        if account != self.textus_account:
            return self._textus_error(404, "Account not found")
        return None

    def _textus_opt_outs(self, account: str, headers: dict[str, str], query: dict[str, str]) -> Reply:
        """GET /{account}/opt_outs?q=: the account's opt-outs whose number contains q (a collection)."""
        problem = self._textus_auth_problem(account, headers)
        if problem is not None:
            return problem
        q = query.get("q", "")
        members = [o for o in self.textus_opt_outs.values() if q in o["formattedPhoneNumber"]]
        collection = {"@context": "/contexts/hydra:Collection.jsonld", "@type": "hydra:Collection",
                      "id": f"/{account}/opt_outs", "members": members, "totalItems": len(members)}
        return 200, collection, {"Content-Type": TEXTUS_TYPE}
