"""Build and send the HTTP requests Slack sends to an app, signed like Slack signs them.

Bodies are bytes exactly as they go over the wire: slash commands are
form-encoded fields, interactive payloads are a form-encoded `payload=` JSON,
Events API callbacks are JSON. Defaults line up with `FakeSlack` (team T1,
app A1, bot UBOT, channels C1 "general" and C2 "random", user U1 "alice").

    sender = SlackSender("http://127.0.0.1:8000", "secret")
    response = sender.command("send +16175551212 hi", response_url=fake.response_url())
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

TEAM_ID = "T1"
TEAM_DOMAIN = "fake-team"
API_APP_ID = "A1"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
# Slack still sends the deprecated verification token in every payload; Bolt ignores it.
VERIFICATION_TOKEN = "fake-verification-token"
# Nothing listens on the discard port: a listener that calls respond() without
# a URL from FakeSlack.response_url() fails fast instead of hanging.
DEFAULT_RESPONSE_URL = "http://127.0.0.1:9/response/1"

_CHANNEL_NAMES = {"C1": "general", "C2": "random"}
_sequence = itertools.count(1)


def new_trigger_id() -> str:
    """A unique trigger id shaped like Slack's ("12345.98765.abcd2358fdea")."""
    return (
        f"{next(_sequence)}{secrets.randbelow(10**6):06d}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"
    )


def _action_ts() -> str:
    return f"{time.time():.6f}"


def _channel_name(channel_id: str) -> str:
    # What Slack puts in channel_name for DMs and private channels.
    if channel_id.startswith("D"):
        return "directmessage"
    if channel_id.startswith("G"):
        return "privategroup"
    return _CHANNEL_NAMES.get(channel_id, channel_id.lower())


def _user(user_id: str, user_name: str, team_id: str) -> dict[str, str]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _interactive(payload: dict[str, Any]) -> bytes:
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def sign(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """X-Slack-Request-Timestamp and X-Slack-Signature headers for `body` (v0 HMAC-SHA256)."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    assert signature is not None  # only None when timestamp is None
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


# ---------------------------------------------------------------------- bodies


def slash_command_body(
    command: str = "/sms",
    text: str = "",
    user_id: str = "U1",
    user_name: str = "alice",
    channel_id: str = "C1",
    team_id: str = TEAM_ID,
    trigger_id: str | None = None,
    response_url: str = DEFAULT_RESPONSE_URL,
    *,
    channel_name: str | None = None,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = API_APP_ID,
    token: str = VERIFICATION_TOKEN,
    is_enterprise_install: bool = False,
) -> bytes:
    """A slash command invocation, form-encoded with Slack's field order."""
    fields = {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name or _channel_name(channel_id),
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "true" if is_enterprise_install else "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return urlencode(fields).encode()


def option(value: str, text: str | None = None) -> dict[str, Any]:
    """A select option as Slack echoes it back in payloads."""
    return {"text": {"type": "plain_text", "text": text or value, "emoji": True}, "value": value}


def view_payload(
    view: dict[str, Any] | None = None,
    *,
    callback_id: str = "",
    values: dict[str, dict[str, Any]] | None = None,
    private_metadata: str = "",
    view_id: str | None = None,
    hash: str | None = None,
    team_id: str = TEAM_ID,
) -> dict[str, Any]:
    """A full view object as it appears in interaction payloads; `view` overrides the defaults."""
    view_id = view_id or (view or {}).get("id") or f"V{next(_sequence):08d}"
    full: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": "modal",
        "blocks": [],
        "private_metadata": private_metadata,
        "callback_id": callback_id,
        "state": {"values": {}},
        "hash": hash or f"{int(time.time())}.{secrets.token_hex(4)}",
        "title": {"type": "plain_text", "text": "SMS", "emoji": True},
        "clear_on_close": False,
        "notify_on_close": False,
        "close": None,
        "submit": None,
        "previous_view_id": None,
        "root_view_id": view_id,
        "app_id": API_APP_ID,
        "external_id": "",
        "app_installed_team_id": team_id,
        "bot_id": BOT_ID,
    }
    if view:
        full.update(view)
    if values is not None:
        full["state"] = {"values": normalize_values(values)}
    if callback_id:
        full["callback_id"] = callback_id
    if private_metadata:
        full["private_metadata"] = private_metadata
    if hash:
        full["hash"] = hash
    return full


def normalize_values(values: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """view.state.values in Slack's shape: {block_id: {action_id: {"type": ..., <value key>: ...}}}.

    Leaves may be given in full, or as shorthand: a str or None is a
    plain_text_input value; a dict without "type" gets the type its key implies
    (selected_option -> static_select, selected_date -> datepicker, ...).
    """
    implied = {
        "selected_option": "static_select",
        "selected_options": "multi_static_select",
        "selected_date": "datepicker",
        "selected_time": "timepicker",
        "selected_date_time": "datetimepicker",
        "selected_user": "users_select",
        "selected_users": "multi_users_select",
        "selected_conversation": "conversations_select",
        "selected_channel": "channels_select",
        "files": "file_input",
        "value": "plain_text_input",
    }
    shaped: dict[str, dict[str, dict[str, Any]]] = {}
    for block_id, actions in values.items():
        shaped[block_id] = {}
        for action_id, leaf in actions.items():
            if leaf is None or isinstance(leaf, str):
                element: dict[str, Any] = {"type": "plain_text_input", "value": leaf}
            elif isinstance(leaf, dict):
                element = dict(leaf)
                if "type" not in element:
                    key = next((k for k in implied if k in element), "value")
                    element["type"] = implied[key]
                if isinstance(element.get("selected_option"), str):
                    element["selected_option"] = option(element["selected_option"])
                if element.get("selected_options"):
                    element["selected_options"] = [
                        option(o) if isinstance(o, str) else o for o in element["selected_options"]
                    ]
            else:
                raise TypeError(f"state value for {block_id}/{action_id} must be str, None or dict")
            shaped[block_id][action_id] = element
    return shaped


def block_actions_body(
    action_id: str,
    value: str | None = None,
    user_id: str = "U1",
    channel_id: str | None = "C1",
    message_ts: str | None = None,
    view: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    block_id: str | None = None,
    selected_option: str | dict[str, Any] | None = None,
    *,
    action_type: str | None = None,
    user_name: str = "alice",
    team_id: str = TEAM_ID,
    message: dict[str, Any] | None = None,
    response_url: str = DEFAULT_RESPONSE_URL,
    state_values: dict[str, dict[str, Any]] | None = None,
    is_ephemeral: bool = False,
) -> bytes:
    """A click on an interactive element, in a message (default) or, with `view`, in a modal/App Home.

    A button by default; `selected_option` makes it a static_select. `view` may
    be the view FakeSlack answered to views.open; missing fields are filled in.
    """
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or f"{action_id}_block",
        "type": action_type or ("static_select" if selected_option is not None else "button"),
        "action_ts": _action_ts(),
    }
    if action["type"] == "button":
        action["text"] = {"type": "plain_text", "text": action_id, "emoji": True}
    if value is not None:
        action["value"] = value
    if selected_option is not None:
        action["selected_option"] = (
            option(selected_option) if isinstance(selected_option, str) else selected_option
        )
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _user(user_id, user_name, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "state": {"values": normalize_values(state_values or {})},
        "actions": [action],
    }
    if view is not None:
        # Actions inside a modal or App Home: no channel, no message, no response_url.
        full_view = view_payload(view, values=state_values, team_id=team_id)
        payload["container"] = {"type": "view", "view_id": full_view["id"]}
        payload["view"] = full_view
        return _interactive(payload)
    ts = message_ts or (message or {}).get("ts") or "1700000000.000100"
    payload["container"] = {
        "type": "message",
        "message_ts": ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    if channel_id:
        payload["channel"] = {"id": channel_id, "name": _channel_name(channel_id)}
    if not is_ephemeral:  # Slack omits the message for ephemeral ones
        payload["message"] = message or {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": API_APP_ID,
            "team": team_id,
            "text": "",
            "ts": ts,
            "blocks": [],
        }
    payload["response_url"] = response_url
    return _interactive(payload)


def view_submission_body(
    callback_id: str,
    values: dict[str, dict[str, Any]],
    user_id: str = "U1",
    private_metadata: str = "",
    view_id: str | None = None,
    hash: str | None = None,
    trigger_id: str | None = None,
    *,
    view: dict[str, Any] | None = None,
    user_name: str = "alice",
    team_id: str = TEAM_ID,
    response_urls: list[dict[str, Any]] | None = None,
) -> bytes:
    """A modal's Submit; `values` as Slack's view.state.values (shorthand leaves allowed, see normalize_values)."""
    full_view = view_payload(
        view,
        callback_id=callback_id,
        values=values,
        private_metadata=private_metadata,
        view_id=view_id,
        hash=hash,
        team_id=team_id,
    )
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": _user(user_id, user_name, team_id),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": full_view,
        # Only filled when the modal has a conversation select with response_url_enabled.
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload)


def view_closed_body(
    callback_id: str, user_id: str = "U1", *, view: dict[str, Any] | None = None, is_cleared: bool = False
) -> bytes:
    """Sent when a modal with notify_on_close is closed."""
    payload = {
        "type": "view_closed",
        "team": {"id": TEAM_ID, "domain": TEAM_DOMAIN},
        "user": _user(user_id, "alice", TEAM_ID),
        "api_app_id": API_APP_ID,
        "token": VERIFICATION_TOKEN,
        "view": view_payload(view, callback_id=callback_id),
        "is_cleared": is_cleared,
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interactive(payload)


def shortcut_body(
    callback_id: str,
    user_id: str = "U1",
    trigger_id: str | None = None,
    *,
    user_name: str = "alice",
    team_id: str = TEAM_ID,
) -> bytes:
    """A global shortcut (lightning menu)."""
    payload = {
        "type": "shortcut",
        "token": VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_name, "team_id": team_id},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return _interactive(payload)


def message_shortcut_body(
    callback_id: str,
    message: dict[str, Any],
    user_id: str = "U1",
    channel_id: str = "C1",
    trigger_id: str | None = None,
    *,
    response_url: str = DEFAULT_RESPONSE_URL,
    user_name: str = "alice",
    team_id: str = TEAM_ID,
) -> bytes:
    """A message shortcut (the "..." menu on a message); `message` needs at least "ts" and "text"."""
    payload = {
        "type": "message_action",
        "token": VERIFICATION_TOKEN,
        "action_ts": _action_ts(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "name": user_name, "username": user_name, "team_id": team_id},
        "channel": {"id": channel_id, "name": _channel_name(channel_id)},
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
        "response_url": response_url,
        "message_ts": message["ts"],
        "message": {"type": "message", **message},
    }
    return _interactive(payload)


def event_body(
    event: dict[str, Any],
    event_id: str | None = None,
    *,
    team_id: str = TEAM_ID,
    api_app_id: str = API_APP_ID,
    event_time: int | None = None,
) -> bytes:
    """An Events API event_callback wrapping `event`; event_id is unique unless given."""
    now = int(time.time()) if event_time is None else event_time
    event = {"event_ts": f"{now}.{next(_sequence) % 1_000_000:06d}", **event}
    body = {
        "token": VERIFICATION_TOKEN,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_sequence):08d}{secrets.token_hex(2).upper()}",
        "event_time": now,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": BOT_USER_ID,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": secrets.token_urlsafe(24),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def app_home_opened_event(
    user_id: str = "U1", tab: str = "home", view: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The event inside event_body() when a user opens the App Home (view absent on first open)."""
    event: dict[str, Any] = {"type": "app_home_opened", "user": user_id, "channel": "D" + user_id, "tab": tab}
    if view is not None:
        event["view"] = view
    return event


def url_verification_body(challenge: str = "challenge-token") -> bytes:
    """What Slack sends once when the Events request URL is saved."""
    body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
    return json.dumps(body).encode()


# ---------------------------------------------------------------------- sender

_SENDING_OPTIONS = ("retry_num", "timestamp", "bad_signature", "retry_reason", "headers")


def _sending_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Move post()'s options out of kwargs meant for a body builder."""
    return {name: kwargs.pop(name) for name in _SENDING_OPTIONS if name in kwargs}


class SlackSender:
    """Posts signed requests to a running app's /slack/events, like Slack does."""

    def __init__(
        self,
        base_url: str,
        signing_secret: str,
        *,
        path: str = "/slack/events",
        timeout: float = 10.0,
    ) -> None:
        self.url = base_url.rstrip("/") + path
        self.signing_secret = signing_secret
        self._client = httpx.Client(timeout=timeout)

    def post(
        self,
        body: bytes,
        content_type: str | None = None,
        retry_num: int | None = None,
        timestamp: int | None = None,
        bad_signature: bool = False,
        *,
        retry_reason: str = "http_timeout",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send `body` signed; content_type defaults to JSON for `{...}` bodies, else form."""
        if content_type is None:
            content_type = JSON if body.lstrip().startswith(b"{") else FORM
        signed = sign(self.signing_secret, body, timestamp)
        if bad_signature:
            # Same shape, wrong digest: what a forged or corrupted request looks like.
            last = signed["X-Slack-Signature"][-1]
            signed["X-Slack-Signature"] = signed["X-Slack-Signature"][:-1] + ("0" if last != "0" else "1")
        sent = {"Content-Type": content_type, **signed}
        if retry_num is not None:
            sent["X-Slack-Retry-Num"] = str(retry_num)
            sent["X-Slack-Retry-Reason"] = retry_reason
        if headers:
            sent.update(headers)
        return self._client.post(self.url, content=body, headers=sent)

    # The shortcuts below take the body builder's keyword arguments plus post()'s
    # sending options (retry_num, timestamp, bad_signature, retry_reason, headers).

    def command(self, text: str = "", **kwargs: Any) -> httpx.Response:
        options = _sending_options(kwargs)
        return self.post(slash_command_body(text=text, **kwargs), FORM, **options)

    def action(self, action_id: str, **kwargs: Any) -> httpx.Response:
        options = _sending_options(kwargs)
        return self.post(block_actions_body(action_id, **kwargs), FORM, **options)

    def submit(self, callback_id: str, values: dict[str, dict[str, Any]], **kwargs: Any) -> httpx.Response:
        options = _sending_options(kwargs)
        return self.post(view_submission_body(callback_id, values, **kwargs), FORM, **options)

    def shortcut(self, callback_id: str, **kwargs: Any) -> httpx.Response:
        options = _sending_options(kwargs)
        return self.post(shortcut_body(callback_id, **kwargs), FORM, **options)

    def event(self, event: dict[str, Any], event_id: str | None = None, **kwargs: Any) -> httpx.Response:
        options = _sending_options(kwargs)
        return self.post(event_body(event, event_id, **kwargs), JSON, **options)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> SlackSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
