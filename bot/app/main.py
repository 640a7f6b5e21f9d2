"""`smsbot`, the console script: the CLI (bot/cli) wired to the engines each command needs.

`run` and `serve` build the Slack app and the web app; `worker` builds the dispatcher and,
with a bot token, the engines that tell Slack about outcomes, but no Slack app; `send` and
`bulk` get a worker's engines without Slack; the other commands only read the store.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from types import FrameType

from bot.app.logs import setup_logging
from bot.app.runtime import Runtime, build_runtime, slack_client
from bot.cli import main as cli
from bot.core.config import Settings, require_slack
from bot.core.doctor import SlackProbe
from bot.core.ports_schedules import ScheduleAnnouncer
from bot.core.senders import build_senders
from bot.slack.announcer import Notifier
from bot.slack.probe import WebClientProbe
from bot.slack.schedule_announcer import SlackScheduleAnnouncer
from storage.store import Store

log = logging.getLogger("smsbot.cli")


def _runtime(settings: Settings, *, with_worker: bool, with_web: bool, with_slack: bool | None = None) -> Runtime:
    rt = build_runtime(settings, with_worker=with_worker, with_web=with_web, with_slack=with_slack)
    setup_logging(settings.secret_values() + rt.senders.secrets(), log_format=settings.log_format)
    return rt


def worker_runtime(settings: Settings) -> Runtime:
    """`smsbot worker`: the dispatcher, and with a bot token the engines that tell Slack about
    outcomes (bulk progress, delivery notices); no Slack app, nothing served."""
    return build_runtime(settings, with_worker=True, with_web=False, with_slack=bool(settings.slack_bot_token))


def cli_engines(settings: Settings) -> Runtime:
    """`send` and `bulk`: a dispatcher to send with, no Slack app."""
    return build_runtime(settings, with_worker=True, with_web=False)


def schedule_announcer(settings: Settings, store: Store) -> ScheduleAnnouncer | None:
    """Slack redraws for schedules changed from the terminal, when a bot token is set."""
    if not settings.slack_bot_token:
        return None
    senders = build_senders(settings)
    notifier = Notifier(slack_client(settings), store, senders.label,
                        secrets=settings.secret_values() + senders.secrets())
    return SlackScheduleAnnouncer(notifier)


def slack_probe(settings: Settings) -> SlackProbe:
    """`smsbot doctor`'s auth.test, with the client every process uses (retries included)."""
    return WebClientProbe(slack_client(settings))


class StopRequested(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT (a BaseException: no `except Exception` eats it)."""


class StopSignals:
    """SIGTERM and SIGINT stop the process gracefully (see Runtime.stop), once: a second
    signal during the cleanup is ignored rather than cutting it short.

    Installed before the runtime is built (its threads may send at once); the handler only
    sets flags, and raises StopRequested once the main thread is `armed` (inside its try).
    """

    def __init__(self) -> None:
        self.requested = False
        self.armed = False
        self.rt: Runtime | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            return
        self.requested = True
        if self.rt is not None:
            self.rt.request_stop()
        if self.armed:
            raise StopRequested

    def arm(self, rt: Runtime) -> None:
        self.rt = rt
        self.armed = True
        if self.requested:  # the signal came while the runtime was being built
            rt.request_stop()
            raise StopRequested

    def wait(self) -> None:
        while True:
            time.sleep(3600)


def _finish(rt: Runtime) -> int:
    """Exit 0 after a graceful stop. Calls that outlived the grace period hold pool threads
    the interpreter would wait for at exit: their rows are already recorded, so leave now."""
    if rt.abandoned:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


def _serve_http(rt: Runtime, settings: Settings) -> None:
    import uvicorn

    assert rt.web is not None, "serve needs the web app"

    log.info("HTTP mode on %s:%s (Slack request URL: https://<your host>/slack/events)", settings.host, settings.port)
    # log_config=None: uvicorn logs through our handlers, so the redacting filter applies.
    server = uvicorn.Server(uvicorn.Config(rt.web, host=settings.host, port=settings.port, log_level="info",
                                           access_log=False, log_config=None, timeout_graceful_shutdown=5))
    uvicorn_exit = server.handle_exit

    def handle_exit(sig: int, frame: FrameType | None) -> None:
        rt.request_stop()  # claims stop now, not after the web server has drained
        uvicorn_exit(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]  # uvicorn has no stop hook: wrap its handler
    # uvicorn re-raises the signal once it has shut down: our handler turns it into StopRequested.
    server.run()


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Web app and worker in one process (the embedded default)."""
    require_slack(settings)
    signals = StopSignals()
    rt = _runtime(settings, with_worker=args.command == "run", with_web=True)
    try:
        signals.arm(rt)
        if rt.dispatcher is not None:
            rt.start_worker()
        if settings.slack_app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            port = rt.start_web()
            log.info("Socket Mode; webhooks and /healthz on port %s", port)
            assert rt.bolt is not None, "run needs the Slack app"
            handler = SocketModeHandler(rt.bolt, settings.slack_app_token.get_secret_value())
            handler.connect()
            try:
                signals.wait()
            finally:
                handler.close()
        else:
            _serve_http(rt, settings)
    except StopRequested:
        log.info("stop signal received")
    finally:
        rt.stop()
    return _finish(rt)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """The dispatcher alone (`Procfile` worker:), against the same store."""
    signals = StopSignals()
    rt = worker_runtime(settings)
    setup_logging(settings.secret_values() + rt.senders.secrets(), log_format=settings.log_format)
    try:
        signals.arm(rt)
        rt.start_worker()
        if settings.metrics_port is not None:
            port = rt.start_metrics(settings.metrics_port)
            log.info("worker metrics on port %d (GET /metrics; METRICS_PORT)", port)
        log.info("worker started")
        signals.wait()
    except StopRequested:
        log.info("stop signal received")
    finally:
        rt.stop()
    return _finish(rt)


PROCESSES: dict[str, tuple[str, cli.Command]] = {
    "run": ("web app and worker in one process", cmd_run),
    "serve": ("web app only (run `smsbot worker` beside it)", cmd_run),
    "worker": ("worker only", cmd_worker),
}


def wiring() -> cli.Wiring:
    return cli.Wiring(engines=cli_engines, setup_logging=setup_logging, announcer=schedule_announcer,
                      processes=PROCESSES, slack_probe=slack_probe)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, wiring())


if __name__ == "__main__":
    raise SystemExit(main())
