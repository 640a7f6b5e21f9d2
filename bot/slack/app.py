"""The Bolt app: built from an AppContext; every module in bot/slack/listeners registers itself."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

import bot.slack.listeners
from bot.slack.context import AppContext

log = logging.getLogger("smsbot.slack")

# The router and the plain send come first; the rest in name order.
FIRST = ("command", "send")


def listener_modules() -> list[str]:
    names = [m.name for m in pkgutil.iter_modules(bot.slack.listeners.__path__) if not m.name.startswith("_")]
    return [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)


def _socket_mode_only(req: BoltRequest, next: Any) -> Any:  # noqa: A002 - Bolt's name
    # Without a signing secret nothing proves an HTTP request came from Slack, and
    # /slack/events is still served beside the webhooks: only Socket Mode envelopes count.
    if req.mode != "socket_mode":
        return BoltResponse(status=401, body="")
    return next()


def _not_the_token_notice(record: logging.LogRecord) -> bool:
    # Bolt warns that SLACK_BOT_TOKEN is unused whenever a client is passed; ours carries
    # that very token (with retry handlers), so the notice only confuses operators.
    return "`token` will be unused" not in record.getMessage()


def answer_instead_of_500(error: Exception, body: Any) -> BoltResponse:
    """Bolt's global error handler: a listener or middleware that raised never answers 500.

    A slash command gets an ephemeral apology (the person sees why nothing happened);
    anything else gets 400, which Slack shows as a failed action. Logged once, without the body.
    """
    body = body if isinstance(body, dict) else {}
    kind = "command" if body.get("command") else str(body.get("type") or "request")[:40]
    log.error("Slack %s failed: %s", kind, type(error).__name__, exc_info=error)
    if body.get("command"):
        text = ":boom: Something went wrong on our side; nothing was sent. Try again, or tell an admin."
        return BoltResponse(status=200, body={"response_type": "ephemeral", "text": text})
    return BoltResponse(status=400, body="")


class LazyExecutor(ThreadPoolExecutor):
    """Bolt's lazy listeners (work after the ack) run here, counted.

    `wait_idle` lets a test say "nothing happened" once they have all finished, instead
    of sleeping and hoping they had.
    """

    def __init__(self, max_workers: int = 10) -> None:  # Bolt's own default pool size
        super().__init__(max_workers=max_workers, thread_name_prefix="smsbot-lazy")
        self._busy = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._busy += 1

        def counted() -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

        return super().submit(counted)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)


def build_app(ctx: AppContext) -> App:
    settings = ctx.settings
    logging.getLogger("slack_bolt.App").addFilter(_not_the_token_notice)
    lazy = LazyExecutor()
    ctx.lazy = lazy
    app = App(
        client=ctx.client,
        listener_executor=lazy,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
        # The ack is our listener's return: it only validates and writes a row (a few ms),
        # so answer after it instead of polling for ack() every 10 ms.
        process_before_response=True,
        token_verification_enabled=False,
        request_verification_enabled=bool(settings.slack_signing_secret),
        before_authorize=None if settings.slack_signing_secret else _socket_mode_only,
    )

    @app.middleware
    def drop_redelivered_events(body: dict[str, Any], next: Any) -> Any:  # noqa: A002 - Bolt's name
        # The Events API re-delivers on timeouts; one event_id is handled once.
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if event_id and not ctx.store.first_time(f"event:{event_id}"):
            return BoltResponse(status=200, body="")
        return next()

    app.error(answer_instead_of_500)

    for name in listener_modules():
        importlib.import_module(f"bot.slack.listeners.{name}").register(app, ctx)
    return app
