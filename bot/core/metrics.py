"""The Prometheus metric catalog and the one object the engines call to move it.

Every process builds its own `Metrics` (its own `CollectorRegistry`, never the global
default), so each web app, worker and test counts only what it did itself. Label values
are bounded: each label has a fixed set of values and anything else is counted as
"other", so no phone number, user id or message text can ever become a series.

    metrics = Metrics(senders=SENDERS)
    metrics.watch_outbox(store.counts_by_status)
    with metrics.provider_call("bird"):
        provider.send(msg)
    metrics.sent("bird", "sent")
    body, content_type = metrics.exposition()
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.core.config import SENDERS

log = logging.getLogger(__name__)

OTHER = "other"
NAMESPACE = "smsbot"

# The fixed label sets. A value outside its set is counted as "other".
FINAL_STATUSES = ("sent", "failed", "unknown", "canceled", "missed")
OUTBOX_STATUSES = (
    "pending", "claimed", "sending", "sent", "failed", "unknown", "canceled", "missed",
    "draft", "queued", "paused", "waiting",
)
PROVIDERS = ("sociocs", "bird", "textus", "sandbox")
WEBHOOK_RESULTS = ("accepted", "duplicate", "bad_signature", "malformed", "ignored")
BULK_STATES = (
    "draft", "confirming", "running", "paused", "canceling", "canceled", "finishing", "done", "discarded", "missed",
)
SLACK_METHODS = (
    "auth.test", "chat.postMessage", "chat.postEphemeral", "chat.update", "chat.delete", "views.open",
    "views.update", "views.push", "views.publish", "users.info", "conversations.open", "conversations.info",
    "files.getUploadURLExternal", "files.completeUploadExternal", "files.info", "response_url",
)

# Provider calls: tens of milliseconds when healthy, seconds when slow, the 10 s timeout at worst.
PROVIDER_CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Schedule lateness: under a second when the worker keeps up; minutes to the misfire grace
# (15 minutes by default) when it does not.
LATENESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)

CountsFn = Callable[[], Mapping[str, int]]


def bound(value: object, allowed: Iterable[str]) -> str:
    """`value` lower-cased when it is one of `allowed`, else "other"."""
    if isinstance(value, str) and value in allowed:  # the usual case, without a copy
        return value
    text = str(value).strip().lower() if value is not None else ""
    return text if text in allowed else OTHER


def _bound_exact(value: object, allowed: Iterable[str]) -> str:
    """Like `bound`, keeping case: Slack method names are camelCase."""
    text = str(value).strip() if value is not None else ""
    return text if text in allowed else OTHER


class _CountsCollector(Collector):
    """A gauge by status read at scrape time from a callable (e.g. the store's counts)."""

    def __init__(self, name: str, doc: str, allowed: tuple[str, ...]) -> None:
        self.name, self.doc, self.allowed = name, doc, allowed
        self.source: CountsFn | None = None

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.doc, labels=["status"])
        totals = dict.fromkeys((*self.allowed, OTHER), 0)
        if self.source is not None:
            try:
                for status, count in self.source().items():
                    totals[bound(status, self.allowed)] += int(count)
            except Exception:
                # A store that does not answer must not break the whole scrape; /readyz says why.
                log.warning("metrics: could not read %s", self.name, exc_info=True)
                return
        for status, count in totals.items():
            family.add_metric([status], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        # Without this the registry calls collect() at registration time.
        yield GaugeMetricFamily(self.name, self.doc, labels=["status"])


class Metrics:
    """The metric catalog of one process, with one method per thing that happens."""

    def __init__(self, senders: Iterable[str] = SENDERS, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.senders: tuple[str, ...] = tuple(s.lower() for s in senders)
        # labels() takes microseconds (a lock, a key built); the engines call per message, so
        # each series' child is looked up once and kept (the label values are bounded).
        self._kids: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._build_counters()
        self._build_histograms()
        self._outbox = _CountsCollector(
            f"{NAMESPACE}_outbox_messages", "Messages in the outbox by status, read at scrape time.", OUTBOX_STATUSES
        )
        self._bulk = _CountsCollector(
            f"{NAMESPACE}_bulk_jobs", "Bulk jobs by state, read at scrape time.", BULK_STATES
        )
        self.registry.register(self._outbox)
        self.registry.register(self._bulk)
        self._prefill()

    def _counter(self, name: str, doc: str, labels: list[str]) -> Counter:
        return Counter(f"{NAMESPACE}_{name}", doc, labels, registry=self.registry)

    def _build_counters(self) -> None:
        self._messages = self._counter("messages", "Messages that reached a final status.", ["sender", "status"])
        self._rate_limited = self._counter("provider_rate_limited", "429 answers from a provider.", ["sender"])
        self._pauses = self._counter("sender_pauses", "Times a sender was paused (rate limit, outage).", ["sender"])
        self._webhooks = self._counter("webhook_events", "Provider webhook events by result.", ["provider", "result"])
        self._inbound = self._counter("inbound_messages", "Inbound messages received.", ["provider"])
        self._opt_outs = self._counter("opt_outs", "Opt-outs recorded.", ["provider"])
        self._slack_errors = self._counter("slack_api_errors", "Slack API calls that failed.", ["method"])
        self._slack_retries = self._counter("slack_api_retries", "Slack API calls retried.", ["method"])
        self._bulk_transitions = self._counter("bulk_job_transitions", "Bulk jobs entering a state.", ["state"])

    def _build_histograms(self) -> None:
        self._provider_latency = Histogram(
            f"{NAMESPACE}_provider_call_seconds", "Duration of provider API calls.", ["sender"],
            buckets=PROVIDER_CALL_BUCKETS, registry=self.registry,
        )
        self._lateness = Histogram(
            f"{NAMESPACE}_schedule_lateness_seconds", "How late a due message was picked up.", ["sender"],
            buckets=LATENESS_BUCKETS, registry=self.registry,
        )

    def _prefill(self) -> None:
        """Every known series starts at 0, so rate() and alerts see the first event."""
        senders = (*self.senders, OTHER)
        for sender in senders:
            for status in (*FINAL_STATUSES, OTHER):
                self._messages.labels(sender, status)
            for family in (self._rate_limited, self._pauses, self._provider_latency, self._lateness):
                family.labels(sender)
        for provider in (*PROVIDERS, OTHER):
            for result in (*WEBHOOK_RESULTS, OTHER):
                self._webhooks.labels(provider, result)
            self._inbound.labels(provider)
            self._opt_outs.labels(provider)
        for state in (*BULK_STATES, OTHER):
            self._bulk_transitions.labels(state)

    def _kid(self, family: Any, *values: str) -> Any:
        kid = self._kids.get((id(family), values))
        if kid is None:
            kid = self._kids[(id(family), values)] = family.labels(*values)
        return kid

    # -- bounding

    def sender(self, value: object) -> str:
        return bound(value, self.senders)

    # -- what happened

    def sent(self, sender: str, status: str, count: int = 1) -> None:
        """`count` messages reached a final status (sent, failed, unknown, canceled, missed)."""
        self._kid(self._messages, self.sender(sender), bound(status, FINAL_STATUSES)).inc(count)

    @contextmanager
    def provider_call(self, sender: str) -> Iterator[None]:
        """Time one provider API call, whether it succeeds or raises."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe_provider_call(sender, time.perf_counter() - start)

    def observe_provider_call(self, sender: str, seconds: float) -> None:
        self._kid(self._provider_latency, self.sender(sender)).observe(max(0.0, seconds))

    def schedule_lateness(self, sender: str, seconds: float) -> None:
        """How long after its due time a message was picked up (early counts as 0)."""
        self._kid(self._lateness, self.sender(sender)).observe(max(0.0, seconds))

    def rate_limited(self, sender: str) -> None:
        self._kid(self._rate_limited, self.sender(sender)).inc()

    def paused(self, sender: str) -> None:
        self._kid(self._pauses, self.sender(sender)).inc()

    def webhook(self, provider: str, result: str) -> None:
        """One webhook event: accepted, duplicate, bad_signature, malformed or ignored."""
        self._kid(self._webhooks, bound(provider, PROVIDERS), bound(result, WEBHOOK_RESULTS)).inc()

    def inbound(self, provider: str) -> None:
        self._kid(self._inbound, bound(provider, PROVIDERS)).inc()

    def opt_out(self, provider: str) -> None:
        self._kid(self._opt_outs, bound(provider, PROVIDERS)).inc()

    def slack_error(self, method: str) -> None:
        self._kid(self._slack_errors, _bound_exact(method, SLACK_METHODS)).inc()

    def slack_retry(self, method: str) -> None:
        self._kid(self._slack_retries, _bound_exact(method, SLACK_METHODS)).inc()

    def bulk_job(self, state: str) -> None:
        """A bulk job entered `state` (draft, running, paused, done...)."""
        self._kid(self._bulk_transitions, bound(state, BULK_STATES)).inc()

    # -- read at scrape time

    def watch_outbox(self, counts: CountsFn | None) -> None:
        """`counts()` -> {status: count}, e.g. `store.counts_by_status`; None stops watching."""
        self._outbox.source = counts

    def watch_bulk_jobs(self, counts: CountsFn | None) -> None:
        """`counts()` -> {state: count} of bulk jobs; None stops watching."""
        self._bulk.source = counts

    # -- exposition

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition for GET /metrics and its Content-Type."""
        return render(self.registry)


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The Prometheus text format of `registry`, and the Content-Type to answer it with."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsServer:
    """A tiny HTTP server answering GET /metrics (and /healthz) for a worker process."""

    def __init__(self, registry: CollectorRegistry, port: int = 0, host: str = "0.0.0.0") -> None:
        self._server = ThreadingHTTPServer((host, port), _handler_for(registry))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (the free one picked when asked for 0)."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        if self._thread.ident is None:  # idempotent: start_metrics_server() already started it
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_metrics_server(registry: CollectorRegistry, port: int = 0, host: str = "0.0.0.0") -> MetricsServer:
    """Serve /metrics on `port` (0: a free port; read it from `.port` and log it)."""
    server = MetricsServer(registry, port, host).start()
    log.info("metrics on http://%s:%d/metrics", host, server.port)
    return server


def _handler_for(registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                body, kind = render(registry)
                self._answer(200, body, kind)
            elif path == "/healthz":
                self._answer(200, b"ok\n", "text/plain; charset=utf-8")
            else:
                self._answer(404, b"not found: try /metrics\n", "text/plain; charset=utf-8")

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every 15 s would drown the log

    return Handler
