"""`smsbot doctor`: every set-up check (bot/core/doctor.py), one line each, exit 1 when one is broken.

It runs even when the settings do not load (that is the first thing it reports), so it is
what a new user is pointed at when `make run` stops on a configuration error.
"""

from __future__ import annotations

import logging

import click

from bot.cli.main import APP, wiring
from bot.core import doctor
from bot.core.config import ConfigError, Settings, load_settings
from storage import open_store
from storage.schema import SchemaTooNew
from storage.store import Store


def _open_store(settings: Settings) -> tuple[Store | None, doctor.CheckResult | None]:
    """The store (migrated, as any smsbot process would), or why it cannot be opened."""
    try:
        return open_store(settings.database_url), None
    except SchemaTooNew as exc:
        return None, doctor.CheckResult(name="store", ok=False, severity="error",
                                        message=f"{exc}: upgrade smsbot on this machine")
    except Exception as exc:  # never the URL: it may hold a password
        return None, doctor.CheckResult(name="store", ok=False, severity="error",
                                        message=f"cannot open the store ({type(exc).__name__}): check DATABASE_URL")


@APP.command("doctor", short_help="check the configuration, credentials, Slack token and scopes, templates and store",
             help="Check the configuration, each sender's credentials (a harmless read call, never a send), "
                  "the Slack token and its scopes, the template catalog and the store; exit 1 when "
                  "something is broken.")
@click.option("--manifest", default=doctor.DEFAULT_MANIFEST, show_default=True,
              help="the Slack app manifest whose scopes the token should have")
def run(manifest: str) -> int:
    # Not configured(): a broken configuration is the first thing doctor reports, not an error.
    try:
        settings = load_settings()
    except ConfigError:
        results = doctor.run_doctor(load_settings, manifest=manifest)  # reports the configuration line
        print(doctor.format_results(results))
        return doctor.exit_code(results)
    wiring().setup_logging(settings.secret_values(), level=logging.WARNING, log_format=settings.log_format)
    store, store_problem = _open_store(settings)
    probe_for = wiring().slack_probe
    probe = probe_for(settings) if probe_for is not None and settings.slack_bot_token else None
    try:
        results = doctor.run_doctor(settings, slack=probe, store=store, manifest=manifest)
    finally:
        if store is not None:
            store.close()
    if store_problem is not None:
        results = [store_problem if r.name == "store" else r for r in results]
    print(doctor.format_results(results))
    return doctor.exit_code(results)
