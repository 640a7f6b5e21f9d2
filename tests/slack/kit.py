"""Listener handlers called directly, as Bolt's starter template tests them: a fake `ack`,
a fake Slack client, and a real AppContext (store on disk, sandbox sender, real SendService).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.config import Settings
from bot.core.senders import Senders
from bot.core.sending import SendService
from bot.slack.announcer import Notifier
from bot.slack.context import AppContext
from providers.sandbox import SandboxProvider
from storage.store import MessageRow, Store


@dataclass
class FakeAck:
    """Records what the handler acknowledged with (one call per ack)."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)

    @property
    def only(self) -> dict[str, Any]:
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


class _Response:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class FakeClient:
    """A WebClient stand-in: every method call is recorded as (method, kwargs) and answers ok."""

    def __init__(self, tz: str = "America/New_York") -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.tz = tz

    def __getattr__(self, method: str) -> Any:
        def call(**kwargs: Any) -> _Response:
            self.calls.append((method, kwargs))
            if method == "users_info":
                return _Response({"ok": True, "user": {"id": kwargs.get("user"), "tz": self.tz}})
            return _Response({"ok": True, "ts": "1.000001", "channel": kwargs.get("channel")})

        return call

    def to(self, method: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == method]


def make_ctx(tmp_path: Path, client: FakeClient | None = None, **settings: Any) -> AppContext:
    values: dict[str, Any] = {"slack_bot_token": "xoxb-test", "slack_signing_secret": "s" * 32,
                              "database_url": f"sqlite:///{tmp_path / 'smsbot.db'}"}
    values.update(settings)
    config = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    store = Store(config.database_path)
    senders = Senders({"sandbox": SandboxProvider()}, "sandbox")
    fake_client = client or FakeClient()
    return AppContext(
        settings=config, store=store, senders=senders,
        service=SendService(store, senders, default_region=config.sms_default_region),
        notifier=Notifier(fake_client, store, senders.label),  # type: ignore[arg-type]
        client=fake_client,  # type: ignore[arg-type]
    )


def stored(ctx: AppContext) -> list[MessageRow]:
    """Every message the handler put in the outbox, oldest first."""
    return list(ctx.store.since(0.0))


def command_body(text: str = "", user_id: str = "U1", channel_id: str = "C1", **extra: Any) -> dict[str, Any]:
    """A /sms slash command body as Bolt hands it to listeners."""
    body = {"team_id": "T1", "user_id": user_id, "user_name": "alice", "channel_id": channel_id, "text": text,
            "command": "/sms", "trigger_id": "trig-1", "response_url": "https://hooks.slack.test/resp/1"}
    body.update(extra)
    return body
