"""`smsbot` commands that send and manage messages from a terminal (Click, with rich output).

The console script is bot/app/main.py: it adds the long-running processes (run, serve,
worker) and injects the engines these commands need (see Wiring). Feature modules add their
commands to `APP` when imported (MODULES): a command group is one line,

    optouts = command_group("optouts", "list and manage opt-outs")   # then @optouts.command("list")

(a single command: `@APP.command("name")`, as `send` below). Shell completion is Click's:
`eval "$(_SMSBOT_COMPLETE=bash_source smsbot)"` (README "Shell completion").
and an argparse-style registration (`EXTENSIONS[name] = (help, (configure, run))`) still works.
Every command returns its exit code; configuration, schema, time and catalog errors are
answered in one place (SmsbotGroup.invoke) with exit 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import click

from bot.core.config import ConfigError, Settings, load_settings
from bot.core.dispatch import Dispatcher
from bot.core.doctor import SlackProbe
from bot.core.input.timeparse import WhenError, parse_when
from bot.core.ports_schedules import ScheduleAnnouncer
from bot.core.senders import Senders
from bot.core.sending import SendService
from bot.core.templates import CatalogError
from storage.schema import SchemaTooNew
from storage.store import Store

log = logging.getLogger("smsbot.cli")

# Long-running processes and argparse-style extensions: (parsed args, settings) -> exit code.
Command = Callable[[argparse.Namespace, Settings], int]
Extension = tuple[Callable[[argparse.ArgumentParser], None], Command]
EXTENSIONS: dict[str, tuple[str, Extension]] = {}
# Extensions that run without loaded settings (they report a broken configuration themselves).
UNCONFIGURED: dict[str, Callable[[argparse.Namespace], int]] = {}
SETUP_HINT = "run `smsbot doctor` to check the whole set-up, and see README.md \"Set-up\" for the steps"
#: the modules that add commands to APP when imported (a new one: add it here)
MODULES = ("bot.cli.schedules", "bot.cli.bulk", "bot.cli.templates", "bot.cli.history", "bot.cli.webhooks",
           "bot.cli.doctor", "bot.cli.simulate", "bot.cli.optouts")


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
    #: bot.app.logs.setup_logging(secrets, level=logging.INFO, log_format=None | "text" | "json")
    setup_logging: Callable[..., None]
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


def configured() -> Settings:
    """The settings (a ConfigError is answered by SmsbotGroup), with logging set up as they say:
    LOG_FORMAT and the secret redaction apply to every command."""
    settings = load_settings()
    # Warnings and errors only, as before logging was set up here; processes log INFO themselves.
    wiring().setup_logging(settings.secret_values(), level=logging.WARNING, log_format=settings.log_format)
    return settings


class SmsbotGroup(click.Group):
    """The root group: a command's return value is the exit code, and the errors every command
    may meet are answered here, each with a line saying what to fix and exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
        except ConfigError as exc:
            _err(f"smsbot: configuration error: {exc}\n  {SETUP_HINT}")
        except SchemaTooNew as exc:
            _err(f"smsbot: {exc}")
        except WhenError as exc:
            _err(f"error: {exc}")
        except CatalogError as exc:
            _err("smsbot: the template catalog has problems; nothing started:", *map(str, exc.problems))
        else:
            raise click.exceptions.Exit(rv if isinstance(rv, int) else 0)
        raise click.exceptions.Exit(2)


def _err(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)


HELP = "Send SMS and WhatsApp from Slack."
#: every command of the CLI but the processes, which bot.app.main brings (see cli())
APP = SmsbotGroup("smsbot", help=HELP)


def command_group(name: str, help: str) -> click.Group:
    """A new `smsbot <name> ...` group; decorate its commands with `@group.command("verb")`."""
    group = click.Group(name, help=help, short_help=help)
    APP.add_command(group)
    return group


def when_from(at: str | None, tz: str) -> datetime | None:
    """`--at` read in `--tz`; a WhenError is answered by SmsbotGroup ("error: ...", exit 2)."""
    return parse_when(at, tz) if at else None


VIA_HELP = "sender: twlo, twlowa, gswa, bird, textus, sandbox"
AT_HELP = 'when, e.g. "tomorrow 9am" or ISO 8601'


@APP.command("send", help="send one message now (or --at later)", short_help="send one message now (or --at later)")
@click.option("--via", default=None, help=VIA_HELP)
@click.option("--to", required=True, help="phone number, E.164 or national")
@click.option("--text", default=None)
@click.option("--name", default=None)
@click.option("--image", multiple=True, help="image URL (repeatable)")
@click.option("--video", default=None)
@click.option("--file", default=None)
@click.option("--file-type", default=None)
@click.option("--at", default=None, help=AT_HELP)
@click.option("--tz", default="UTC", show_default=True, help="time zone for --at")
@click.option("--quiet-ok", is_flag=True, help="send now even in the recipient's quiet hours (SMS_QUIET_HOURS)")
def send_command(to: str, via: str | None, text: str | None, name: str | None, image: tuple[str, ...],
                 video: str | None, file: str | None, file_type: str | None, at: str | None, tz: str,
                 quiet_ok: bool) -> int:
    from bot.cli.send import SendArgs, send

    return send(SendArgs(to=to, via=via, text=text, name=name, image=list(image), video=video, file=file,
                         file_type=file_type, at=at, tz=tz, quiet_ok=quiet_ok), configured())


@APP.command("migrate", short_help="apply schema migrations; --from copies a SQLite store into PostgreSQL",
             help="Apply schema migrations; --from copies a SQLite store into PostgreSQL.")
@click.option("--from", "from_url", default=None, metavar="URL",
              help="copy this SQLite store (sqlite:///smsbot.db) into DATABASE_URL's PostgreSQL")
def migrate_command(from_url: str | None) -> int:
    from storage import copy_store, open_store
    from storage.copy import redact_url

    settings = configured()
    store = open_store(settings.database_url)  # migrates, or raises SchemaTooNew
    print(f"{redact_url(settings.database_url)}: schema at version {store.schema_version()}")
    store.close()
    if from_url:
        try:
            counts = copy_store(from_url, settings.database_url)
        except ValueError as exc:
            _err(f"smsbot: {exc}")
            return 2
        for table, n in counts.items():
            print(f"  {table}: {n} row(s) copied")
        print(f"{from_url} is marked as migrated: a process started on it sends nothing.")
    return 0


def _process_command(name: str, help_text: str, run: Command) -> click.Command:
    def callback() -> int:
        return run(argparse.Namespace(command=name), configured())

    return click.Command(name, callback=callback, help=help_text, short_help=help_text)


def _extension_command(name: str, help_text: str, extension: Extension) -> click.Command:
    """An argparse-style registration as a command: its arguments go to its own parser."""
    configure, run = extension

    @click.pass_context
    def callback(ctx: click.Context) -> int:
        parser = argparse.ArgumentParser(prog=f"smsbot {name}", description=help_text)
        configure(parser)
        args = parser.parse_args(ctx.args)
        if name in UNCONFIGURED:
            return UNCONFIGURED[name](args)
        return run(args, configured())

    return click.Command(name, callback=callback, help=help_text, short_help=help_text, add_help_option=False,
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


def _load_modules() -> None:
    import importlib

    for module in MODULES:
        importlib.import_module(module)


def cli(wired: Wiring) -> click.Group:
    """The whole command line, with the processes and engines `wired` brings."""
    global _wiring
    _wiring = wired
    _load_modules()
    group = SmsbotGroup("smsbot", commands=dict(APP.commands), help=HELP)
    for name, (help_text, run) in wired.processes.items():
        group.add_command(_process_command(name, help_text, run))
    for name, (help_text, extension) in EXTENSIONS.items():
        if name not in group.commands:
            group.add_command(_extension_command(name, help_text, extension))
    return group


def main(argv: Sequence[str] | None, wired: Wiring) -> int:
    """Parse and run one command; `wired` is what bot.app.main injects. Usage errors exit 2
    with click's message (as SystemExit, like argparse did); otherwise the command's code."""
    try:
        code = cli(wired).main(args=list(argv) if argv is not None else None, prog_name="smsbot",
                               standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        raise SystemExit(1) from None
    return int(code) if isinstance(code, int) else 0


def now_key() -> str:
    """An idempotency key for one CLI invocation."""
    return f"cli:{time.time_ns()}"
