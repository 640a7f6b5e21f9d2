"""A WebClient that tells the metrics about failed Slack calls and retries.

Every Slack Web API call of a process goes through `api_call`, so one override counts the
calls that raised (an `ok: false` answer, an HTTP error, a dropped connection) by method;
`counting` wraps slack_sdk's retry handlers so each retry they make is counted too. Method
names are bounded by the metrics (bot/core/metrics.py), never ids or text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.core.config import Settings

MethodHook = Callable[[str], None]


class SlackMetrics(Protocol):
    """The part of bot.core.metrics.Metrics this client moves."""

    def slack_error(self, method: str) -> None: ...

    def slack_retry(self, method: str) -> None: ...


class MeteredWebClient(WebClient):
    """`on_error(method)` is called for each call that raised, before it propagates;
    `on_retry(method)` is kept for whoever retries with this client (its handlers, the
    delivery outbox)."""

    def __init__(self, *args: Any, on_error: MethodHook | None = None, on_retry: MethodHook | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_error = on_error
        self.on_retry = on_retry

    def api_call(self, api_method: str, **kwargs: Any) -> Any:
        try:
            return super().api_call(api_method, **kwargs)
        except Exception:
            if self.on_error is not None:
                self.on_error(api_method)
            raise


def method_of(url: str) -> str:
    """`https://slack.com/api/chat.postMessage?x=1` -> `chat.postMessage`."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def counting(handler: RetryHandler, on_retry: MethodHook | None) -> RetryHandler:
    """`handler`, calling `on_retry(method)` each time it decides to try a call again."""
    if on_retry is None:
        return handler
    prepare = handler.prepare_for_next_attempt

    def prepare_counted(*, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                        error: Exception | None = None) -> None:
        on_retry(method_of(request.url))
        prepare(state=state, request=request, response=response, error=error)

    handler.prepare_for_next_attempt = prepare_counted  # type: ignore[method-assign]
    return handler


def slack_client(settings: Settings, metrics: SlackMetrics | None = None) -> MeteredWebClient:
    """The Web API client every process uses: 10 s timeout, retries on dropped connections,
    429s and 5xx; failed calls and retries counted in `metrics` when given."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    base = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    on_retry = metrics.slack_retry if metrics is not None else None
    handlers: list[RetryHandler] = [
        ConnectionErrorRetryHandler(max_retry_count=2),
        RateLimitErrorRetryHandler(max_retry_count=3),
        ServerErrorRetryHandler(max_retry_count=2),
    ]
    return MeteredWebClient(token=token, base_url=base, timeout=10,
                            retry_handlers=[counting(h, on_retry) for h in handlers],
                            on_error=metrics.slack_error if metrics is not None else None, on_retry=on_retry)
