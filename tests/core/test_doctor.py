"""`smsbot doctor`'s checks against the fake providers, a fake SlackProbe and a real store:
good credentials, a 401, an unreachable URL, missing scopes, a newer schema, a broken catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.core.config import ConfigError, Settings
from bot.core.doctor import (
    CheckResult,
    check_store,
    check_templates,
    exit_code,
    format_results,
    manifest_bot_scopes,
    run_doctor,
)
from storage.schema import MIGRATIONS
from storage.store import Store
from tests.fakes.providers import FakeProviders
from tests.providers.harness import closed_port_url

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "manifest.yml"
EXAMPLE_CATALOG = ROOT / "templates.example.yml"
BOT_TOKEN = "xoxb-doctor-test-token-77"


class FakeSlackProbe:
    def __init__(self, ok: bool = True, answer: list[str] | str | None = None) -> None:
        self.ok = ok
        self.answer: list[str] | str = sorted(manifest_bot_scopes(MANIFEST)) if answer is None else answer
        self.calls = 0

    def auth_test(self) -> tuple[bool, list[str] | str]:
        self.calls += 1
        return self.ok, self.answer


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake: FakeProviders) -> None:
    fake.reset()


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:")
    yield s
    s.close()


def settings_for(fake: FakeProviders, **over: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN, "slack_signing_secret": "doctor-signing-secret-1",
        "sociocs_api_key": fake.sociocs_api_key, "sociocs_api_url": fake.url,
        **{f"sociocs_channel_key_{code}": key for code, key in fake.sociocs_channel_keys.items()},
        "bird_api_key": fake.bird_access_key, "bird_api_url": fake.url,
        "bird_workspace_id": fake.bird_workspace_id, "bird_channel_id": fake.bird_channel_id,
        "textus_api_token": fake.textus_token, "textus_api_url": fake.url, "textus_account": fake.textus_account,
        "sms_templates_file": str(EXAMPLE_CATALOG),
    }
    values.update(over)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


def doctor(fake: FakeProviders, store: Store | None, slack: FakeSlackProbe | None = None, **over: Any) -> list[CheckResult]:
    return run_doctor(settings_for(fake, **over), slack=slack or FakeSlackProbe(), store=store, manifest=MANIFEST)


def test_everything_good_exits_zero_and_sends_nothing(fake: FakeProviders, store: Store) -> None:
    results = doctor(fake, store)
    checks = by_name(results)
    assert exit_code(results) == 0, format_results(results)
    for name in ("configuration", "slack settings", "senders", "sender twlo", "sender twlowa", "sender gswa",
                 "sender bird", "sender textus", "slack token", "templates", "store"):
        assert checks[name].severity == "ok", checks[name]
    assert checks["webhooks bird"].severity == "info" and "can't tell" in checks["webhooks bird"].message
    assert {r.method for r in fake.requests} == {"GET"}
    assert len(fake.sociocs_messages) == len(fake.bird_messages) == len(fake.textus_messages) == 0


def test_a_401_fails_that_sender_only_and_exits_non_zero(fake: FakeProviders, store: Store) -> None:
    results = doctor(fake, store, bird_api_key="bird-wrong-key-31337")
    checks = by_name(results)
    assert exit_code(results) == 1
    assert not checks["sender bird"].ok and "check BIRD_API_KEY" in checks["sender bird"].message
    assert checks["sender twlo"].ok and checks["sender textus"].ok
    assert "bird-wrong-key-31337" not in format_results(results)


def test_an_unreachable_provider_says_so(fake: FakeProviders, store: Store) -> None:
    url = closed_port_url()
    results = doctor(fake, store, textus_api_url=url)
    check = by_name(results)["sender textus"]
    assert exit_code(results) == 1
    assert check.severity == "error" and "could not be reached" in check.message and "TEXTUS_API_URL" in check.message


def test_slack_auth_failure_and_missing_token(fake: FakeProviders, store: Store) -> None:
    failed = by_name(doctor(fake, store, slack=FakeSlackProbe(ok=False, answer="invalid_auth")))["slack token"]
    assert not failed.ok and "invalid_auth" in failed.message and "SLACK_BOT_TOKEN" in failed.message
    missing = run_doctor(settings_for(fake), slack=None, store=store, manifest=MANIFEST)
    assert exit_code(missing) == 1 and "not set" in by_name(missing)["slack token"].message


def test_missing_scopes_are_named_and_extra_ones_noted(fake: FakeProviders, store: Store) -> None:
    wanted = sorted(manifest_bot_scopes(MANIFEST))
    short = by_name(doctor(fake, store, slack=FakeSlackProbe(answer=wanted[1:])))["slack token"]
    assert not short.ok and wanted[0] in short.message and "reinstall" in short.message
    extra = by_name(doctor(fake, store, slack=FakeSlackProbe(answer=[*wanted, "channels:manage"])))["slack token"]
    assert extra.ok and "channels:manage" in extra.message


def test_secrets_echoed_by_slack_are_redacted(fake: FakeProviders, store: Store) -> None:
    results = doctor(fake, store, slack=FakeSlackProbe(ok=False, answer=f"bad token {BOT_TOKEN}"))
    assert BOT_TOKEN not in format_results(results) and "***" in by_name(results)["slack token"].message


def test_a_store_with_a_newer_schema_is_broken(store: Store) -> None:
    store.conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    result = check_store(store)
    assert not result.ok and "newer" in result.message and "upgrade" in result.message
    store.conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) - 1,))
    assert "migrations" in check_store(store).message
    store.conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS),))
    assert check_store(store).ok


def test_a_store_that_does_not_answer_is_broken(store: Store) -> None:
    store.conn.execute("DROP TABLE schema_version")
    result = check_store(store)
    assert not result.ok and "DATABASE_URL" in result.message
    assert not check_store(None).ok


def test_a_broken_catalog_is_broken_and_an_orphan_template_warns(fake: FakeProviders, tmp_path: Path) -> None:
    bad = tmp_path / "templates.yml"
    bad.write_text("templates:\n  - name: x\n    sender: nobody\n", encoding="utf-8")
    broken = check_templates(settings_for(fake, sms_templates_file=str(bad)), None)
    assert not broken.ok and str(bad) in broken.message
    only_sociocs = settings_for(fake, bird_api_key=None, textus_api_token=None, sociocs_channel_key_gswa=None)
    from bot.core.senders import build_senders

    senders = build_senders(only_sociocs, httpx.Client())
    warned = check_templates(only_sociocs, senders)
    senders.close()
    assert warned.ok and warned.severity == "warning" and all(s in warned.message for s in ("bird", "gswa", "textus"))


def test_a_configuration_error_stops_early_and_fails(store: Store) -> None:
    def load() -> Settings:
        raise ConfigError("SMS_DEFAULT_REGION: needs a two-letter region code such as US, GB or IN")

    results = run_doctor(load, slack=FakeSlackProbe(), store=store, manifest=MANIFEST)
    assert [r.name for r in results] == ["configuration", "store"]
    assert exit_code(results) == 1 and "SMS_DEFAULT_REGION" in results[0].message


def test_warnings_and_notes_do_not_fail_the_exit_code() -> None:
    results = [CheckResult(name="a", ok=True, severity="warning", message="w"),
               CheckResult(name="b", ok=True, severity="info", message="i")]
    assert exit_code(results) == 0
    assert format_results(results).splitlines() == ["[!!] a: w", "[--] b: i"]
