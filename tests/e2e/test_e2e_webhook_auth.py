"""End to end, for every provider: with its secret configured, a webhook whose signature is
wrong or missing gets 401 and changes nothing (no stored event, no delivery state, no Slack
call). Then a correctly signed report goes through, which proves the refusals were the
signature check and gives the delivery thread something to finish before we look at Slack."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import E2E
from tests.e2e.test_e2e_webhooks import (  # noqa: F401 - `make` is a fixture
    BIRD_SIGNING_KEY,
    SOCIOCS_SECRET,
    TEXTUS_SECRET,
    delivery,
    make,
    wait_update,
)

WRONG = "not-the-configured-secret"


def _hex_sig(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _sociocs(e2e: E2E, row: Any, status: str) -> tuple[bytes, Callable[[str | None, bytes], dict[str, str]]]:
    data: dict[str, Any] = {"status": status}
    if status == "failed":
        data["error"] = {"code": 30006, "message": "forged failure"}
    body = json.dumps({"message_id": row.provider_message_id, "event": "status_update", "event_data": data}).encode()
    return body, lambda key, b: {"X-Sociocs-Signature": _hex_sig(key, b)} if key else {}


def _bird(e2e: E2E, row: Any, status: str) -> tuple[bytes, Callable[[str | None, bytes], dict[str, str]]]:
    message = e2e.providers.bird_messages.get(row.provider_message_id)
    bird_status = "delivery_failed" if status == "failed" else status
    body = json.dumps({**(message or {}), "status": bird_status, "failure": {"description": "forged failure"}}).encode()

    def sign(key: str | None, b: bytes) -> dict[str, str]:
        stamp = str(int(time.time()))
        if key is None:
            return {"messagebird-request-timestamp": stamp}
        signed = f"{stamp}\n{e2e.url}/webhooks/bird\n".encode() + hashlib.sha256(b).digest()
        sig = base64.b64encode(hmac.new(key.encode(), signed, hashlib.sha256).digest()).decode()
        return {"messagebird-request-timestamp": stamp, "messagebird-signature": sig}

    return body, sign


def _textus(e2e: E2E, row: Any, status: str) -> tuple[bytes, Callable[[str | None, bytes], dict[str, str]]]:
    body = json.dumps({"@type": "WebhookDelivery", "timestamp": "2024-01-01T00:00:00Z",
                       "action": f"message.{status}",
                       "payload": {"id": row.provider_message_id, "friendlyStateDescription": "forged failure"}
                       }).encode()
    return body, lambda key, b: {"X-TextUs-Signature": _hex_sig(key, b)} if key else {}


CASES = {
    "sociocs": ("send +16175551212 Hi", SOCIOCS_SECRET, _sociocs),
    "bird": ("send --via bird +16175551212 Hi", BIRD_SIGNING_KEY, _bird),
    "textus": ("send --via textus +16175551212 Hi", TEXTUS_SECRET, _textus),
}


@pytest.mark.parametrize("provider", sorted(CASES))
def test_configured_secret_and_a_wrong_or_missing_signature_is_401_and_changes_nothing(
        make: Callable[..., E2E], provider: str) -> None:  # noqa: F811
    command, secret, build = CASES[provider]
    e2e = make(sms_notify_on="all")
    e2e.command(command, user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.status_ts and r.provider_message_id and r, 5, "sent")
    slack_before = len(e2e.slack.calls)
    forged, sign = build(e2e, row, "failed")
    url = f"{e2e.url}/webhooks/{provider}"
    base = {"Content-Type": "application/json"}
    for key in (WRONG, None, ""):
        answer = httpx.post(url, content=forged, headers={**base, **sign(key or None, forged)})
        assert answer.status_code == 401, key
    # A body changed after signing (the signature of the real body, the forged body sent).
    genuine, _ = build(e2e, row, "delivered")
    assert httpx.post(url, content=forged, headers={**base, **sign(secret, genuine)}).status_code == 401
    assert e2e.rt.store.conn.execute("SELECT count(*) FROM delivery_events").fetchone()[0] == 0
    assert e2e.rt.store.get(1).delivery == row.delivery
    # The genuine report goes through; once its update is drawn the forged ones had their chance.
    assert httpx.post(url, content=genuine, headers={**base, **sign(secret, genuine)}).status_code == 200
    wait_update(e2e, row.status_ts, "Status: delivered")
    assert delivery(e2e).outbox.flush()
    statuses = e2e.rt.store.conn.execute("SELECT status FROM delivery_events").fetchall()
    assert [s[0] for s in statuses] == ["delivered"]
    assert e2e.rt.store.get(1).delivery == "delivered"
    after = json.dumps([c["params"] for c in e2e.slack.calls[slack_before:]])
    assert "forged failure" not in after and "failed" not in after
