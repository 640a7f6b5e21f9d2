"""A fake Slack Web API served on 127.0.0.1, for tests and benchmarks.

Point the real client at it::

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test-token", base_url=fake.base_url)
        client.chat_postMessage(channel="C1", text="hi")
        [call] = fake.wait_for("chat.postMessage")

Every Web API request is recorded as a `Call` (method, merged params, token,
time, the answer given). Answers follow the shapes in Slack's method reference;
only the fields smsbot can plausibly read are filled in.

World state kept between calls: channels (C1 "general" and C2 "random" are
joined by default), messages posted, DM channels, views, files. `reset()` clears
what was recorded and injected (calls, responses, faults, latency) but keeps
that state, so timestamps and ids stay unique over a whole session.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from zoneinfo import ZoneInfo

DEFAULT_TOKEN = "xoxb-test-token"
DEFAULT_APP_TOKEN = "xapp-1-test"
DEFAULT_TZ = "America/New_York"

# Slack timestamps are "<epoch seconds>.<6 digits>"; counting up in steps of
# 100 microseconds from a fixed epoch keeps them unique, sortable and stable.
_TS_START_MICROS = 1_700_000_000_000_000
_TS_STEP_MICROS = 100

# Methods that take an app-level token (xapp-...) instead of a bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})

# Form-encoded Web API calls carry these arguments as JSON strings.
_JSON_FIELDS = frozenset({"blocks", "attachments", "view", "files", "metadata", "unfurls", "outputs"})

# Slack's long time zone names; zoneinfo only knows abbreviations.
_TZ_LABELS: dict[str, tuple[str, str]] = {
    "America/New_York": ("Eastern Standard Time", "Eastern Daylight Time"),
    "America/Chicago": ("Central Standard Time", "Central Daylight Time"),
    "America/Denver": ("Mountain Standard Time", "Mountain Daylight Time"),
    "America/Phoenix": ("Mountain Standard Time", "Mountain Standard Time"),
    "America/Los_Angeles": ("Pacific Standard Time", "Pacific Daylight Time"),
    "America/Anchorage": ("Alaska Standard Time", "Alaska Daylight Time"),
    "Pacific/Honolulu": ("Hawaii-Aleutian Standard Time", "Hawaii-Aleutian Standard Time"),
    "Europe/London": ("Greenwich Mean Time", "British Summer Time"),
    "Europe/Berlin": ("Central European Time", "Central European Summer Time"),
    "Europe/Paris": ("Central European Time", "Central European Summer Time"),
    "Asia/Kolkata": ("India Standard Time", "India Standard Time"),
    "Asia/Tokyo": ("Japan Standard Time", "Japan Standard Time"),
    "Australia/Sydney": ("Australian Eastern Standard Time", "Australian Eastern Daylight Time"),
    "UTC": ("Coordinated Universal Time", "Coordinated Universal Time"),
}

_FILETYPES: dict[str, tuple[str, str, str]] = {
    # extension -> (filetype, mimetype, pretty_type)
    "csv": ("csv", "text/csv", "CSV"),
    "txt": ("text", "text/plain", "Plain Text"),
    "json": ("json", "application/json", "JSON"),
    "pdf": ("pdf", "application/pdf", "PDF"),
    "png": ("png", "image/png", "PNG"),
    "xlsx": (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Excel Spreadsheet",
    ),
}


@dataclass(frozen=True)
class Call:
    """One Web API request as the fake received and answered it."""

    method: str
    params: dict[str, Any]
    token: str | None
    time: float  # time.time() on arrival
    monotonic: float  # time.monotonic() on arrival, for measuring gaps
    status: int
    response: dict[str, Any]
    http_method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    # Dict-style access (call["params"]) for tests written against plain-dict records.
    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    @property
    def error(self) -> str | None:
        return self.response.get("error")

    def summary(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in ("blocks", "view", "attachments")}
        text = json.dumps(shown, default=repr)
        if len(text) > 200:
            text = text[:197] + "..."
        outcome = "ok" if self.ok else f"error={self.error}"
        return f"{self.method} [{self.status} {outcome}] {text}"


@dataclass
class _Fault:
    error: str
    status: int
    retry_after: int | None
    remaining: int


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(
        cls, data: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
    ) -> _Reply:
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, headers=headers or {})

    @classmethod
    def text(cls, text: str, status: int, content_type: str = "text/plain; charset=utf-8") -> _Reply:
        return cls(status, text.encode(), content_type=content_type)


class SlackError(Exception):
    """Raised inside a method handler to answer {"ok": false, "error": ...}."""

    def __init__(self, error: str, *messages: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra
        if messages:
            self.extra["response_metadata"] = {"messages": list(messages)}


@dataclass
class _File:
    id: str
    name: str
    title: str
    filetype: str
    mimetype: str
    pretty_type: str
    user: str
    created: int
    content: bytes | None = None
    alt_txt: str | None = None
    shares: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Benchmarks open many connections at once; the default backlog of 5
    # turns bursts into 1 s SYN retransmits.
    request_queue_size = 1024

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive so pooled clients (httpx) reuse connections.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this Nagle plus
    # delayed ACK adds ~40 ms to some answers.
    disable_nagle_algorithm = True
    timeout = 60
    server: _Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, verb: str) -> None:
        body = self._read_body()
        try:
            reply = self.server.fake._route(verb, self.path, self.headers, body)
        except Exception:  # a bug in the fake: show it, and fail the call loudly
            traceback.print_exc()
            reply = _Reply.of_json({"ok": False, "error": "fake_slack_crashed"}, status=500)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output clean


class FakeSlack:
    """A Slack Web API stand-in on 127.0.0.1 with an ephemeral port."""

    def __init__(
        self,
        tokens: Iterable[str] = (DEFAULT_TOKEN,),
        *,
        app_tokens: Iterable[str] = (DEFAULT_APP_TOKEN,),
        socket_mode_url: str | Callable[[], str] | None = None,
        team_id: str = "T1",
        team_domain: str = "fake-team",
        team_name: str = "Fake Team",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        bot_name: str = "smsbot",
        app_id: str = "A1",
    ) -> None:
        self.tokens: set[str] = set(tokens)
        # App-level tokens (xapp-...) only work for apps.connections.open, and bot tokens never do.
        self.app_tokens: set[str] = set(app_tokens)
        if any(not t.startswith("xapp-") for t in self.app_tokens):
            raise ValueError("app-level tokens start with xapp-")
        # What apps.connections.open answers: a URL, or a callable issuing a fresh one per call
        # (FakeSocketMode.new_url).
        self.socket_mode_url = socket_mode_url
        self.team_id = team_id
        self.team_domain = team_domain
        self.team_name = team_name
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.app_id = app_id
        self.latency: float = 0.0
        # Per-user overrides merged over generated defaults by users.info,
        # e.g. fake.users["U2"] = {"tz": "Europe/London", "real_name": "Bea"}.
        self.users: dict[str, dict[str, Any]] = {}
        # channel id -> {"id", "name", "is_member", "is_private"}
        self.channels: dict[str, dict[str, Any]] = {}
        self.add_channel("C1", "general")
        self.add_channel("C2", "random")
        # view id -> view object; user id -> published App Home view
        self.views: dict[str, dict[str, Any]] = {}
        self.home_views: dict[str, dict[str, Any]] = {}

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._by_method: dict[str, list[Call]] = defaultdict(list)
        self._responses: list[tuple[str, dict[str, Any]]] = []
        self._faults: dict[str, deque[_Fault]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._ts_counter = itertools.count(1)
        self._response_urls = itertools.count(1)
        self._messages: dict[tuple[str, str], dict[str, Any]] = {}
        self._ims: dict[str, str] = {}
        self._im_ids: set[str] = set()
        self._external_ids: dict[str, str] = {}
        self._used_triggers: set[str] = set()
        self._files: dict[str, _File] = {}

        #: what a bot token's calls answer in X-OAuth-Scopes, as Slack does (`smsbot doctor` reads it)
        self.bot_scopes: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "apps.connections.open": self._apps_connections_open,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.open": self._conversations_open,
            "conversations.join": self._conversations_join,
            "reactions.add": self._reactions_add,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "users.info": self._users_info,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "files.info": self._files_info,
            "files.upload": self._files_upload_v1,
        }

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeSlack:
        if self._server is None:
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-slack",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
            self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeSlack is not started")
        return self._server.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For WebClient(base_url=...): ends in /api/ like https://slack.com/api/."""
        return f"{self.root_url}/api/"

    # ------------------------------------------------------------------ configuration

    def add_channel(
        self, channel_id: str, name: str | None = None, *, member: bool = True, private: bool = False
    ) -> None:
        """Make a channel known; member=False makes posts answer not_in_channel."""
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name or channel_id.lower(),
            "is_member": member,
            "is_private": private,
        }

    def fail_next(
        self,
        method: str,
        error: str = "ratelimited",
        status: int = 429,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls to `method` with an error.

        A 429 carries a Retry-After header, like Slack's rate limiter; other
        statuses answer {"ok": false, "error": error} only.
        """
        with self._lock:
            self._faults[method].append(_Fault(error, status, retry_after if status == 429 else None, times))

    def add_file(
        self,
        file_id: str,
        name: str,
        content: bytes,
        filetype: str = "csv",
        *,
        user: str = "U1",
        title: str | None = None,
    ) -> dict[str, Any]:
        """Register a file as if a user had shared it; returns its files.info object."""
        by_type = {info[0]: info for info in _FILETYPES.values()}
        ext = name.rsplit(".", 1)[-1].lower()
        _, mimetype, pretty = (
            by_type.get(filetype) or _FILETYPES.get(ext) or (filetype, "application/octet-stream", filetype)
        )
        stored = _File(
            id=file_id,
            name=name,
            title=title or name,
            filetype=filetype,
            mimetype=mimetype,
            pretty_type=pretty,
            user=user,
            created=int(time.time()),
            content=bytes(content),
        )
        with self._lock:
            self._files[file_id] = stored
            return self._file_object(stored)

    def file_content(self, file_id: str) -> bytes | None:
        """Bytes uploaded (or added) for a file id, None if nothing was uploaded."""
        stored = self._files.get(file_id)
        return stored.content if stored else None

    def im_channel(self, user_id: str) -> str:
        """The DM channel id the fake uses for a user (opening it if needed)."""
        with self._lock:
            return self._open_im(user_id)

    def response_url(self) -> str:
        """A fresh response_url; JSON posted to it lands in `.responses`."""
        return f"{self.root_url}/response/{next(self._response_urls)}"

    # ------------------------------------------------------------------ inspection

    @property
    def calls(self) -> list[Call]:
        """Snapshot of every Web API call received, oldest first."""
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return list(self._by_method.get(method, ()))

    @property
    def responses(self) -> list[dict[str, Any]]:
        """JSON bodies posted to response URLs, oldest first."""
        with self._lock:
            return [payload for _, payload in self._responses]

    def responses_to(self, url: str) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for posted_to, payload in self._responses if posted_to == url]

    def messages(self, channel: str | None = None, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages currently in the fake workspace (posted, not deleted), with "channel" added."""
        with self._lock:
            found = list(self._messages.values())
        if channel is not None:
            found = [m for m in found if m["channel"] == channel]
        if thread_ts is not None:
            found = [m for m in found if m.get("thread_ts") == thread_ts]
        return found

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[Call]:
        """Block until `count` calls to `method` match `predicate`; return all matches so far.

        Raises AssertionError describing what was received on timeout.
        """
        deadline = time.monotonic() + timeout
        matches: list[Call] = []
        seen: list[Call] | None = None
        scanned = 0
        with self._changed:
            while True:
                calls = self._by_method.get(method, [])
                if calls is not seen:  # first pass, or reset() replaced the lists
                    seen, scanned, matches = calls, 0, []
                # Only look at calls that arrived since the last wake-up.
                for call in calls[scanned:]:
                    if predicate is None or predicate(call):
                        matches.append(call)
                scanned = len(calls)
                if len(matches) >= count:
                    return list(matches)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            report = self._describe_calls()
        wanted = f"{count} call(s) to {method}" + (" matching the predicate" if predicate else "")
        raise AssertionError(
            f"timed out after {timeout}s waiting for {wanted}; got {len(matches)}.\n{report}"
        )

    def wait_for_response(
        self,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[dict[str, Any]]:
        """Like wait_for, for JSON posted to response URLs."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                matches = [p for _, p in self._responses if predicate is None or predicate(p)]
                if len(matches) >= count:
                    return matches
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            posted = [json.dumps(p)[:200] for _, p in self._responses[-20:]]
        raise AssertionError(
            f"timed out after {timeout}s waiting for {count} response_url post(s); got {len(matches)}.\n"
            + ("\n".join(posted) or "nothing was posted to a response_url")
        )

    def reset(self) -> None:
        """Forget recorded calls/responses, pending faults and latency; keep workspace state."""
        with self._changed:
            self._calls = []
            self._by_method = defaultdict(list)
            self._responses = []
            self._faults.clear()
            self.latency = 0.0
            self._changed.notify_all()

    def _describe_calls(self) -> str:
        if not self._calls:
            return "no Web API calls were received"
        counts = ", ".join(f"{m}={len(c)}" for m, c in self._by_method.items())
        last = "\n".join("  " + c.summary() for c in self._calls[-20:])
        return f"received {len(self._calls)} call(s) ({counts}); the last ones:\n{last}"

    # ------------------------------------------------------------------ HTTP routing

    def _route(self, verb: str, target: str, headers: Message, body: bytes) -> _Reply:
        if self.latency:
            time.sleep(self.latency)
        parts = urlsplit(target)
        path = unquote(parts.path)
        if path.startswith("/api/"):
            return self._api(verb, path[len("/api/") :], parts.query, headers, body)
        if path.startswith("/upload/v1/") and verb == "POST":
            return self._receive_upload(path[len("/upload/v1/") :], headers, body)
        if path.startswith("/files-pri/") and verb == "GET":
            return self._serve_file(path, headers)
        if path.startswith("/response/") and verb == "POST":
            return self._receive_response(target.split("?")[0], body)
        if path == "/login":
            return _Reply.text(
                "<html><body>Sign in to Fake Team</body></html>", 200, "text/html; charset=utf-8"
            )
        return _Reply.text("not found", 404)

    def _api(self, verb: str, method: str, query: str, headers: Message, body: bytes) -> _Reply:
        arrived, arrived_mono = time.time(), time.monotonic()
        header_token = None
        auth = headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            header_token = auth[7:].strip() or None
        try:
            params, param_token = _parse_params(query, headers.get("Content-Type", ""), body)
            parse_error = None
        except ValueError as exc:
            params, param_token, parse_error = {}, None, str(exc)
        token = header_token or param_token

        status, extra_headers = 200, {}
        with self._changed:
            fault = self._take_fault(method)
            if fault is not None:
                status = fault.status
                data: dict[str, Any] = {"ok": False, "error": fault.error}
                if fault.retry_after is not None:
                    extra_headers["Retry-After"] = str(fault.retry_after)
            elif parse_error is not None:
                data = {"ok": False, "error": parse_error}
            elif method == "api.test":  # the one method that needs no token
                data = {"ok": True, "args": params}
                if "error" in params:
                    data = {"ok": False, "error": params["error"], "args": params}
            elif method not in self._methods:
                data = {"ok": False, "error": "unknown_method", "req_method": method}
            elif token is None:
                data = {"ok": False, "error": "not_authed"}
            elif token not in self.tokens and token not in self.app_tokens:
                data = {"ok": False, "error": "invalid_auth"}
            elif (token in self.app_tokens) != (method in _APP_TOKEN_METHODS):
                data = {"ok": False, "error": "not_allowed_token_type"}
            else:
                try:
                    data = {"ok": True, **self._methods[method](params)}
                except SlackError as exc:
                    data = {"ok": False, "error": exc.error, **exc.extra}
            call = Call(
                method=method,
                params=params,
                token=token,
                time=arrived,
                monotonic=arrived_mono,
                status=status,
                response=data,
                http_method=verb,
                headers=dict(headers.items()),
            )
            self._calls.append(call)
            self._by_method[method].append(call)
            self._changed.notify_all()
            if token in self.tokens and status == 200:
                extra_headers["X-OAuth-Scopes"] = ",".join(self.bot_scopes)
        return _Reply.of_json(data, status=status, headers=extra_headers)

    def _take_fault(self, method: str) -> _Fault | None:
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    def _receive_upload(self, file_id: str, headers: Message, body: bytes) -> _Reply:
        ctype = headers.get("Content-Type", "")
        if ctype.lower().startswith("multipart/form-data"):
            # Slack's upload URL takes either raw bytes or a multipart "file" field.
            parts = _parse_multipart(ctype, body)
            body = next((v for v in parts.values() if isinstance(v, bytes)), b"")
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None:
                return _Reply.text("file not found", 404)
            stored.content = body
        return _Reply.text(f"OK - {len(body)}", 200)

    def _serve_file(self, path: str, headers: Message) -> _Reply:
        # /files-pri/<team>-<file id>/[download/]<name>
        segments = path.split("/")
        file_id = segments[2].rsplit("-", 1)[-1] if len(segments) > 3 else ""
        auth = headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token not in self.tokens:
            # Slack does not answer 401 here: it redirects to the sign-in page,
            # so a client that follows redirects gets HTML instead of the file.
            redirect = f"{self.root_url}/login?redir={quote(path)}"
            return _Reply(302, b"", content_type="text/html; charset=utf-8", headers={"Location": redirect})
        stored = self._files.get(file_id)
        if stored is None or stored.content is None:
            return _Reply.text("file not found", 404)
        reply = _Reply(200, stored.content, content_type=stored.mimetype)
        if "/download/" in path:
            reply.headers["Content-Disposition"] = f'attachment; filename="{stored.name}"'
        return reply

    def _receive_response(self, url_path: str, body: bytes) -> _Reply:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return _Reply.text("invalid_payload", 400)
        with self._changed:
            self._responses.append((self.root_url + url_path, payload))
            self._changed.notify_all()
        return _Reply.text("ok", 200)

    # ------------------------------------------------------------------ helpers (hold the lock)

    def _next_ts(self) -> str:
        micros = _TS_START_MICROS + next(self._ts_counter) * _TS_STEP_MICROS
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _open_im(self, user_id: str) -> str:
        im = self._ims.get(user_id)
        if im is None:
            im = "D" + user_id  # deterministic, so tests can predict it
            self._ims[user_id] = im
            self._im_ids.add(im)
        return im

    def _resolve_channel(self, channel: Any) -> str:
        """Where a message to `channel` goes, or the error Slack would give."""
        if not channel or not isinstance(channel, str):
            raise SlackError("channel_not_found")
        if channel.startswith("#"):
            named = next((c for c in self.channels.values() if c["name"] == channel[1:]), None)
            if named is None:
                raise SlackError("channel_not_found")
            channel = named["id"]
        if channel[0] in "UW":  # posting to a user id opens the DM with them
            return self._open_im(channel)
        if channel in self._im_ids:
            return channel
        info = self.channels.get(channel)
        if info is None:
            raise SlackError("channel_not_found")
        if not info["is_member"]:
            raise SlackError("not_in_channel")
        return channel

    def _find_message(self, channel: Any, ts: Any) -> tuple[str, dict[str, Any]]:
        if not channel or not isinstance(channel, str):
            raise SlackError("channel_not_found")
        if channel[0] in "UW":
            channel = self._open_im(channel)
        elif channel not in self._im_ids and channel not in self.channels:
            raise SlackError("channel_not_found")
        message = self._messages.get((channel, str(ts)))
        if message is None:
            raise SlackError("message_not_found")
        return channel, message

    def _permalink(self, channel: str, ts: str, thread_ts: str | None = None) -> str:
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return link

    def _store_message(self, channel: str, params: dict[str, Any], **extra: Any) -> dict[str, Any]:
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": params.get("text") or "",
            "ts": ts,
            **extra,
        }
        for key in ("blocks", "attachments", "metadata"):
            if params.get(key):
                message[key] = params[key]
        thread_ts = params.get("thread_ts")
        if thread_ts:
            message["thread_ts"] = str(thread_ts)
            parent = self._messages.get((channel, str(thread_ts)))
            if parent is not None:
                # Slack answers a reply to an unknown ts as a plain post; it
                # only keeps thread bookkeeping when the parent exists.
                message["parent_user_id"] = parent.get("user")
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                parent["latest_reply"] = ts
            if _truthy(params.get("reply_broadcast")):
                message["subtype"] = "thread_broadcast"
        self._messages[(channel, ts)] = {"channel": channel, **message}
        return message

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        url = self.socket_mode_url
        if url is None:
            # Not a Slack error: the test forgot to give the fake a FakeSocketMode.
            raise SlackError("fake_socket_mode_not_configured")
        return {"url": url() if callable(url) else url}

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._resolve_channel(params.get("channel"))
        _check_message_content(params)
        message = self._store_message(channel, params)
        return {"channel": channel, "ts": message["ts"], "message": dict(message)}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        self._resolve_channel(params.get("channel"))
        if not params.get("user"):
            raise SlackError("user_not_in_channel")
        _check_message_content(params)
        return {"message_ts": self._next_ts()}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, message = self._find_message(params.get("channel"), params.get("ts"))
        _check_message_content(params)
        for key in ("text", "blocks", "attachments", "metadata"):
            if key in params:
                message[key] = params[key]
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        shown = {k: v for k, v in message.items() if k != "channel"}
        return {"channel": channel, "ts": message["ts"], "text": message.get("text", ""), "message": shown}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, message = self._find_message(params.get("channel"), params.get("ts"))
        del self._messages[(channel, message["ts"])]
        return {"channel": channel, "ts": message["ts"]}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, message = self._find_message(params.get("channel"), params.get("message_ts"))
        return {
            "channel": channel,
            "permalink": self._permalink(channel, message["ts"], message.get("thread_ts")),
        }

    def _read_messages(self, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        """A conversation's stored messages (oldest first) and the page size asked for."""
        channel = self._resolve_channel(params.get("channel"))  # not_in_channel, as Slack says
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        found = [m for (c, _), m in self._messages.items() if c == channel]
        found.sort(key=lambda m: float(m["ts"]))
        return found, limit

    @staticmethod
    def _shown(message: dict[str, Any], with_metadata: bool) -> dict[str, Any]:
        # As Slack does: metadata only with include_all_metadata=true.
        shown = {k: v for k, v in message.items() if k != "channel"}
        if not with_metadata:
            shown.pop("metadata", None)
        return shown

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """Top-level messages (and broadcasts), newest first, `limit` of them."""
        found, limit = self._read_messages(params)
        tops = [m for m in found if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"]
        page = list(reversed(tops))[:limit]
        meta = _truthy(params.get("include_all_metadata"))
        return {"messages": [self._shown(m, meta) for m in page], "has_more": len(tops) > limit}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread: its parent first, then its replies oldest first, `limit` of them."""
        found, limit = self._read_messages(params)
        ts = str(params.get("ts") or "")
        thread = [m for m in found if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread:
            raise SlackError("thread_not_found")
        meta = _truthy(params.get("include_all_metadata"))
        return {"messages": [self._shown(m, meta) for m in thread[:limit]], "has_more": len(thread) > limit}

    def _conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("channel"):
            channel = params["channel"]
            if channel not in self._im_ids:
                raise SlackError("channel_not_found")
            return {"no_op": True, "already_open": True, "channel": {"id": channel}}
        users = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
        if not users:
            raise SlackError("users_list_not_supplied")
        if any(u[0] not in "UW" for u in users):
            raise SlackError("user_not_found")
        if len(users) == 1:
            existed = users[0] in self._ims
            channel_id = self._open_im(users[0])
            answer: dict[str, Any] = {"channel": {"id": channel_id}}
            if existed:
                answer.update(no_op=True, already_open=True)
            if _truthy(params.get("return_im")):
                answer["channel"].update(is_im=True, user=users[0], created=int(time.time()))
            return answer
        # A group DM (mpim) between several people.
        channel_id = "G" + "".join(sorted(users))
        self._im_ids.add(channel_id)
        return {"channel": {"id": channel_id}}

    def _conversations_join(self, params: dict[str, Any]) -> dict[str, Any]:
        """Public channels only (channels:join); a private one answers method_not_supported_for_channel_type."""
        info = self.channels.get(str(params.get("channel") or ""))
        if info is None:
            raise SlackError("channel_not_found")
        if info["is_private"]:
            raise SlackError("method_not_supported_for_channel_type")
        info["is_member"] = True
        return {"channel": {"id": info["id"], "name": info["name"], "is_member": True}}

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, message = self._find_message(params.get("channel"), params.get("timestamp"))
        name = str(params.get("name") or "")
        if not name:
            raise SlackError("invalid_name")
        reactions = message.setdefault("reactions", [])
        if any(r["name"] == name for r in reactions):
            raise SlackError("already_reacted")
        reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {}

    def add_user_message(self, channel: str, text: str, user: str = "U1", thread_ts: str | None = None) -> str:
        """A person's message as Slack stores it (so reactions and replies can find it); its ts."""
        with self._lock:
            ts = self._next_ts()
            message = {"type": "message", "user": user, "text": text, "ts": ts, "team": self.team_id}
            if thread_ts:
                message["thread_ts"] = thread_ts
            self._messages[(channel, ts)] = {"channel": channel, **message}
            return ts

    def reactions_on(self, channel: str, ts: str) -> list[str]:
        message = self._messages.get((channel, ts)) or {}
        return [r["name"] for r in message.get("reactions", [])]

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user")
        if not user_id or not isinstance(user_id, str):
            raise SlackError("user_not_found")
        if user_id not in self.users and user_id != self.bot_user_id and user_id[0] not in "UW":
            raise SlackError("user_not_found")
        user = self._user_object(user_id)
        if _truthy(params.get("include_locale")):
            user.setdefault("locale", "en-US")
        return {"user": user}

    def _user_object(self, user_id: str) -> dict[str, Any]:
        override = self.users.get(user_id, {})
        is_bot = user_id == self.bot_user_id
        name = override.get("name") or (self.bot_name if is_bot else user_id.lower())
        real_name = override.get("real_name") or (self.bot_name if is_bot else f"User {user_id}")
        tz = override.get("tz", DEFAULT_TZ)
        user: dict[str, Any] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            **_tz_fields(tz),
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": 1_700_000_000,
            "profile": {
                "real_name": real_name,
                "real_name_normalized": real_name,
                "display_name": name,
                "display_name_normalized": name,
                "team": self.team_id,
            },
        }
        user.update(override)  # explicit test settings win, tz_offset included
        return user

    # views ---------------------------------------------------------------

    def _exchange_trigger(self, params: dict[str, Any]) -> None:
        trigger = params.get("trigger_id") or params.get("interactivity_pointer")
        if not trigger:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        self._used_triggers.add(trigger)

    def _new_view(self, spec: dict[str, Any], *, previous: str | None = None) -> dict[str, Any]:
        external_id = spec.get("external_id") or ""
        if external_id and external_id in self._external_ids:
            raise SlackError("duplicate_external_id")
        view_id = self._next_id("V")
        view = self._view_object(view_id, spec, root_view_id=view_id, previous_view_id=previous)
        self.views[view_id] = view
        if external_id:
            self._external_ids[external_id] = view_id
        return view

    def _view_object(
        self, view_id: str, spec: dict[str, Any], *, root_view_id: str | None, previous_view_id: str | None
    ) -> dict[str, Any]:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": spec.get("type"),
            "title": spec.get("title"),
            "submit": spec.get("submit"),
            "close": spec.get("close"),
            "blocks": spec.get("blocks", []),
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "external_id": spec.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "root_view_id": root_view_id,
            "previous_view_id": previous_view_id,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        spec = _check_view(params.get("view"), allowed=("modal",))
        self._exchange_trigger(params)
        return {"view": self._new_view(spec)}

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        # The fake cannot tell which modal a trigger came from, so it does not
        # enforce Slack's limit of 3 views in a stack.
        spec = _check_view(params.get("view"), allowed=("modal",))
        self._exchange_trigger(params)
        return {"view": self._new_view(spec)}

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        view_id = params.get("view_id")
        if not view_id and params.get("external_id"):
            view_id = self._external_ids.get(params["external_id"])
            if view_id is None:
                raise SlackError("not_found")
        if not view_id:
            raise SlackError("invalid_arguments", "[ERROR] either view_id or external_id is required")
        current = self.views.get(view_id)
        if current is None:
            raise SlackError("not_found")
        spec = _check_view(params.get("view"), allowed=("modal",))
        if params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        external_id = spec.get("external_id") or ""
        if external_id and self._external_ids.get(external_id, view_id) != view_id:
            raise SlackError("duplicate_external_id")
        view = self._view_object(
            view_id, spec, root_view_id=current["root_view_id"], previous_view_id=current["previous_view_id"]
        )
        self.views[view_id] = view
        if external_id:
            self._external_ids[external_id] = view_id
        return {"view": view}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = params.get("user_id")
        if not user_id:
            raise SlackError("invalid_arguments", "[ERROR] missing required field: user_id")
        spec = _check_view(params.get("view"), allowed=("home",))
        current = self.home_views.get(user_id)
        if current is not None and params.get("hash") and params["hash"] != current["hash"]:
            raise SlackError("hash_conflict")
        view_id = current["id"] if current else self._next_id("V")
        view = self._view_object(view_id, spec, root_view_id=None, previous_view_id=None)
        self.home_views[user_id] = view
        self.views[view_id] = view
        return {"view": view}

    # files ---------------------------------------------------------------

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        filename = params.get("filename")
        length = params.get("length")
        if not filename or length is None or not str(length).isdigit():
            raise SlackError("invalid_arguments", "[ERROR] filename and length are required")
        file_id = self._next_id("F")
        ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        filetype, mimetype, pretty = _FILETYPES.get(ext, ("binary", "application/octet-stream", "Binary"))
        if params.get("snippet_type"):
            filetype = params["snippet_type"]
        self._files[file_id] = _File(
            id=file_id,
            name=filename,
            title=filename,
            filetype=filetype,
            mimetype=mimetype,
            pretty_type=pretty,
            user=self.bot_user_id,
            created=int(time.time()),
            alt_txt=params.get("alt_txt"),
        )
        return {"upload_url": f"{self.root_url}/upload/v1/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments", "[ERROR] files must be a JSON array of {id, title}")
        stored_files = []
        for entry in entries:
            stored = self._files.get(entry.get("id", "")) if isinstance(entry, dict) else None
            if stored is None or stored.content is None:
                raise SlackError("file_not_found")
            stored_files.append((stored, entry))
        targets = [params["channel_id"]] if params.get("channel_id") else []
        targets += [c.strip() for c in str(params.get("channels") or "").split(",") if c.strip()]
        channels = [self._resolve_channel(c) for c in targets]
        for stored, entry in stored_files:
            if entry.get("title"):
                stored.title = entry["title"]
        for channel in channels:
            # Sharing a file posts a message; initial_comment is its text.
            message = self._store_message(
                channel,
                {
                    "text": params.get("initial_comment") or "",
                    "thread_ts": params.get("thread_ts"),
                    "blocks": params.get("blocks"),
                },
                files=[{"id": s.id} for s, _ in stored_files],
                upload=True,
            )
            share = {"ts": message["ts"], "channel_name": self.channels.get(channel, {}).get("name", channel)}
            if message.get("thread_ts"):
                share["thread_ts"] = message["thread_ts"]
            for stored, _ in stored_files:
                stored.shares.setdefault(channel, []).append(share)
        return {"files": [self._file_object(s) for s, _ in stored_files]}

    def _files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(params.get("file") or "")
        if stored is None or stored.content is None:
            raise SlackError("file_not_found")
        return {"file": self._file_object(stored), "comments": [], "response_metadata": {"next_cursor": ""}}

    def _files_upload_v1(self, params: dict[str, Any]) -> dict[str, Any]:
        # Slack retired files.upload; clients must use the external upload flow.
        raise SlackError("method_deprecated")

    def _file_object(self, stored: _File) -> dict[str, Any]:
        base = f"{self.root_url}/files-pri/{self.team_id}-{stored.id}"
        name = quote(stored.name)
        public = {
            c: s
            for c, s in stored.shares.items()
            if c in self.channels and not self.channels[c]["is_private"]
        }
        private = {c: s for c, s in stored.shares.items() if c not in public}
        shares: dict[str, Any] = {}
        if public:
            shares["public"] = public
        if private:
            shares["private"] = private
        return {
            "id": stored.id,
            "created": stored.created,
            "timestamp": stored.created,
            "name": stored.name,
            "title": stored.title,
            "mimetype": stored.mimetype,
            "filetype": stored.filetype,
            "pretty_type": stored.pretty_type,
            "user": stored.user,
            "user_team": self.team_id,
            "mode": "hosted",
            "editable": False,
            "is_external": False,
            "external_type": "",
            "is_public": bool(public),
            "size": len(stored.content or b""),
            "url_private": f"{base}/{name}",
            "url_private_download": f"{base}/download/{name}",
            "permalink": f"https://{self.team_domain}.slack.com/files/{stored.user}/{stored.id}/{name}",
            "channels": [c for c in stored.shares if c.startswith("C")],
            "groups": [c for c in stored.shares if c.startswith("G")],
            "ims": [c for c in stored.shares if c.startswith("D")],
            "shares": shares,
            "alt_txt": stored.alt_txt,
            "comments_count": 0,
        }


# ---------------------------------------------------------------------- module helpers


def _truthy(value: Any) -> bool:
    return value is True or value == 1 or (isinstance(value, str) and value.lower() in ("1", "true"))


def _parse_params(query: str, content_type: str, body: bytes) -> tuple[dict[str, Any], str | None]:
    """Merge query and body arguments the way Slack reads them; return (params, token argument)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    token = params.pop("token", None)
    ctype = content_type.split(";")[0].strip().lower()
    if body:
        if ctype == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise ValueError("invalid_json") from None
            if not isinstance(data, dict):
                raise ValueError("invalid_json")
            # Slack ignores a token inside a JSON body: JSON needs the header.
            data.pop("token", None)
            params.update(data)
        elif ctype == "multipart/form-data":
            form = _parse_multipart(content_type, body)
            token = form.pop("token", token)
            params.update(form)
        else:
            try:
                form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
            except UnicodeDecodeError:
                raise ValueError("invalid_form_data") from None
            token = form.pop("token", token)
            params.update(form)
    for key in _JSON_FIELDS.intersection(params):
        value = params[key]
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass  # left as a string; the method answers the format error
    return params, token if isinstance(token, str) else None


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Text fields as str, file fields as bytes."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True) or b""
        fields[name] = payload if part.get_filename() else payload.decode("utf-8", "replace")
    return fields


def _check_message_content(params: dict[str, Any]) -> None:
    blocks = params.get("blocks")
    attachments = params.get("attachments")
    if blocks is not None and not isinstance(blocks, list):
        raise SlackError("invalid_blocks_format")
    if attachments is not None and not isinstance(attachments, list):
        raise SlackError("invalid_attachments")
    if not params.get("text") and not blocks and not attachments:
        raise SlackError("no_text")
    if blocks and len(blocks) > 50:
        raise SlackError("invalid_blocks", "[ERROR] no more than 50 items allowed [json-pointer:/blocks]")
    if attachments and len(attachments) > 100:
        raise SlackError("too_many_attachments")
    if len(str(params.get("text") or "")) > 40_000:
        raise SlackError("msg_too_long")


def _check_view(view: Any, *, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Apply the view limits Slack enforces, answering invalid_arguments like Slack does."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            raise SlackError("invalid_arguments", "[ERROR] failed to parse view JSON") from None
    if not isinstance(view, dict):
        raise SlackError("invalid_arguments", "[ERROR] missing required field: view")
    problems = []
    if view.get("type") not in allowed:
        problems.append(f"[ERROR] must be one of {', '.join(allowed)} [json-pointer:/view/type]")
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        problems.append("[ERROR] missing required field: blocks [json-pointer:/view/blocks]")
        blocks = []
    elif len(blocks) > 100:
        problems.append("[ERROR] no more than 100 items allowed [json-pointer:/view/blocks]")
    if view.get("type") == "modal":
        if not isinstance(view.get("title"), dict):
            problems.append("[ERROR] missing required field: title [json-pointer:/view/title]")
        for key in ("title", "submit", "close"):
            part = view.get(key)
            if isinstance(part, dict) and len(str(part.get("text", ""))) > 24:
                problems.append(f"[ERROR] must be less than 25 characters [json-pointer:/view/{key}/text]")
        if any(isinstance(b, dict) and b.get("type") == "input" for b in blocks) and not view.get("submit"):
            problems.append(
                "[ERROR] submit is required when an input block is present [json-pointer:/view/submit]"
            )
    if len(str(view.get("private_metadata") or "")) > 3000:
        problems.append("[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]")
    for key in ("callback_id", "external_id"):
        if len(str(view.get(key) or "")) > 255:
            problems.append(f"[ERROR] must be less than 256 characters [json-pointer:/view/{key}]")
    if problems:
        raise SlackError("invalid_arguments", *problems)
    return view


def _tz_fields(tz: str) -> dict[str, Any]:
    """tz, tz_label and the current tz_offset (seconds east of UTC) as users.info gives them."""
    now = datetime.now(UTC).astimezone(ZoneInfo(tz))
    offset = now.utcoffset()
    is_dst = bool(now.dst())
    labels = _TZ_LABELS.get(tz)
    label = labels[1 if is_dst else 0] if labels else (now.tzname() or tz)
    return {"tz": tz, "tz_label": label, "tz_offset": int(offset.total_seconds()) if offset else 0}
