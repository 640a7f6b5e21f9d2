"""`smsbot doctor` through the console script's own wiring, against the fake providers and fake Slack:
one line per check, exit 0 when everything works, 1 naming what to fix when something is broken."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bot.core.doctor import manifest_bot_scopes
from tests.cli.runner import last, run
from tests.conftest import make_settings
from tests.fakes.providers import FakeProviders
from tests.fakes.slack import FakeSlack

MANIFEST = str(Path(__file__).resolve().parents[2] / "manifest.yml")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_slack: FakeSlack,
        fake_providers: FakeProviders) -> pytest.MonkeyPatch:
    """The environment of a good set-up: every provider, the fake Slack granting the manifest's scopes."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    fake_slack.bot_scopes = sorted(manifest_bot_scopes(MANIFEST))
    settings = make_settings(tmp_path, fake_slack, fake_providers)
    for name, value in settings:
        if value is None or name in {"port", "host"}:
            continue
        monkeypatch.setenv(name.upper(), value.get_secret_value() if isinstance(value, SecretStr) else str(value))
    return monkeypatch


def doctor() -> tuple[int, list[str]]:
    code = run("doctor", "--manifest", MANIFEST)
    return code, last().stdout.splitlines()


def test_good_credentials_exit_0_with_one_line_per_check(env: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = doctor()
    assert code == 0, lines
    names = [line.split("] ", 1)[1].split(":", 1)[0] for line in lines]
    assert names[:3] == ["configuration", "slack settings", "senders"]
    for sender in ("twlo", "twlowa", "gswa", "bird", "textus"):
        assert f"sender {sender}" in names
    assert [n for n in names if n in ("slack token", "templates", "store")] == ["slack token", "templates", "store"]
    assert any(line.startswith("[ok] slack token: auth.test ok") for line in lines)
    assert any(line.startswith("[ok] store: answers; schema v") for line in lines)
    assert not any(line.startswith("[XX]") for line in lines)


def test_a_provider_401_exits_1_naming_the_variable(env: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("TEXTUS_API_TOKEN", "a-wrong-token-for-textus")
    code, lines = doctor()
    assert code == 1
    broken = [line for line in lines if line.startswith("[XX]")]
    assert len(broken) == 1 and broken[0].startswith("[XX] sender textus:"), lines
    assert "TEXTUS_API_TOKEN" in broken[0]
    assert "a-wrong-token-for-textus" not in "\n".join(lines)


def test_an_unreachable_url_exits_1(env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setenv("BIRD_API_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    code, lines = doctor()
    assert code == 1
    broken = [line for line in lines if line.startswith("[XX]")]
    assert len(broken) == 1 and broken[0].startswith("[XX] sender bird:"), lines


def test_a_slack_token_without_a_manifest_scope_exits_1(env: pytest.MonkeyPatch, fake_slack: FakeSlack,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake_slack.bot_scopes = [s for s in fake_slack.bot_scopes if s != "chat:write"]
    code, lines = doctor()
    assert code == 1
    assert [line for line in lines if line.startswith("[XX]")] == [
        next(line for line in lines if line.startswith("[XX] slack token: token works but lacks scope(s) chat:write"))]


def test_no_configuration_still_runs_and_the_error_points_at_doctor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMS_DEFAULT_REGION", "XX")  # a setting that cannot load
    code, lines = doctor()
    assert code == 1 and lines[0].startswith("[XX] configuration:")
    # `make run` (smsbot run) on a broken configuration says where to look.
    assert run("run") == 2
    err = last().stderr
    assert "configuration error" in err and "smsbot doctor" in err and "README.md" in err


def test_a_slack_token_slack_refuses_exits_1_without_printing_it(env: pytest.MonkeyPatch) -> None:
    env.setenv("SLACK_BOT_TOKEN", "xoxb-not-a-token-slack-knows")
    code, lines = doctor()
    assert code == 1
    broken = [line for line in lines if line.startswith("[XX]")]
    assert len(broken) == 1 and broken[0].startswith("[XX] slack token: auth.test answered invalid_auth"), lines
    assert "SLACK_BOT_TOKEN" in broken[0] and "xoxb-not-a-token-slack-knows" not in last().output


def test_an_unreachable_slack_url_exits_1(env: pytest.MonkeyPatch) -> None:
    env.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")  # discard port: nothing listens
    code, lines = doctor()
    assert code == 1
    broken = [line for line in lines if line.startswith("[XX]")]
    assert len(broken) == 1 and broken[0].startswith("[XX] slack token: auth.test failed"), lines
    assert "SLACK_API_URL" in broken[0]


def test_a_store_with_a_newer_schema_exits_1(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from storage import open_store

    store = open_store(f"sqlite:///{tmp_path / 'newer.db'}")
    version = store.schema_version()
    with store.write() as conn:
        conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
    store.close()
    env.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'newer.db'}")
    code, lines = doctor()
    assert code == 1
    broken = [line for line in lines if line.startswith("[XX]")]
    assert len(broken) == 1 and broken[0].startswith("[XX] store:") and "upgrade smsbot" in broken[0], lines
