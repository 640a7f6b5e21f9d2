"""`smsbot doctor`'s credential checks against the fake providers: one documented read call
each, never a send; good credentials, a 401, an unreachable URL, wrong ids, secrets redacted."""

from __future__ import annotations

from typing import Any

import pytest

from providers.sandbox import SandboxProvider
from tests.fakes.providers import FakeProviders, Fault
from tests.providers.harness import closed_port_url, live

REAL = ("twlo", "twlowa", "gswa", "bird", "textus")
# The documented read each check uses: (method, path prefix as the fake sees it).
READ_CALL = {"twlo": "/messages", "twlowa": "/messages", "gswa": "/messages", "bird": "/workspaces/",
             "textus": "/my_account/opt_outs"}
WRONG_KEY = {"twlo": {"api_key": "socuser:wrong-secret-123"}, "twlowa": {"api_key": "socuser:wrong-secret-123"},
             "gswa": {"api_key": "socuser:wrong-secret-123"}, "bird": {"api_key": "bird-wrong-key-999"},
             "textus": {"token": "textus-wrong-token-42"}}
VARIABLE = {"twlo": "SOCIOCS_API_KEY", "twlowa": "SOCIOCS_API_KEY", "gswa": "SOCIOCS_API_KEY",
            "bird": "BIRD_API_KEY", "textus": "TEXTUS_API_TOKEN"}


def _nothing_sent(fake: FakeProviders) -> None:
    assert all(r.method == "GET" for r in fake.requests)
    assert len(fake.sociocs_messages) == len(fake.bird_messages) == len(fake.textus_messages) == 0


@pytest.mark.parametrize("sender", REAL)
def test_good_credentials_are_ok_with_one_read_call(fake: FakeProviders, sender: str) -> None:
    result = live(fake, sender).check_credentials()
    assert (result.status, result.ok, result.sender) == ("ok", True, sender)
    assert VARIABLE[sender] in result.message
    [request] = fake.requests
    assert request.method == "GET" and request.path.startswith(READ_CALL[sender])
    _nothing_sent(fake)


@pytest.mark.parametrize("sender", REAL)
def test_a_401_is_auth_failed_naming_the_variable_without_the_secret(fake: FakeProviders, sender: str) -> None:
    kw: dict[str, Any] = WRONG_KEY[sender]
    result = live(fake, sender, **kw).check_credentials()
    assert (result.status, result.ok) == ("auth_failed", False)
    assert f"check {VARIABLE[sender]}" in result.message
    secret = next(iter(kw.values()))
    assert secret not in result.message and secret.split(":")[-1] not in result.message
    _nothing_sent(fake)


@pytest.mark.parametrize("sender", REAL)
def test_an_unreachable_url_is_unreachable_naming_the_url_variable(fake: FakeProviders, sender: str) -> None:
    url = closed_port_url()
    result = live(fake, sender, base_url=url).check_credentials()
    assert result.status == "unreachable"
    assert url in result.message and "_API_URL" in result.message


def test_sociocs_asks_for_today_only(fake: FakeProviders) -> None:
    from datetime import date

    live(fake, "twlo").check_credentials(today=date(2025, 3, 4))
    [request] = fake.requests
    assert request.query == {"start_date": "2025-03-04", "end_date": "2025-03-04"}


def test_bird_wrong_workspace_or_channel_points_at_the_setting(fake: FakeProviders) -> None:
    workspace = live(fake, "bird", workspace_id="11111111-2222-4333-8444-555555555555").check_credentials()
    channel = live(fake, "bird", channel_id="11111111-2222-4333-8444-555555555555").check_credentials()
    assert (workspace.status, channel.status) == ("other", "other")
    assert "BIRD_WORKSPACE_ID" in workspace.message and "BIRD_CHANNEL_ID" in channel.message


def test_textus_wrong_account_points_at_the_account(fake: FakeProviders) -> None:
    result = live(fake, "textus", account="not_mine").check_credentials()
    assert result.status == "other" and "TEXTUS_ACCOUNT" in result.message


def test_a_provider_echoing_the_key_has_it_redacted(fake: FakeProviders) -> None:
    key = fake.sociocs_api_key
    fake.script("/messages", [Fault(status=400, body={"status": "error", "errors": [{"msg": f"bad {key}"}]})])
    result = live(fake, "twlo").check_credentials()
    assert result.status == "other"
    assert key not in result.message and key.split(":")[1] not in result.message and "***" in result.message


def test_a_server_error_is_other_and_a_429_still_proves_the_key(fake: FakeProviders) -> None:
    fake.script("/opt_outs", [Fault(status=503), Fault(status=429, headers={"Retry-After": "3"})])
    provider = live(fake, "textus")
    assert provider.check_credentials().status == "other"
    assert provider.check_credentials().status == "ok"


@pytest.mark.parametrize("sender", REAL)
def test_webhook_registration_cannot_be_told_and_says_where_to_look(fake: FakeProviders, sender: str) -> None:
    result = live(fake, sender).check_webhooks()
    assert result.status == "unknown" and result.message.startswith("can't tell")
    assert fake.requests == []


def test_sandbox_needs_nothing() -> None:
    sandbox = SandboxProvider()
    assert sandbox.check_credentials().ok
    assert sandbox.check_webhooks().status == "unknown"
    assert sandbox.sent == []
