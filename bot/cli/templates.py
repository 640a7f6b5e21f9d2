"""`smsbot templates check [--file PATH]`: validate the template catalog on its own.

Exit 0 with a one-line-per-template summary, or 1 with every problem as `file:line: problem`,
so an admin (or CI) can check an edit before restarting the app.
"""

from __future__ import annotations

import sys

import click

from bot.cli.main import command_group, configured
from bot.core.templates import DEFAULT_CATALOG_PATH, CatalogError, load_catalog, summarize

templates = command_group("templates", "check the WhatsApp template catalog")


@templates.command("check", short_help="validate the catalog file and list its templates",
                   help="Validate the catalog file and list its templates.")
@click.option("--file", "path", default=None,
              help=f"catalog to check (default: SMS_TEMPLATES_FILE, else {DEFAULT_CATALOG_PATH})")
def check_command(path: str | None) -> int:
    settings = configured()
    path = path or settings.sms_templates_file or DEFAULT_CATALOG_PATH
    try:
        # Asked to check a file: a missing one is a problem, even the default name.
        catalog = load_catalog(path, must_exist=True)
    except CatalogError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(summarize(catalog, path))
    return 0
