"""`smsbot` commands that send and manage messages from a terminal.

The console script is bot/app/main.py: it adds the long-running processes (run, serve,
worker) and injects the engines these commands need (see Wiring).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.core.config import ConfigError, Settings, load_settings
from bot.core.dispatch import Dispatcher
from bot.core.doctor import SlackProbe
from bot.core.input.timeparse import WhenError, is_immediate, parse_when
from bot.core.ports_schedules import ScheduleAnnouncer
from bot.core.senders import Senders
from bot.core.sending import SendService
from bot.core.templates import CatalogError
from storage.schema import SchemaTooNew
from storage.store import Store

log = logging.getLogger("smsbot.cli")

# Feature modules add their own subcommands: name -> (configure parser, run).
Command = Callable[[argparse.Namespace, Settings], int]
Extension = tuple[Callable[[argparse.ArgumentParser], None], Command]
EXTENSIONS: dict[str, tuple[str, Extension]] = {}
# Commands that run without loaded settings (they report a broken configuration themselves).
UNCONFIGURED: dict[str, Callable[[argparse.Namespace], int]] = {}
SETUP_HINT = "run `smsbot doctor` to check the whole set-up, and see README.md \"Set-up\" for the steps"


class CliEngines(Protocol):
    """What CLI commands use of a runtime: the store, senders, the send service and a dispatcher."""

    store: Store
    senders: Senders
    service: SendService
    dispatcher: Dispatcher | None

    def start_worker(self) -> None: ...

    def stop(self, grace: float | None = None) -> int: ...


@dataclass
class Wiring:
    """What the CLI gets from the composition root (bot/app/main.py); bot.cli never imports bot.app."""

    #: a worker's engines for one command (no Slack app)
    engines: Callable[[Settings], CliEngines]
    setup_logging: Callable[[list[str]], None]
    #: Slack redraws for changes made here; None when no bot token is set
    announcer: Callable[[Settings, Store], ScheduleAnnouncer | None]
    #: the long-running processes (run, serve, worker): name -> (help, run)
    processes: dict[str, tuple[str, Command]] = field(default_factory=dict)
    #: `smsbot doctor`'s view of the Slack token (bot.slack.probe); None: the check says it is missing
    slack_probe: Callable[[Settings], SlackProbe | None] | None = None


_wiring: Wiring | None = None


def wiring() -> Wiring:
    if _wiring is None:
        raise RuntimeError("the CLI runs through bot.app.main (the `smsbot` command), which wires it")
    return _wiring


def when_from(args: argparse.Namespace) -> datetime | None:
    """`--at` read in `--tz`; a WhenError is answered by main() ("error: ...", exit 2)."""
    return parse_when(args.at, args.tz) if args.at else None


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.input.phone import display
    from bot.core.sending import SendRequest, UserError

    rt = wiring().engines(settings)
    wiring().setup_logging(settings.secret_values() + rt.senders.secrets())
    assert rt.dispatcher is not None
    when = when_from(args)
    when = None if when is None or is_immediate(when) else when  # `--at now` sends now
    req = SendRequest(
        sender=args.via, to=args.to, name=args.name, text=args.text, image_urls=args.image or [],
        video_url=args.video, file_url=args.file, file_content_type=args.file_type, when=when,
        idem_key=f"cli:{time.time_ns()}", source="cli", user_name="cli", quiet_ok=args.quiet_ok,
    )
    try:
        message_id, _ = rt.service.submit(req)
    except UserError as exc:
        hint = " (--quiet-ok sends now; --at sets a time)" if "quiet hours" in exc.message else ""
        print(f"error: {exc.message}{hint}", file=sys.stderr)
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


def build_parser(processes: dict[str, tuple[str, Command]] | None = None) -> argparse.ArgumentParser:
    _load_extensions()
    parser = argparse.ArgumentParser(prog="smsbot", description="Send SMS and WhatsApp from Slack.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _run) in (processes or {}).items():
        sub.add_parser(name, help=help_text)
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
    send.add_argument("--quiet-ok", action="store_true", help="send now even in the recipient's quiet hours")
    for name, (help_text, (configure, _run)) in EXTENSIONS.items():
        configure(sub.add_parser(name, help=help_text))
    return parser


def main(argv: list[str] | None, wired: Wiring) -> int:
    """Parse and run one command; `wired` is what bot.app.main injects."""
    global _wiring
    _wiring = wired
    args = build_parser(wired.processes).parse_args(argv)
    if args.command in UNCONFIGURED:
        return UNCONFIGURED[args.command](args)
    try:
        settings = load_settings()
        handlers: dict[str, Command] = {name: run for name, (_help, run) in wired.processes.items()}
        handlers["send"] = cmd_send
        for name, (_help, (_configure, run)) in EXTENSIONS.items():
            handlers[name] = run
        return handlers[args.command](args, settings)
    except ConfigError as exc:
        print(f"smsbot: configuration error: {exc}\n  {SETUP_HINT}", file=sys.stderr)
        return 2
    except SchemaTooNew as exc:
        print(f"smsbot: {exc}", file=sys.stderr)
        return 2
    except WhenError as exc:
        print(f"error: {exc}", file=sys.stderr)
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

    for module in ("bot.cli.schedules", "bot.cli.bulk", "bot.cli.templates", "bot.cli.history", "bot.cli.doctor",
                   "bot.cli.optouts"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
