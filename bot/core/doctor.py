"""`smsbot doctor`: one check per thing that can be set up wrong, each saying what to fix.

Slack-free: the Slack token is checked through the `SlackProbe` port (the edge wraps
`auth.test` and its X-OAuth-Scopes header). No check sends anything: providers get a
documented read call. Every message passes through the configured secrets' redaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal, Protocol

import httpx
import yaml
from pydantic import BaseModel

from bot.core.config import ConfigError, Settings, load_settings, require_slack
from bot.core.senders import Senders, build_senders
from bot.core.templates import CatalogError, load_catalog
from providers.base import redact
from storage.schema import MIGRATIONS

Severity = Literal["ok", "info", "warning", "error"]
DEFAULT_MANIFEST = "manifest.yml"


class CheckResult(BaseModel):
    name: str
    ok: bool
    severity: Severity
    message: str  # what was found, and what to fix when it is not ok

    def line(self) -> str:
        mark = {"ok": "ok", "info": "--", "warning": "!!", "error": "XX"}[self.severity]
        return f"[{mark}] {self.name}: {self.message}"


class SlackProbe(Protocol):
    """`auth.test` with the bot token: (True, granted scopes) or (False, Slack's error)."""

    def auth_test(self) -> tuple[bool, list[str] | str]: ...


def _ok(name: str, message: str) -> CheckResult:
    return CheckResult(name=name, ok=True, severity="ok", message=message)


def _info(name: str, message: str) -> CheckResult:
    return CheckResult(name=name, ok=True, severity="info", message=message)


def _warn(name: str, message: str) -> CheckResult:
    return CheckResult(name=name, ok=True, severity="warning", message=message)


def _broken(name: str, message: str) -> CheckResult:
    return CheckResult(name=name, ok=False, severity="error", message=message)


def exit_code(results: Iterable[CheckResult]) -> int:
    """1 when any check is broken (an error), else 0: warnings and notes do not fail."""
    return 1 if any(r.severity == "error" for r in results) else 0


def format_results(results: Iterable[CheckResult]) -> str:
    return "\n".join(r.line() for r in results)


# --------------------------------------------------------------------------- configuration


def check_settings(load: Callable[[], Settings] = load_settings) -> tuple[CheckResult, Settings | None]:
    try:
        settings = load()
    except ConfigError as exc:
        return _broken("configuration", f"{exc} (fix it in .env or the environment)"), None
    return _ok("configuration", "settings load"), settings


def check_slack_settings(settings: Settings) -> CheckResult:
    try:
        require_slack(settings)
    except ConfigError as exc:
        return _broken("slack settings", str(exc))
    mode = "Socket Mode (SLACK_APP_TOKEN)" if settings.slack_app_token else "HTTP (SLACK_SIGNING_SECRET)"
    return _ok("slack settings", f"bot token set; {mode}")


def check_senders_config(settings: Settings, client: httpx.Client | None = None) -> tuple[CheckResult, Senders | None]:
    try:
        senders = build_senders(settings, client)
    except ConfigError as exc:
        return _broken("senders", str(exc)), None
    real = senders.real()
    if not real:
        return _warn(
            "senders", "only the sandbox is configured (nothing really sends): set SOCIOCS_*, BIRD_* or TEXTUS_*"
        ), senders
    return _ok("senders", f"configured: {', '.join(real)}; default: {senders.default}"), senders


# --------------------------------------------------------------------------- providers


def check_sender_credentials(senders: Senders) -> list[CheckResult]:
    """One credential check and one webhook check per configured sender (sandbox skipped)."""
    results: list[CheckResult] = []
    for name in senders.real():
        provider = senders.providers[name]
        cred = provider.check_credentials()
        message = provider.scrub(cred.message)
        results.append(_ok(f"sender {name}", message) if cred.ok else _broken(f"sender {name}", message))
        hook = provider.check_webhooks()
        hook_text = provider.scrub(hook.message)
        if hook.status == "registered":
            results.append(_ok(f"webhooks {name}", hook_text))
        elif hook.status == "not_registered":
            results.append(_warn(f"webhooks {name}", hook_text))
        else:
            results.append(_info(f"webhooks {name}", hook_text))
    return results


# --------------------------------------------------------------------------- Slack


def manifest_bot_scopes(path: str | Path = DEFAULT_MANIFEST) -> set[str]:
    """`oauth_config.scopes.bot` of the app manifest; raises OSError / ValueError when unreadable."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    scopes = (((data or {}).get("oauth_config") or {}).get("scopes") or {}).get("bot")
    if not isinstance(scopes, list):
        raise ValueError("no oauth_config.scopes.bot list")
    return {str(s).strip() for s in scopes if str(s).strip()}


def check_slack_token(probe: SlackProbe | None, manifest: str | Path = DEFAULT_MANIFEST) -> CheckResult:
    name = "slack token"
    if probe is None:
        return _broken(name, "SLACK_BOT_TOKEN is not set: copy the Bot User OAuth Token (xoxb-...)")
    try:
        ok, answer = probe.auth_test()
    except Exception as exc:  # network trouble of the port: say so, never a traceback
        return _broken(name, f"auth.test failed ({type(exc).__name__}): check the network and SLACK_API_URL")
    if not ok:
        return _broken(name, f"auth.test answered {answer!s}: check SLACK_BOT_TOKEN (reinstall the app for a new one)")
    granted = {s.strip() for s in answer} if isinstance(answer, list) else set()
    try:
        wanted = manifest_bot_scopes(manifest)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return _warn(name, f"token works; cannot read the manifest's scopes ({manifest}: {exc})")
    missing = sorted(wanted - granted)
    if missing:
        return _broken(
            name,
            f"token works but lacks scope(s) {', '.join(missing)}: add them under OAuth & Permissions "
            "(or update the app from manifest.yml) and reinstall the app",
        )
    extra = sorted(granted - wanted)
    note = f"; extra scope(s) not in the manifest: {', '.join(extra)}" if extra else ""
    return _ok(name, f"auth.test ok; every manifest scope granted{note}")


# --------------------------------------------------------------------------- templates and store


def check_templates(settings: Settings, senders: Senders | None) -> CheckResult:
    name = "templates"
    path = settings.sms_templates_file
    try:
        catalog = load_catalog(path, must_exist=True) if path else load_catalog(None)
    except CatalogError as exc:
        return _broken(name, f"{exc}\n  fix the catalog (smsbot templates check shows every problem)")
    if not catalog.templates:
        return _info(name, "no templates (set SMS_TEMPLATES_FILE to use WhatsApp templates)")
    if senders is not None:
        orphans = sorted({t.sender for t in catalog.templates} - set(senders.names()))
        if orphans:
            return _warn(name, f"{len(catalog)} template(s); sender(s) {', '.join(orphans)} not configured: "
                               "set their credentials or remove those templates")
    return _ok(name, f"{len(catalog)} template(s) valid")


def expected_schema_version(store: object | None = None) -> int:
    """The schema version this code migrates to: the store's own claim, else storage's list."""
    claimed = getattr(store, "expected_schema_version", None)
    if isinstance(claimed, int):
        return claimed
    return len(MIGRATIONS)


def schema_version_of(store: object) -> int:
    """The store's schema version: its `schema_version()` if it has one, else SQLite's table."""
    accessor = getattr(store, "schema_version", None)
    if callable(accessor):
        return int(accessor())
    conn = getattr(store, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0
    raise TypeError(f"{type(store).__name__} exposes no schema version")


def check_store(store: object | None, expected: int | None = None) -> CheckResult:
    """The store answers and its schema is the one this code expects (also what /readyz needs)."""
    name = "store"
    if store is None:
        return _broken(name, "no store: check DATABASE_URL")
    want = expected if expected is not None else expected_schema_version(store)
    try:
        version = schema_version_of(store)
    except Exception as exc:
        return _broken(name, f"the store does not answer ({type(exc).__name__}): check DATABASE_URL and the disk")
    if version > want:
        return _broken(
            name, f"schema v{version} is newer than this smsbot knows (v{want}): upgrade smsbot on this machine"
        )
    if version < want:
        return _broken(name, f"schema v{version}, expected v{want}: start smsbot once to run the migrations")
    return _ok(name, f"answers; schema v{version} is current")


# --------------------------------------------------------------------------- the runner


def run_doctor(
    settings: Settings | Callable[[], Settings] = load_settings,
    *,
    slack: SlackProbe | None = None,
    store: object | None = None,
    manifest: str | Path = DEFAULT_MANIFEST,
    client: httpx.Client | None = None,
    expected_schema: int | None = None,
) -> list[CheckResult]:
    """Every check, in the order an operator fixes things. `slack`: None when no token is set.

    `client` is the HTTP client the providers use (tests point it nowhere special; the
    providers' URLs come from the settings).
    """
    loaded, config = check_settings(settings if callable(settings) else (lambda: settings))
    results = [loaded]
    if config is None:
        return [*results, check_store(store, expected_schema)] if store is not None else results
    results.append(check_slack_settings(config))
    senders_result, senders = check_senders_config(config, client)
    results.append(senders_result)
    if senders is not None:
        try:
            results += check_sender_credentials(senders)
        finally:
            if client is None:
                senders.close()
    results.append(check_slack_token(slack, manifest))
    results.append(check_templates(config, senders))
    results.append(check_store(store, expected_schema))
    secrets = config.secret_values() + (senders.secrets() if senders is not None else [])
    return [r.model_copy(update={"message": redact(r.message, secrets)}) for r in results]
