"""The composition root: settings -> store, senders, Slack client, notifier, service, the engines, apps."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial

import httpx
import uvicorn
from slack_bolt import App
from slack_sdk import WebClient
from starlette.applications import Starlette

from bot.app.web import build_web
from bot.core.bulk.engine import BulkEngine
from bot.core.config import Settings
from bot.core.consent.book import ConsentBook
from bot.core.consent.inbound import ConsentInbound
from bot.core.conversations.engine import ConversationEngine
from bot.core.conversations.replies import Replies
from bot.core.delivery.engine import DeliveryEngine
from bot.core.delivery.rules import reports_on
from bot.core.dispatch import Dispatcher
from bot.core.fleet import Leadership
from bot.core.metrics import Metrics, MetricsServer, start_metrics_server
from bot.core.senders import Senders, build_senders
from bot.core.sending import SendService
from bot.slack.announcer import Notifier
from bot.slack.app import build_app
from bot.slack.bulk_view import SlackBulkView
from bot.slack.context import AppContext
from bot.slack.conversation_view import SlackConversationView
from bot.slack.delivery_view import SlackDeliveryView, delivery_client
from bot.slack.metered import slack_client
from bot.webhooks.routes import handlers as webhook_handlers
from providers.base import redact
from storage import open_store
from storage.figures import Figures
from storage.store import Store

log = logging.getLogger("smsbot")


__all__ = ["Runtime", "build_runtime", "slack_client"]  # slack_client: bot/slack/metered.py


@dataclass
class Runtime:
    """The engines one process runs; None where the process needs none (see build_runtime)."""

    settings: Settings
    store: Store
    senders: Senders
    client: WebClient
    notifier: Notifier
    service: SendService
    ctx: AppContext
    #: this process's Prometheus metrics (GET /metrics on the web app; METRICS_PORT for a worker)
    metrics: Metrics
    dispatcher: Dispatcher | None = None
    #: the fleet lease (a worker process): once-per-fleet work runs where it is held
    lead: Leadership | None = None
    bulk: BulkEngine | None = None
    delivery: DeliveryEngine | None = None
    conversations: ConversationEngine | None = None
    bolt: App | None = None
    web: Starlette | None = None
    _server: uvicorn.Server | None = None
    _server_thread: threading.Thread | None = None
    _metrics_server: MetricsServer | None = None
    #: monotonic time by which calls in flight must have answered (set by the first stop request)
    stop_deadline: float | None = None
    #: provider calls still running when the grace period ended (their rows are unknown)
    abandoned: int = 0

    def start_worker(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.start()

    def start_web(self, host: str | None = None, port: int | None = None) -> int:
        """Serve the web app in a background thread; returns the bound port."""
        if self.web is None:
            raise RuntimeError("this runtime was built without the web app (with_web=False)")
        config = uvicorn.Config(
            self.web,
            host=host or self.settings.host,
            port=self.settings.port if port is None else port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        self._server = server
        thread = threading.Thread(target=server.run, name="smsbot-web", daemon=True)
        thread.start()
        self._server_thread = thread
        deadline = time.time() + 10
        while not server.started:
            if time.time() > deadline or not thread.is_alive():
                raise RuntimeError("the web server did not start")
            time.sleep(0.01)
        sockets = [s for srv in server.servers for s in srv.sockets]
        return int(sockets[0].getsockname()[1]) if sockets else int(config.port)

    def start_metrics(self, port: int) -> int:
        """Serve /metrics on `port` in a background thread (0: a free one); returns the bound port."""
        if self._metrics_server is None:
            self._metrics_server = start_metrics_server(self.metrics.registry, port, self.settings.host)
        return self._metrics_server.port

    def request_stop(self) -> None:
        """The first step of a graceful stop, safe in a signal handler: no new claims from now,
        and the grace period (SMS_SHUTDOWN_GRACE) starts."""
        if self.stop_deadline is None:
            self.stop_deadline = time.monotonic() + self.settings.sms_shutdown_grace
        if self.dispatcher is not None:
            self.dispatcher.request_stop()
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, grace: float | None = None) -> int:
        """Stop gracefully; returns how many provider calls outlived the grace period.

        Sends in flight get until the deadline to answer and have their real outcome
        recorded; claimed rows not yet sent go back to pending; then pending Slack updates
        are flushed (the delivery outbox, the bulk progress messages).
        """
        self.request_stop()
        assert self.stop_deadline is not None
        deadline = self.stop_deadline if grace is None else time.monotonic() + grace
        busy = self.dispatcher.in_flight() if self.dispatcher is not None else 0
        if busy:
            log.info("stopping: no new sends; waiting up to %.0f s for %d send(s) in flight",
                     max(0.0, deadline - time.monotonic()), busy)
        abandoned = self.dispatcher.stop(deadline=deadline) if self.dispatcher is not None else 0
        if self.bulk is not None:
            abandoned += self.bulk.drain(deadline)
        if abandoned:
            log.warning("stopping: %d send(s) still waiting for the provider after the %.0f s grace period "
                        "(SMS_SHUTDOWN_GRACE) were recorded unknown", abandoned, self.settings.sms_shutdown_grace)
        # Feature threads (delivery updater, reconciler, bulk progress), after the dispatcher
        # so its last outcomes still reach Slack: each flushes what it has before it stops.
        for stop in self.ctx.on_stop:
            try:
                stop()
            except Exception:
                log.exception("stopping a feature failed")
        if self._server_thread is not None:
            self._server_thread.join(5)
        if self._metrics_server is not None:
            self._metrics_server.close()
        self.senders.close()
        self.abandoned += abandoned
        return abandoned


def build_delivery(ctx: AppContext, secrets: list[str], lead: Leadership | None = None) -> DeliveryEngine:
    """The delivery engine over its Slack view (started later, with the other engines)."""
    settings = ctx.settings
    view = SlackDeliveryView(delivery_client(ctx.client), ctx.store, secrets, label=ctx.senders.label,
                             reports_on=partial(reports_on, settings), outcome_text=ctx.notifier.outcome_text)
    engine = DeliveryEngine(ctx.store, settings, ctx.senders, view, dispatcher=ctx.dispatcher,
                            bulk=lambda: ctx.bulk, lead=lead.leads if lead is not None else None)
    engine.on_changed.append(ctx.service.consent.on_final)  # a delivery failure meaning "opted out"
    return engine


def build_runtime(
    settings: Settings,
    *,
    with_worker: bool = True,
    http_client: httpx.Client | None = None,
    poll_interval: float = 0.5,
    with_web: bool = True,
    with_slack: bool | None = None,
) -> Runtime:
    """Build what one process needs, top to bottom.

    with_worker: the dispatcher (sends due rows). with_slack: the Slack-facing engines
    (bulk progress, delivery notices); defaults to with_web. with_web: the Bolt app and the
    web app serving it beside the provider webhooks.
    """
    with_slack = with_web if with_slack is None else with_slack
    store = open_store(settings.database_url)
    senders = build_senders(settings, client=http_client)
    secrets = settings.secret_values() + senders.secrets()
    # The one redaction point for provider text entering the store (webhooks, errors, lookups).
    store.redactor = partial(redact, secrets=secrets)
    metrics = Metrics()
    metrics.watch_outbox(store.counts_by_status)
    metrics.watch_bulk_jobs(Figures(store).bulk_jobs_by_status)
    client = slack_client(settings, metrics)
    notifier = Notifier(client, store, senders.label, secrets=secrets)
    consent = ConsentBook(store, settings)
    service = SendService(store, senders, default_region=settings.sms_default_region, consent=consent)
    dispatcher = build_dispatcher(settings, store, senders, notifier, poll_interval) if with_worker else None
    if dispatcher is not None:
        service.set_wake(dispatcher.wake)
        dispatcher.on_final.append(consent.on_final)  # Twilio 21610, TextUs "opted out"
        dispatcher.meter.sink = metrics  # latency, lateness, 429s and pauses; final statuses:
        dispatcher.on_final.append(dispatcher.meter.final)
    ctx = AppContext(settings=settings, store=store, senders=senders, service=service, notifier=notifier,
                     client=client, dispatcher=dispatcher)
    rt = Runtime(settings=settings, store=store, senders=senders, client=client, notifier=notifier,
                 service=service, ctx=ctx, metrics=metrics, dispatcher=dispatcher)
    # Workers elect one leader for the once-per-fleet work; a process alone always leads.
    lead = rt.lead = Leadership(store) if dispatcher is not None else None
    try:
        if with_slack:
            rt.bulk = ctx.bulk = build_bulk(ctx)
            rt.bulk.metrics = metrics
            rt.delivery = ctx.delivery = build_delivery(ctx, secrets, lead)
            rt.conversations = ctx.conversations = build_conversations(ctx, secrets, http_client, metrics)
            if lead is not None:
                rt.bulk.lead = lead.leads
        if with_web:
            rt.bolt, rt.web = build_web_app(ctx, metrics)
    except Exception:
        senders.close()
        raise
    start_slack_engines(ctx, lead)
    return rt


def build_conversations(ctx: AppContext, secrets: list[str], http: httpx.Client | None,
                        metrics: Metrics | None = None) -> ConversationEngine:
    """Customers' messages: the engine over its Slack view; hooks: consent first, then metrics."""
    settings = ctx.settings
    outbox = ctx.delivery.view.outbox if ctx.delivery is not None and isinstance(
        ctx.delivery.view, SlackDeliveryView) else None
    bird_key = settings.bird_api_key.get_secret_value() if settings.bird_api_key else None
    view = SlackConversationView(ctx.client, ctx.store, outbox, label=ctx.senders.label, secrets=secrets,
                                 bird_key=bird_key, bird_api_url=settings.bird_api_url, http=http)
    engine = ConversationEngine(ctx.store, view, inbox_channel=settings.sms_inbox_channel,
                                notify_channel=settings.sms_notify_channel)
    engine.replies = replies = Replies(ctx.store, ctx.service, ctx.allowed, view)
    ConsentInbound(ctx.service.consent, ctx.service, engine, metrics).attach()
    engine.on_message += [lambda _row, msg: metrics.inbound(msg.provider)] if metrics is not None else []
    if ctx.dispatcher is not None:
        ctx.dispatcher.on_final += [replies.progressed, engine.sandbox_echo]
    if ctx.delivery is not None:
        ctx.delivery.notices.on_changed.append(replies.progressed)
    return engine


def build_dispatcher(settings: Settings, store: Store, senders: Senders, notifier: Notifier,
                     poll_interval: float) -> Dispatcher:
    return Dispatcher(store, senders, notifier, concurrency=settings.sms_worker_concurrency,
                      misfire_grace=settings.sms_misfire_grace, max_attempts=settings.sms_max_attempts,
                      rates={name: settings.rate_for(name) for name in senders.names()}, poll_interval=poll_interval)


def build_bulk(ctx: AppContext) -> BulkEngine:
    return BulkEngine(ctx.store, ctx.senders, view=SlackBulkView(ctx.notifier), consent=ctx.service.consent, quiet=ctx.service.quiet,
                      dispatcher=ctx.dispatcher, max_attempts=ctx.settings.sms_max_attempts)


def build_web_app(ctx: AppContext, metrics: Metrics | None = None) -> tuple[App, Starlette]:
    """The Bolt app (every listener) and the web app serving it beside the provider webhooks."""
    bolt = build_app(ctx)  # a CatalogError propagates: start-up stops with file:line
    if ctx.delivery is None:
        raise RuntimeError("the web app needs the delivery engine (with_slack)")
    webhooks = webhook_handlers(ctx.delivery, ctx.settings, metrics, ctx.conversations)
    settings = ctx.settings
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    web = build_web(bolt, ctx.store, webhooks=webhooks, signing_secret=secret, max_body=settings.sms_max_body_bytes,
                    metrics=metrics)
    return bolt, web


def start_slack_engines(ctx: AppContext, lead: Leadership | None = None) -> None:
    """Start the engines' threads once nothing can fail any more; their stops run after the
    dispatcher's (Runtime.stop), bulk first so its progress reaches the delivery outbox, and
    the lease is given up last."""
    if lead is not None:
        lead.start()  # before the engines: a process alone leads from its first pass
    if ctx.bulk is not None and ctx.dispatcher is not None:
        # Progress, summaries and Sociocs batches run where the outbox is worked on.
        ctx.bulk.start()
        ctx.on_stop.append(ctx.bulk.stop)
    if ctx.delivery is not None:
        ctx.delivery.start()
        ctx.on_stop.append(ctx.delivery.stop)
        if lead is not None:
            # A new leader redraws the lines a dead one left out of date.
            delivery = ctx.delivery
            lead.on_gain.append(delivery.redraw_dirty)
    if ctx.conversations is not None:
        ctx.conversations.start()
        ctx.on_stop.insert(0, ctx.conversations.stop)  # before the delivery outbox its notes use
    if lead is not None:
        ctx.on_stop.append(lead.stop)
