"""Shared fixtures: fake Slack and fake providers on 127.0.0.1, and the real app between them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from bot.app.runtime import Runtime, build_runtime
from bot.core.config import Settings
from tests.fakes.providers import FakeProviders
from tests.fakes.slack import FakeSlack
from tests.fakes.slack_requests import SlackSender

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token"
SOCIOCS_KEY = "sociocs-user:sociocs-secret-key"
BIRD_KEY = "bird-access-key-abcdef"
TEXTUS_TOKEN = "textus-token-abcdef"
CHANNEL_KEYS = {"twlo": "ck-twlo-1111", "twlowa": "ck-twlowa-2222", "gswa": "ck-gswa-3333"}
BIRD_WS = "11111111-2222-3333-4444-555555555555"
BIRD_CH = "66666666-7777-8888-9999-000000000000"
TEXTUS_ACCOUNT = "my_account"

# Never let a developer's .env leak into tests.
os.environ.pop("DATABASE_URL", None)


def _share_default_tls_context() -> None:
    """Every httpx.Client (and each httpx.get/post) builds a TLS context from certifi's bundle:
    50-300 ms of CPU, and the suite makes thousands of clients that only speak plain HTTP to
    127.0.0.1. Clients with the default verification share one context (SSLContext is meant to
    be shared); any other verify/cert still gets its own. Tests only: the app is unchanged."""
    import httpx._transports.default as transport

    build = getattr(transport, "create_ssl_context", None)
    if build is None:  # httpx moved it: no sharing, every test still runs as before
        return
    made: dict[tuple[Any, ...], Any] = {}

    def shared(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return build(verify=verify, cert=cert, trust_env=trust_env)
        key = (trust_env, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        if key not in made:
            made[key] = build(verify=True, trust_env=trust_env)
        return made[key]

    transport.create_ssl_context = shared


_share_default_tls_context()

# SMSBOT_E2E_BACKEND=postgres: the app under test (make_settings) uses a fresh schema on the
# PostgreSQL test server per test instead of a SQLite file (Makefile: the e2e suites' PG pass).
E2E_BACKEND = os.environ.get("SMSBOT_E2E_BACKEND", "sqlite")
_e2e_db: dict[str, str] = {}

# Property tests: no per-example deadline (a loaded 2-core CI box is slow at random), and in
# CI the same examples every run, so a red build is about the change, not the dice.
# HYPOTHESIS_PROFILE=dev explores new examples locally.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller collects nothing itself: it learns from each worker whether the
    PostgreSQL store tests were deselected, so its summary still says so (tests/storage/conftest.py)."""
    from tests.storage import conftest as storage

    out = getattr(node, "workeroutput", {})
    if out.get("pg_deselected"):
        storage._state.update(checked=True, deselected=out["pg_deselected"], error=out.get("pg_error"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Here, not in tests/storage/conftest.py: pytest-xdist's controller loads only this conftest."""
    from tests.storage import conftest as storage

    state = storage._state
    if state["deselected"]:
        terminalreporter.write_line(
            f"PostgreSQL suite NOT run ({state['deselected']} store tests here, and `make test` skips the"
            f" e2e/fleet pass; {storage.PG_URL} unreachable: {state['error']}). Run it: start PostgreSQL there"
            " (or set SMSBOT_TEST_DATABASE_URL), then `make test` (SMSBOT_REQUIRE_POSTGRES=1 fails if it is missing)."
        )


@pytest.fixture(autouse=E2E_BACKEND == "postgres")
def e2e_database() -> Iterator[str | None]:
    """On the PostgreSQL pass: every app this test builds shares one fresh schema."""
    if E2E_BACKEND != "postgres":
        yield None
        return
    from tests.storage.conftest import fresh_pg_schema

    with fresh_pg_schema() as url:
        _e2e_db["url"] = url
        try:
            yield url
        finally:
            _e2e_db.pop("url", None)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_providers() -> Iterator[FakeProviders]:
    fake = FakeProviders(
        sociocs_api_key=SOCIOCS_KEY,
        sociocs_channel_keys=CHANNEL_KEYS,
        bird_access_key=BIRD_KEY,
        bird_workspace_id=BIRD_WS,
        bird_channel_ids=(BIRD_CH,),
        textus_token=TEXTUS_TOKEN,
        textus_account=TEXTUS_ACCOUNT,
    )
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def make_settings(tmp_path: Path, slack: FakeSlack, providers: FakeProviders | None, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.base_url,
        "database_url": _e2e_db.get("url") or f"sqlite:///{tmp_path / 'smsbot.db'}",
        "port": 0,
        "host": "127.0.0.1",
    }
    if providers is not None:
        values.update(
            sociocs_api_key=SOCIOCS_KEY,
            sociocs_api_url=providers.url,
            sociocs_channel_key_twlo=CHANNEL_KEYS["twlo"],
            sociocs_channel_key_twlowa=CHANNEL_KEYS["twlowa"],
            sociocs_channel_key_gswa=CHANNEL_KEYS["gswa"],
            bird_api_key=BIRD_KEY,
            bird_api_url=providers.url,
            bird_workspace_id=BIRD_WS,
            bird_channel_id=BIRD_CH,
            textus_api_token=TEXTUS_TOKEN,
            textus_api_url=providers.url,
            textus_account=TEXTUS_ACCOUNT,
            sms_default_sender="twlo",
        )
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def settle(rt: Runtime, timeout: float = 5.0) -> None:
    """Wait on the app's own signals until it has done all it is going to do now.

    Work after the ack finished, the dispatcher made a whole pass with nothing in flight,
    the Slack outbox is flushed. Then "nothing was sent" is a fact, not a race.
    """
    lazy = rt.ctx.lazy
    assert lazy is None or lazy.wait_idle(timeout), "lazy listeners still running"
    assert rt.dispatcher is None or rt.dispatcher.wait_idle(timeout), "dispatcher busy"
    delivery = rt.ctx.delivery
    assert delivery is None or delivery.outbox.flush(timeout), "Slack outbox not flushed"


@dataclass
class E2E:
    rt: Runtime
    slack: FakeSlack
    providers: FakeProviders | None
    sender: SlackSender
    url: str

    def command(self, text: str, **kw: Any) -> Any:
        from tests.fakes.slack_requests import slash_command_body

        kw.setdefault("response_url", self.slack.response_url())
        body = slash_command_body(text=text, **kw)
        return self.sender.post(body, "application/x-www-form-urlencoded")

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def settle(self, timeout: float = 5.0) -> None:
        settle(self.rt, timeout)

    def open_whatsapp_window(self, number: str = "+16175551212", sender: str = "twlowa") -> None:
        """As if the customer had just written on WhatsApp: free-form sends to them may go (issue 13)."""
        from storage.conversations import ConversationQueries

        ConversationQueries(self.rt.store).on_inbound(number, sender, name=None, text="hi", at=time.time(),
                                                      whatsapp=True)

    def thread_replies(self, channel: str | None = None) -> list[dict[str, Any]]:
        return [c for c in self.slack.calls_to("chat.postMessage") if c["params"].get("thread_ts")
                and (channel is None or c["params"].get("channel") == channel)]


@pytest.fixture
def e2e_factory(tmp_path: Path, fake_slack: FakeSlack, fake_providers: FakeProviders) -> Iterator[Callable[..., E2E]]:
    started: list[Runtime] = []

    def make(with_providers: bool = True, with_worker: bool = True, **extra: Any) -> E2E:
        settings = make_settings(tmp_path, fake_slack, fake_providers if with_providers else None, **extra)
        import httpx

        rt = build_runtime(settings, with_worker=with_worker, poll_interval=0.1,
                           http_client=httpx.Client(timeout=httpx.Timeout(2.0, connect=1.0)))
        started.append(rt)
        port = rt.start_web(host="127.0.0.1", port=0)
        rt.start_worker()
        url = f"http://127.0.0.1:{port}"
        return E2E(rt=rt, slack=fake_slack, providers=fake_providers, sender=SlackSender(url, SIGNING_SECRET), url=url)

    yield make
    for rt in started:
        rt.stop()


@pytest.fixture
def e2e(e2e_factory: Callable[..., E2E]) -> E2E:
    return e2e_factory()
