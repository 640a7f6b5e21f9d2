"""manifest.yml asks for exactly the Slack scopes the code needs: no more, no fewer.

The Web API methods the code calls are found in its syntax tree (any `<x>.<method>(...)`
whose name is a `slack_sdk.WebClient` method), the events from `app.event("...")`.
Each is mapped to the scopes Slack requires for it; a new method with no mapping fails
here, so whoever adds it decides its scope.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml
from slack_sdk import WebClient

from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("bot", "providers", "storage")

# The WebClient method -> (the Slack methods it calls, the bot scopes they need).
METHOD_SCOPES: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    # chat:write.public: the visible message goes to the channel /sms ran in, which the bot
    # need not have joined.
    "chat_postMessage": (("chat.postMessage",), frozenset({"chat:write", "chat:write.public"})),
    "chat_postEphemeral": (("chat.postEphemeral",), frozenset({"chat:write"})),
    "chat_update": (("chat.update",), frozenset({"chat:write"})),
    "users_info": (("users.info",), frozenset({"users:read"})),
    # files.info, then a download of url_private with the bot token: the CSV of a bulk send.
    "files_info": (("files.info",), frozenset({"files:read"})),
    "files_upload_v2": (("files.getUploadURLExternal", "files.completeUploadExternal"), frozenset({"files:write"})),
    "views_open": (("views.open",), frozenset()),
    "views_update": (("views.update",), frozenset()),
    "views_push": (("views.push",), frozenset()),
    "views_publish": (("views.publish",), frozenset()),
    "auth_test": (("auth.test",), frozenset()),
    # Finding a post whose ts a dead process never recorded (bot/slack/once.py): public and
    # private channels only (DMs are not read back, so no im:history / mpim:history).
    "conversations_history": (("conversations.history",), frozenset({"channels:history", "groups:history"})),
    "conversations_replies": (("conversations.replies",), frozenset({"channels:history", "groups:history"})),
    # Conversations (issue 13): replies are marked; the bot joins a public channel it posts a
    # customer's message in, or Slack would never send it the replies there.
    "reactions_add": (("reactions.add",), frozenset({"reactions:write"})),
    "conversations_join": (("conversations.join",), frozenset({"channels:join"})),
}
# Events the app subscribes to -> the scopes Slack requires to receive them.
EVENT_SCOPES: dict[str, frozenset[str]] = {
    "app_home_opened": frozenset(),
    "message": frozenset({"channels:history", "groups:history", "im:history"}),
}
# A Bolt event name -> the manifest subscriptions delivering it (message events come per kind of channel).
SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {"message": ("message.channels", "message.groups", "message.im")}
WEB_METHODS = {name for name in vars(WebClient) if not name.startswith("_")}


def _calls() -> tuple[set[str], set[str]]:
    """(WebClient methods called, events subscribed to) anywhere in the app's code."""
    methods: set[str] = set()
    events: set[str] = set()
    for folder in CODE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                if node.func.attr in WEB_METHODS:
                    methods.add(node.func.attr)
                if node.func.attr == "event" and node.args and isinstance(node.args[0], ast.Constant):
                    events.add(str(node.args[0].value))
    return methods, events


def _manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))


def test_the_code_calls_only_mapped_methods_and_the_fake_slack_serves_them() -> None:
    methods, events = _calls()
    assert methods, "the scan found no Slack Web API call: is CODE_DIRS right?"
    assert methods <= METHOD_SCOPES.keys(), f"map these to their scopes: {sorted(methods - METHOD_SCOPES.keys())}"
    assert events <= EVENT_SCOPES.keys(), f"map these events to their scopes: {sorted(events - EVENT_SCOPES.keys())}"
    served = set(FakeSlack()._methods)
    for method in methods:
        assert set(METHOD_SCOPES[method][0]) <= served, f"the fake Slack does not record {method}"


def test_manifest_scopes_are_exactly_what_the_code_uses() -> None:
    methods, events = _calls()
    manifest = _manifest()
    needed: set[str] = set()
    for method in methods:
        needed |= METHOD_SCOPES[method][1]
    for event in events:
        needed |= EVENT_SCOPES[event]
    features = manifest["features"]
    if features.get("slash_commands") or features.get("shortcuts"):
        needed.add("commands")
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(needed)


def test_manifest_subscribes_to_exactly_the_events_the_code_handles() -> None:
    _, events = _calls()
    expected = [name for event in events for name in SUBSCRIPTIONS.get(event, (event,))]
    assert sorted(_manifest()["settings"]["event_subscriptions"]["bot_events"]) == sorted(expected)
