"""`smsbot export` and `smsbot webhooks register`, against a fake of the subscription APIs."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.cli.webhooks import run_webhooks
from bot.core.config import Settings
from storage.store import NewMessage, Store
from tests.cli.runner import last, run
from tests.conftest import BIRD_CH, BIRD_KEY, BIRD_WS, CHANNEL_KEYS, SOCIOCS_KEY, TEXTUS_ACCOUNT, TEXTUS_TOKEN

BASE = "https://sms.example.com"


def _db(tmp_path: Path) -> tuple[str, Store]:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    return url, Store(str(tmp_path / "h.db"))


def _add(store: Store, key: str, text: str, to: str = "+16175551212", **kw: Any) -> int:
    mid, _ = store.enqueue(NewMessage(idem_key=key, sender="twlo", to_number=to, payload={"to": to, "text": text},
                                      summary=text, due_at=time.time(), created_by="U1", user_name="alice", **kw))
    return mid


def test_export_writes_the_history_as_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    url, store = _db(tmp_path)
    first = _add(store, "a", "Your order shipped")
    second = _add(store, "b", "=HYPERLINK(\"http://evil\")")
    for mid in (first, second):
        store.claim_one(mid, "me")
        store.mark_sending(mid, "me")
    store.record_outcome(first, "sent", provider_message_id="SOC1", delivery="accepted")
    store.apply_delivery_event("sociocs", "SOC1", "failed", error="Unreachable handset")
    store.record_outcome(second, "failed", error="Invalid channel_key.", error_kind="rejected")
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)  # no stray .env

    assert run("export", "--since", "2000-01-01") == 0
    rows = list(csv.DictReader(io.StringIO(last().stdout)))
    assert [r["id"] for r in rows] == [str(first), str(second)]
    assert rows[0]["sent_by"] == "U1" and rows[0]["sent_by_name"] == "alice" and rows[0]["to"] == "+16175551212"
    assert rows[0]["sender"] == "twlo" and rows[0]["text"] == "Your order shipped"
    assert rows[0]["status"] == "sent" and rows[0]["delivery"] == "failed"
    assert rows[0]["error"] == "Unreachable handset" and rows[0]["provider_message_id"] == "SOC1"
    assert rows[0]["created_at"].endswith("+00:00") and rows[0]["sent_at"]
    assert rows[1]["text"].startswith("'=HYPERLINK")  # a formula in message text stays text
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "Invalid channel_key."

    out = tmp_path / "out.csv"
    assert run("export", "--since", "2999-01-01", "--out", str(out)) == 0
    assert out.read_text().splitlines() == [
        "id,created_at,sent_at,sent_by,sent_by_name,to,name,sender,text,status,delivery,error,"
        "provider_message_id,source,bulk_job_id"]


def test_export_user_applies_that_persons_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    url, store = _db(tmp_path)
    mine = _add(store, "a", "From U1")
    theirs = _add(store, "b", "From U2")
    with store.write() as conn:
        conn.execute("UPDATE messages SET created_by = 'U2' WHERE id = ?", (theirs,))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SMS_BULK_USERS", "UM")
    monkeypatch.chdir(tmp_path)

    def exported(*extra: str) -> list[str]:
        assert run("export", "--since", "2000-01-01", *extra) == 0
        return [r["id"] for r in csv.DictReader(io.StringIO(last().stdout))]

    assert exported() == [str(mine), str(theirs)]  # the operator: everything
    assert exported("--user", "U2") == [str(theirs)]
    assert exported("--user", "UM") == [str(mine), str(theirs)]


def test_export_refuses_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("export", "--since", "last tuesday") == 2
    assert "is not a date" in last().stderr


class FakeSubscriptions:
    """Sociocs POST /webhook-subscriptions (upsert on subscriber_reference_id) and Bird's
    list/create under /workspaces/{ws}/webhook-subscriptions."""

    def __init__(self) -> None:
        self.sociocs: dict[str, dict[str, Any]] = {}
        self.bird: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/webhook-subscriptions":
            if request.headers.get("apikey") != SOCIOCS_KEY:
                return httpx.Response(401, json={"status": "error", "errors": [{"msg": "Invalid API key."}]})
            body = json.loads(request.content)
            assert body["channel_key"] == CHANNEL_KEYS[body["provider"]]
            self.sociocs[body["subscriber_reference_id"]] = body
            return httpx.Response(200, json={"status": "success", "data": {}})
        if path == f"/workspaces/{BIRD_WS}/webhook-subscriptions":
            if request.headers.get("authorization") != f"AccessKey {BIRD_KEY}":
                return httpx.Response(401, json={"code": "Unauthorized", "message": "bad key"})
            if request.method == "GET":
                return httpx.Response(200, json={"results": self.bird, "nextPageToken": ""})
            body = json.loads(request.content)
            self.bird.append({"id": f"sub{len(self.bird)}", "status": "active", **body})
            return httpx.Response(201, json=self.bird[-1])
        return httpx.Response(404, json={})


def _settings(fake_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        sociocs_api_key=SOCIOCS_KEY, sociocs_api_url=fake_url, sociocs_channel_key_twlo=CHANNEL_KEYS["twlo"],
        sociocs_channel_key_gswa=CHANNEL_KEYS["gswa"], sociocs_webhook_secret="soc-hook-secret",
        bird_api_key=BIRD_KEY, bird_api_url=fake_url, bird_workspace_id=BIRD_WS, bird_channel_id=BIRD_CH,
        bird_webhook_signing_key="bird-hook-key", textus_api_token=TEXTUS_TOKEN, textus_account=TEXTUS_ACCOUNT,
    )
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_webhooks_register_subscribes_sociocs_and_bird_idempotently(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSubscriptions()
    client = httpx.Client(transport=httpx.MockTransport(fake))
    settings = _settings("https://providers.test")
    args = BASE + "/"
    assert run_webhooks(args, settings, client=client) == 0
    first = capsys.readouterr().out
    assert "Sociocs twlo: subscribed https://sms.example.com/webhooks/sociocs to status_updates" in first
    assert "Sociocs gswa: subscribed" in first and "twlowa" not in first
    assert f"Bird: subscribed {BASE}/webhooks/bird to sms.outbound for channel {BIRD_CH}." in first
    assert "TextUs: set this up by hand" in first and f"{BASE}/webhooks/textus" in first
    assert set(fake.sociocs) == {"smsbot-twlo", "smsbot-gswa"}
    assert fake.sociocs["smsbot-twlo"]["events"] == ["status_updates"]
    assert fake.sociocs["smsbot-twlo"]["webhook_url"] == f"{BASE}/webhooks/sociocs"
    assert fake.sociocs["smsbot-twlo"]["secret"] == "soc-hook-secret"
    assert len(fake.bird) == 1 and fake.bird[0]["url"] == f"{BASE}/webhooks/bird"
    assert fake.bird[0]["eventFilters"] == [{"key": "channelId", "value": BIRD_CH}]

    # Again: Sociocs upserts on the same reference ids, Bird finds its subscription.
    assert run_webhooks(args, settings, client=client) == 0
    again = capsys.readouterr().out
    assert "Bird: already subscribed" in again
    assert set(fake.sociocs) == {"smsbot-twlo", "smsbot-gswa"} and len(fake.bird) == 1
    assert "soc-hook-secret" not in first + again and "bird-hook-key" not in first + again


def test_webhooks_register_says_what_is_missing_and_never_prints_keys(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSubscriptions()
    client = httpx.Client(transport=httpx.MockTransport(fake))
    settings = _settings("https://providers.test", sociocs_webhook_secret=None, bird_api_key="wrong-bird-key-xyz")
    args = BASE
    assert run_webhooks(args, settings, client=client) == 1
    out = capsys.readouterr().out
    assert "Sociocs: skipped; set SOCIOCS_WEBHOOK_SECRET first" in out
    assert "Bird: Bird rejects the access key: check BIRD_API_KEY." in out
    assert "wrong-bird-key-xyz" not in out and fake.sociocs == {} and fake.bird == []
