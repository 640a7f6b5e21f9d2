"""Every configured secret, and the secret half of the Sociocs `user:secret` key, appearing
alone, inside a larger string and URL-encoded: never in provider errors (and so the thread's
status line), logs, or `smsbot export` output.

The secrets hold characters that URL encoding changes (`/`, `+`, `=`, `:`), so the encoded
forms are really different strings."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from bot.app.logs import setup_logging
from bot.core.config import Settings
from bot.core.senders import build_senders
from storage.store import NewMessage, Store
from tests.cli.runner import last, run
from tests.conftest import E2E
from tests.fakes.providers import FakeProviders, Fault

SOCIOCS_USER, SOCIOCS_HALF = "soc-user", "s3cr+t/half=9Q"
SOCIOCS_KEY = f"{SOCIOCS_USER}:{SOCIOCS_HALF}"
SECRETS = {
    "sociocs_api_key": SOCIOCS_KEY,
    "sociocs_channel_key_twlo": "ck/twlo+1=",
    "bird_api_key": "bird/acc+ess=key1",
    "textus_api_token": "tx/tok+en=42abc",
    "sociocs_webhook_secret": "wh/soc+sec=1",
    "bird_webhook_signing_key": "wh/bird+key=2",
    "textus_webhook_secret": "wh/tx+sec=3",
    "slack_bot_token": "xoxb-12/34+abc=",
    "slack_signing_secret": "sign/ing+sec=4",
}
# Each configured value, plus the half of the user:secret key on its own.
LEAKABLE = [*SECRETS.values(), SOCIOCS_HALF]


def lower_hex(secret: str) -> str:
    """URL-encoded with lowercase escapes (%2f), which some clients write."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe=""))


def forms(secret: str) -> list[str]:
    """How a secret shows up in someone else's text: alone, inside a word, URL-encoded."""
    return [secret, f"pre{secret}post", quote(secret, safe=""), quote_plus(secret),
            lower_hex(secret), f"x?apikey={quote(secret, safe='')}&y=1"]


def leaks(text: str) -> list[str]:
    found = []
    for secret in LEAKABLE:
        for needle in {secret, quote(secret, safe=""), quote_plus(secret), lower_hex(secret)}:
            if needle in text:
                found.append(needle)
    return found


def settings(**extra: Any) -> Settings:
    values: dict[str, Any] = {**SECRETS, "textus_account": "acct", "bird_workspace_id": "ws", "bird_channel_id": "ch"}
    return Settings(_env_file=None, **{**values, **extra})  # type: ignore[call-arg]


def test_the_forms_really_differ() -> None:
    assert quote(SOCIOCS_HALF, safe="") != SOCIOCS_HALF != quote_plus(SOCIOCS_HALF)
    assert SOCIOCS_KEY in settings().secret_values()


@pytest.mark.parametrize("secret", LEAKABLE)
@pytest.mark.parametrize("form", range(6))
def test_provider_errors_never_carry_a_secret_in_any_form(secret: str, form: int) -> None:
    senders = build_senders(settings())
    text = f"refused: {forms(secret)[form]} (see docs)"
    for name in ("twlo", "bird", "textus"):
        scrubbed = senders.get(name).scrub(text)
        assert leaks(scrubbed) == [], (name, scrubbed)
        assert "***" in scrubbed and scrubbed.startswith("refused: ") and scrubbed.endswith(" (see docs)")


@pytest.fixture
def redacting_logs() -> Iterator[None]:
    root = logging.getLogger()
    setup_logging([*settings().secret_values()], level=logging.INFO)
    yield
    for handler in root.handlers:  # leave no filter behind for other tests
        handler.filters = [f for f in handler.filters if type(f).__name__ != "RedactSecrets"]


def test_logs_never_carry_a_secret_in_any_form(redacting_logs: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    setup_logging([*settings().secret_values()], level=logging.INFO)  # caplog's handler gets the filter too
    log = logging.getLogger("smsbot.test")
    for secret in LEAKABLE:
        for text in forms(secret):
            log.warning("provider said %s", text)
    try:
        raise RuntimeError(f"boom {quote(SOCIOCS_HALF, safe='')} and {SOCIOCS_HALF}")
    except RuntimeError:
        log.exception("call failed")
    shown = [caplog.handler.format(r) for r in caplog.records]
    assert len(shown) == len(LEAKABLE) * 6 + 1
    assert all("***" in line for line in shown)
    assert leaks("\n".join(shown)) == []


def test_export_never_carries_a_secret_in_any_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(str(tmp_path / "h.db"))
    for i, secret in enumerate(LEAKABLE):
        mid, _ = store.enqueue(NewMessage(idem_key=f"k{i}", sender="twlo", to_number="+16175551212",
                                          payload={"to": "+16175551212", "text": "hi"}, summary="hi",
                                          due_at=time.time(), created_by="U1"))
        store.claim_one(mid, "me")
        store.mark_sending(mid, "me")
        # Written straight to the store, as an older version or an unredacted path would have.
        store.record_outcome(mid, "failed", error=" | ".join(forms(secret)), error_kind="rejected")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'h.db'}")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name.upper(), value)
    assert run("export", "--since", "2000-01-01") == 0
    out = last().stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(LEAKABLE) and all(r["error"].count("***") == 6 for r in rows)
    assert leaks(out) == []


def test_a_provider_error_echoing_secrets_never_reaches_the_thread(
        e2e_factory: Callable[..., E2E], fake_providers: FakeProviders) -> None:
    fake_providers.sociocs_api_key = SOCIOCS_KEY
    fake_providers.sociocs_channel_keys = {**fake_providers.sociocs_channel_keys,
                                           "twlo": SECRETS["sociocs_channel_key_twlo"]}
    e2e = e2e_factory(sociocs_api_key=SOCIOCS_KEY, sociocs_channel_key_twlo=SECRETS["sociocs_channel_key_twlo"],
                      sociocs_webhook_secret=SECRETS["sociocs_webhook_secret"],
                      textus_webhook_secret=SECRETS["textus_webhook_secret"])
    # The half alone, inside a word and URL-encoded, in the provider's own error text.
    echo = "; ".join(forms(SOCIOCS_HALF)[:3] + forms(SECRETS["textus_webhook_secret"])[2:3])
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": echo}]})])
    e2e.command("send +16175551212 hello", user_id="U1", channel_id="C1")
    line = e2e.slack.wait_for("chat.postMessage", lambda c: "Not sent" in c["params"].get("text", ""), timeout=5)
    assert line[-1]["params"]["text"].count("***") == 4
    stored = e2e.rt.store.get(1)
    assert stored is not None and stored.error is not None and leaks(stored.error) == []
    status = e2e.command("status +16175551212").text
    assert leaks(status + json.dumps([c["params"] for c in e2e.slack.calls])) == []
