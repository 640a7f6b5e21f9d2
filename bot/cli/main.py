"""`smsbot`: run the app, or send and manage messages from a terminal."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from bot.core.config import ConfigError, Settings, load_settings, require_slack
from bot.core.templates import CatalogError
from storage.schema import SchemaTooNew

if TYPE_CHECKING:
    from bot.app.runtime import Runtime

log = logging.getLogger("smsbot.cli")

# Feature modules add their own subcommands: name -> (configure parser, run).
Extension = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Settings], int]]
EXTENSIONS: dict[str, tuple[str, Extension]] = {}


def _runtime(settings: Settings, with_worker: bool = True, with_web: bool = True) -> Runtime:
    from bot.app.logs import setup_logging
    from bot.app.runtime import build_runtime

    rt = build_runtime(settings, with_worker=with_worker, with_web=with_web)
    setup_logging(settings.secret_values() + rt.senders.secrets())
    return rt


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
        self.rt: Any = None
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

    def arm(self, rt: Any) -> None:
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
    rt = _runtime(settings, with_worker=args.command in ("run",))
    try:
        signals.arm(rt)
        if rt.dispatcher is not None:
            rt.start_worker()
        if settings.slack_app_token:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            port = rt.start_web()
            log.info("Socket Mode; webhooks and /healthz on port %s", port)
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
    # Feature hooks (bulk progress, delivery notices) register with the Slack app, so build
    # it here too when Slack is configured; it is not served.
    signals = StopSignals()
    rt = _runtime(settings, with_worker=True, with_web=bool(settings.slack_bot_token))
    try:
        signals.arm(rt)
        rt.start_worker()
        log.info("worker started")
        signals.wait()
    except StopRequested:
        log.info("stop signal received")
    finally:
        rt.stop()
    return _finish(rt)


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.input.phone import display
    from bot.core.sending import SendRequest, UserError

    rt = _runtime(settings, with_worker=True, with_web=False)
    assert rt.dispatcher is not None
    when = None
    if args.at:
        from bot.core.input.timeparse import WhenError, is_immediate, parse_when

        try:
            when = parse_when(args.at, args.tz)
        except WhenError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        when = None if is_immediate(when) else when  # `--at now` sends now
    req = SendRequest(
        sender=args.via, to=args.to, name=args.name, text=args.text, image_urls=args.image or [],
        video_url=args.video, file_url=args.file, file_content_type=args.file_type, when=when,
        idem_key=f"cli:{time.time_ns()}", source="cli", user_name="cli",
    )
    try:
        message_id, _ = rt.service.submit(req)
    except UserError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        rt.stop()
        return 2
    if when is not None:
        from bot.core.input.timeparse import describe_when

        print(f"Scheduled #{message_id} for {describe_when(when, args.tz)}; the worker sends it then.")
        rt.stop()
        return 0
    row = rt.store.claim_one(message_id, rt.dispatcher.owner)
    final = rt.dispatcher.process(row) if row else None
    rt.stop()
    if final is None:
        # A running worker claimed it first and sends it: resending would be a duplicate.
        print(f"#{message_id} was taken by a running worker, which sends it; do not send it again.")
        return 0
    label = rt.senders.label(final.sender)
    if final.status == "sent":
        note = " (sandbox: not sent)" if final.sender == "sandbox" else ""
        print(f"#{final.id} accepted by {label} for {display(final.to_number)}: "
              f"message id {final.provider_message_id}{note}")
        return 0
    if final.status == "pending":
        print(f"#{final.id} not sent yet ({final.error}); the worker will retry it.")
        return 1
    from providers.base import redact

    print(f"#{final.id} {final.status}: {redact(final.error or '', rt.senders.secrets() + settings.secret_values())}",
          file=sys.stderr)
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smsbot", description="Send SMS and WhatsApp from Slack.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="web app and worker in one process")
    sub.add_parser("serve", help="web app only (run `smsbot worker` beside it)")
    sub.add_parser("worker", help="worker only")
    send = sub.add_parser("send", help="send one message now (or --at later)")
    send.add_argument("--via", help="sender: twlo, twlowa, gswa, bird, textus, sandbox")
    send.add_argument("--to", required=True, help="phone number, E.164 or national")
    send.add_argument("--text", default=None)
    send.add_argument("--name", default=None)
    send.add_argument("--image", action="append", help="image URL (repeatable)")
    send.add_argument("--video", default=None)
    send.add_argument("--file", default=None)
    send.add_argument("--file-type", default=None)
    send.add_argument("--at", default=None, help='when, e.g. "tomorrow 9am" or ISO 8601')
    send.add_argument("--tz", default="UTC", help="time zone for --at (default UTC)")
    for name, (help_text, (configure, _run)) in EXTENSIONS.items():
        configure(sub.add_parser(name, help=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    _load_extensions()
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        handlers: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
            "run": cmd_run, "serve": cmd_run, "worker": cmd_worker, "send": cmd_send,
        }
        for name, (_help, (_configure, run)) in EXTENSIONS.items():
            handlers[name] = run
        return handlers[args.command](args, settings)
    except ConfigError as exc:
        print(f"smsbot: configuration error: {exc}", file=sys.stderr)
        return 2
    except SchemaTooNew as exc:
        print(f"smsbot: {exc}", file=sys.stderr)
        return 2
    except CatalogError as exc:
        print("smsbot: the template catalog has problems; nothing started:", file=sys.stderr)
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 2


# -- `smsbot migrate [--from sqlite:///old.db]`: bring the schema up to date (safe while other
# processes start), and optionally copy a SQLite store into the PostgreSQL one (storage/copy.py).


def _configure_migrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="from_url", default=None, metavar="URL",
                        help="copy this SQLite store (sqlite:///smsbot.db) into DATABASE_URL's PostgreSQL")


def _run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from storage import copy_store, open_store
    from storage.copy import redact_url

    store = open_store(settings.database_url)  # migrates, or raises SchemaTooNew
    print(f"{redact_url(settings.database_url)}: schema at version {store.schema_version()}")
    store.close()
    if args.from_url:
        try:
            counts = copy_store(args.from_url, settings.database_url)
        except ValueError as exc:
            print(f"smsbot: {exc}", file=sys.stderr)
            return 2
        for table, n in counts.items():
            print(f"  {table}: {n} row(s) copied")
        print(f"{args.from_url} is marked as migrated: a process started on it sends nothing.")
    return 0


EXTENSIONS["migrate"] = ("apply schema migrations; --from copies a SQLite store into PostgreSQL",
                         (_configure_migrate, _run_migrate))


def _load_extensions() -> None:
    """Import feature modules that add CLI subcommands (they fill EXTENSIONS)."""
    import importlib

    for module in ("bot.cli.schedules", "bot.cli.bulk", "bot.cli.templates", "bot.cli.history"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


if __name__ == "__main__":
    # Extensions fill bot.cli.main.EXTENSIONS, not the copy of this module named __main__.
    from bot.cli.main import main as _main

    raise SystemExit(_main())
