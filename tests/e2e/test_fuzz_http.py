"""Fuzz: random and mangled bodies at every HTTP entry point, over HTTP, against the real app.

`/slack/events` (slash commands, interactivity payloads, Events API) and
`/webhooks/sociocs|bird|textus`, signed and unsigned: nothing ever answers 5xx, and nothing
unsigned changes the store. Deterministic (derandomize) and bounded, so CI stays quick.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import E2E, SIGNING_SECRET
from tests.fakes import slack_requests as sr

SECRETS = {"sociocs": "fuzz-sociocs-secret", "bird": "fuzz-bird-key", "textus": "fuzz-textus-secret"}
FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -------------------------------------------------------------- values

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([1e20, -1e20, 1e308, 0.5, float("inf"), float("nan")]),
    st.text(max_size=30), st.sampled_from(["", "{", "[1]", "1e20", "U1", "C1", "+16175551212", "<!channel>"]),
)
json_value = st.recursive(
    json_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _payload(body: bytes) -> dict[str, Any]:
    return json.loads(parse_qs(body.decode())["payload"][0])


def _interactive_bases() -> list[dict[str, Any]]:
    """One real-looking payload per listener kind; fuzzing mangles parts of them."""
    send_values = {"sender": {"value": {"selected_option": "twlo"}}, "to": {"value": "+16175551212"},
                   "text": {"value": "hi"}, "when_dt": {"value": {"selected_date_time": 1_900_000_000}}}
    bases = [_payload(sr.view_submission_body(cb, send_values, private_metadata='{"channel_id": "C1"}'))
             for cb in ("send_modal", "bulk_modal", "bulk_confirm", "template_modal", "schedule_edit_modal")]
    bases += [_payload(sr.block_actions_body(a, value="1")) for a in
              ("schedule_cancel", "schedule_edit", "missed_send_now", "schedule_bulk_cancel", "schedule_list_next",
               "bulk_cancel", "bulk_pause", "bulk_resume", "tpl_choose", "tpl_var")]
    bases.append(_payload(sr.shortcut_body("send_sms")))
    bases.append(_payload(sr.view_closed_body("bulk_modal")))
    bases.append({"type": "block_suggestion", "action_id": "tpl_choose", "block_id": "b", "value": "x",
                  "user": {"id": "U1"}, "team": {"id": "T1"}, "view": {"id": "V1", "private_metadata": "{}"}})
    return bases


INTERACTIVE = _interactive_bases()
EVENT = json.loads(sr.event_body(sr.app_home_opened_event()))


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON value, containers included (so whole subtrees get replaced)."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += paths(child, (*prefix, i))
    return found


@st.composite
def mangled(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with one to three values (leaves or subtrees) replaced by random JSON."""
    out = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(paths(out)))
        node = out
        try:
            for key in where[:-1]:
                node = node[key]
            node[where[-1]] = draw(json_value)
        except (KeyError, IndexError, TypeError):  # an earlier replacement removed this path
            continue
    return out


def _form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


slash_commands = st.builds(
    lambda text, user, channel, extra: _form({**_payload_fields(text, user, channel), **extra}),
    st.text(max_size=60) | st.sampled_from(["send +16175551212 hi --at 1e20", "status 1", "list --all", "bulk"]),
    st.sampled_from(["U1", "", "U" * 300]), st.sampled_from(["C1", "D1", ""]),
    st.dictionaries(st.sampled_from(["command", "trigger_id", "response_url", "team_id"]), st.text(max_size=20),
                    max_size=2),
)


def _payload_fields(text: str, user: str, channel: str) -> dict[str, str]:
    body = sr.slash_command_body(text=text, user_id=user, channel_id=channel, trigger_id="1.2.abc")
    return {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}


interactive = st.sampled_from(INTERACTIVE).flatmap(mangled).map(lambda p: _form({"payload": json.dumps(p)}))
events = st.just(EVENT).flatmap(mangled).map(lambda p: json.dumps(p).encode())
raw = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(str.encode),
    json_value.map(lambda v: json.dumps(v).encode()),
    json_value.map(lambda v: _form({"payload": json.dumps(v)})),
    st.text(max_size=50).map(lambda t: _form({"payload": t})),
)
slack_bodies = st.tuples(st.one_of(slash_commands, interactive, events, raw),
                         st.sampled_from([sr.FORM, sr.JSON, "text/plain", ""]))

# -------------------------------------------------------------- the app and its store


@pytest.fixture
def app(e2e_factory: Callable[..., E2E]) -> E2E:
    # No worker: nothing sends, so the store only changes through the requests themselves.
    return e2e_factory(with_worker=False, sociocs_webhook_secret=SECRETS["sociocs"],
                       bird_webhook_signing_key=SECRETS["bird"], textus_webhook_secret=SECRETS["textus"])


def fingerprint(e2e: E2E) -> str:
    """Everything in the store, read over a separate connection."""
    with sqlite3.connect(f"file:{e2e.rt.settings.database_path}?mode=ro", uri=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        rows = [(t, conn.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables]  # noqa: S608 - own names
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def to_fake_slack(e2e: E2E, body: bytes) -> bytes:
    """Point the builders' dead response_url at FakeSlack: no connection-refused retries (and their
    random jitter, which Hypothesis would see as nondeterminism) while listeners answer."""
    real = e2e.slack.root_url + "/response/1"
    for dead, live in ((sr.DEFAULT_RESPONSE_URL, real), (quote_plus(sr.DEFAULT_RESPONSE_URL), quote_plus(real))):
        body = body.replace(dead.encode(), live.encode())
    return body


def slack_post(e2e: E2E, client: httpx.Client, body: bytes, content_type: str, how: str) -> httpx.Response:
    body = to_fake_slack(e2e, body)
    stamp = int(time.time()) - (600 if how == "stale" else 0)
    secret = "not-the-secret" if how == "wrong secret" else SIGNING_SECRET
    digest = hmac.new(secret.encode(), b"v0:%d:" % stamp + body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": content_type} if content_type else {}
    if how != "missing":
        headers |= {"X-Slack-Request-Timestamp": str(stamp) if how != "garbage" else "1e20",
                    "X-Slack-Signature": f"v0={digest}"}
    return client.post(e2e.url + "/slack/events", content=body, headers=headers)


# -------------------------------------------------------------- Slack


def test_unsigned_slack_requests_are_401_and_change_nothing(app: E2E) -> None:
    client = httpx.Client(timeout=10)
    before = fingerprint(app)

    @FUZZ
    @given(slack_bodies, st.sampled_from(["missing", "wrong secret", "stale", "garbage"]))
    def unsigned(sent: tuple[bytes, str], how: str) -> None:
        resp = slack_post(app, client, *sent, how)
        assert resp.status_code == 401, (resp.status_code, resp.text)

    unsigned()
    assert fingerprint(app) == before
    assert not app.slack.calls, "an unsigned request reached a listener"
    client.close()


def test_signed_slack_requests_never_get_a_5xx(app: E2E) -> None:
    client = httpx.Client(timeout=10)

    @FUZZ
    @given(slack_bodies)
    def signed(sent: tuple[bytes, str]) -> None:
        resp = slack_post(app, client, *sent, "signed")
        assert resp.status_code < 500, (resp.status_code, resp.text)

    signed()
    client.close()


# -------------------------------------------------------------- provider webhooks

WEBHOOK_BASES = {
    "sociocs": {"message_id": "m-1", "event": "status_update", "event_data": {"status": "delivered"}},
    "bird": {"service": "channels", "event": "sms.outbound",
             "payload": {"id": "bird-1", "status": "delivered", "reference": "smsbot-1"}},
    "textus": {"@type": "WebhookDelivery", "timestamp": "2024-01-01T00:00:00Z", "action": "message.delivered",
               "payload": {"id": "/messages/1"}},
}


def webhook_headers(e2e: E2E, provider: str, body: bytes, signed: bool) -> dict[str, str]:
    secret = (SECRETS[provider] if signed else "not-the-secret").encode()
    if provider == "bird":
        stamp = str(int(time.time()))
        signed_text = f"{stamp}\n{e2e.url}/webhooks/bird\n".encode() + hashlib.sha256(body).digest()
        digest = base64.b64encode(hmac.new(secret, signed_text, hashlib.sha256).digest()).decode()
        return {"messagebird-request-timestamp": stamp, "messagebird-signature": digest}
    name = "X-Sociocs-Signature" if provider == "sociocs" else "X-TextUs-Signature"
    return {name: hmac.new(secret, body, hashlib.sha256).hexdigest()}


webhook_bodies = st.sampled_from(sorted(WEBHOOK_BASES)).flatmap(
    lambda p: st.tuples(st.just(p), st.one_of(
        st.just(WEBHOOK_BASES[p]).flatmap(mangled).map(lambda v: json.dumps(v).encode()),
        json_value.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=200),
    )))


def test_webhooks_never_get_a_5xx_and_unsigned_ones_change_nothing(app: E2E) -> None:
    client = httpx.Client(timeout=10)

    @FUZZ
    @given(webhook_bodies, st.booleans())
    def post(sent: tuple[str, bytes], signed: bool) -> None:
        provider, body = sent
        before = None if signed else fingerprint(app)
        headers = {"Content-Type": "application/json", **webhook_headers(app, provider, body, signed)}
        resp = client.post(f"{app.url}/webhooks/{provider}", content=body, headers=headers)
        assert resp.status_code < 500, (provider, resp.status_code, resp.text)
        if not signed:
            assert resp.status_code == 401
            assert fingerprint(app) == before

    post()
    client.close()
