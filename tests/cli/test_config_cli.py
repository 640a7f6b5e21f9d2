"""Configuration errors name the variable; the CLI sends and prints the outcome; secrets stay hidden."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.app.logs import RedactSecrets
from bot.core.config import ConfigError, Settings, load_settings, require_slack
from bot.core.senders import build_senders
from tests.conftest import BIRD_CH, BIRD_KEY, BIRD_WS
from tests.fakes.providers import FakeProviders

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SMS_DEFAULT_REGION": "Narnia"}, "SMS_DEFAULT_REGION: needs a two-letter region code"),
        ({"SMS_DEFAULT_SENDER": "pigeon"}, "SMS_DEFAULT_SENDER: needs one of twlo"),
        ({"PORT": "http"}, "PORT: "),
        ({"SLACK_API_URL": "slack.com"}, "SLACK_API_URL: needs an http(s) URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: needs a sqlite:///path or postgresql://"),
        ({"SMS_NOTIFY_ON": "sometimes"}, "SMS_NOTIFY_ON: "),
    ],
)
def test_bad_settings_stop_with_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict,
                                                             fragment: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    assert str(err.value).startswith(fragment)
    assert "\n" not in str(err.value)


def test_half_configured_providers_are_refused() -> None:
    with pytest.raises(ConfigError, match="BIRD_WORKSPACE_ID"):
        build_senders(Settings(_env_file=None, bird_api_key="k"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="TEXTUS_ACCOUNT"):
        build_senders(Settings(_env_file=None, textus_api_token="t"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="SOCIOCS_API_KEY"):
        build_senders(Settings(_env_file=None, sociocs_channel_key_twlo="ck"))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="SMS_DEFAULT_SENDER"):
        build_senders(Settings(_env_file=None, sms_default_sender="bird"))  # type: ignore[call-arg]


def test_sandbox_is_the_default_only_when_nothing_else_is_configured() -> None:
    assert build_senders(Settings(_env_file=None)).default == "sandbox"  # type: ignore[call-arg]
    senders = build_senders(Settings(_env_file=None, textus_api_token="t", textus_account="a"))  # type: ignore[call-arg]
    assert senders.default == "textus"
    assert senders.names() == ["textus", "sandbox"]


def test_slack_credentials_are_required_to_run() -> None:
    with pytest.raises(ConfigError, match="^SLACK_BOT_TOKEN"):
        require_slack(Settings(_env_file=None))  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="^SLACK_SIGNING_SECRET"):
        require_slack(Settings(_env_file=None, slack_bot_token="xoxb-1"))  # type: ignore[call-arg]


def test_log_records_never_carry_secrets(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("smsbot.test")
    handler = logging.Handler()
    seen: list[str] = []
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    handler.addFilter(RedactSecrets(["user:topsecret", "xoxb-123-abc"]))
    logger.addHandler(handler)
    try:
        logger.warning("key %s and token %s", "user:topsecret", "xoxb-123-abc")
    finally:
        logger.removeHandler(handler)
    assert seen == ["key *** and token ***"]


def _cli_env(tmp_path: Path, fake: FakeProviders) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMS_", "SOCIOCS_", "BIRD_", "TEXTUS_"))}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        BIRD_API_KEY=BIRD_KEY, BIRD_API_URL=fake.url, BIRD_WORKSPACE_ID=BIRD_WS, BIRD_CHANNEL_ID=BIRD_CH,
    )
    return env


def test_cli_send_prints_the_outcome(tmp_path: Path, fake_providers: FakeProviders) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.app.main", "send", "--via", "bird", "--to", "+16175551212", "--text", "hi"],
        cwd=tmp_path, env={**_cli_env(tmp_path, fake_providers), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "accepted by Bird SMS for +1 617-555-1212: message id" in result.stdout
    sent = [r for r in fake_providers.requests if r.path.endswith("/messages")]
    assert len(sent) == 1 and sent[0].json["body"] == {"type": "text", "text": {"text": "hi"}}
    assert BIRD_KEY not in result.stdout + result.stderr


def test_cli_send_with_a_bad_number_sends_nothing(tmp_path: Path, fake_providers: FakeProviders) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.app.main", "send", "--via", "bird", "--to", "12", "--text", "hi"],
        cwd=tmp_path, env={**_cli_env(tmp_path, fake_providers), "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "not a valid phone number" in result.stderr
    assert fake_providers.requests == []


def test_cli_reports_auth_failure_without_the_key(tmp_path: Path, fake_providers: FakeProviders) -> None:
    env = {**_cli_env(tmp_path, fake_providers), "PYTHONPATH": str(ROOT), "BIRD_API_KEY": "wrong-key-123456"}
    result = subprocess.run(
        [sys.executable, "-m", "bot.app.main", "send", "--via", "bird", "--to", "+16175551212", "--text", "hi"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "BIRD_API_KEY" in result.stderr
    assert "wrong-key-123456" not in result.stdout + result.stderr


def test_tracebacks_in_logs_are_redacted_too() -> None:
    logger = logging.getLogger("smsbot.test.tb")
    seen: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.emit = lambda record: seen.append(handler.format(record))  # type: ignore[method-assign]
    handler.addFilter(RedactSecrets(["sk-live-abcdef123"]))
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError("token sk-live-abcdef123 rejected")
        except RuntimeError:
            logger.exception("call failed")
    finally:
        logger.removeHandler(handler)
    assert len(seen) == 1 and "sk-live-abcdef123" not in seen[0] and "token *** rejected" in seen[0]
