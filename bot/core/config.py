"""Settings from the environment or `.env` (pydantic-settings). These names are the interface."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SENDERS = ("twlo", "twlowa", "gswa", "bird", "textus", "sandbox")

# Default per-sender rates (messages per second) for bulk fan-out; see README.
# Bird allows 500 POST/s per workspace, TextUs 1,000 requests per 5 minutes per token,
# Sociocs documents no number (we stay gentle), a US long code sends ~1 segment/s.
DEFAULT_RATES: dict[str, float] = {
    "twlo": 10.0,
    "twlowa": 10.0,
    "gswa": 10.0,
    "bird": 50.0,
    "textus": 3.0,
    "sandbox": 100.0,
}


class ConfigError(Exception):
    """One line naming the variable and what it needs."""


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    port: int = Field(default=3000, ge=0, le=65535)  # 0: any free port (tests)
    host: str = "0.0.0.0"
    database_url: str = "sqlite:///smsbot.db"

    sms_default_sender: str | None = None
    sms_default_region: str = "US"
    sms_allowed_users: str = ""
    sms_allowed_channels: str = ""
    sms_bulk_users: str = ""
    sms_misfire_grace: float = Field(default=900.0, ge=0)  # seconds (15 minutes)
    sms_notify_channel: str | None = None
    # Where a customer's message opens a thread when the contact has none (issue 13)
    sms_inbox_channel: str | None = None
    sms_notify_on: Literal["all", "failures", "none"] = "failures"
    sms_templates_file: str | None = None
    sms_worker_concurrency: int = Field(default=16, ge=1, le=256)
    sms_max_attempts: int = Field(default=5, ge=1, le=50)
    # seconds a stopping process gives sends in flight (Heroku kills 30 s after SIGTERM)
    sms_shutdown_grace: float = Field(default=20.0, ge=0, le=300)
    sms_reconcile_interval: float = Field(default=60.0, ge=0)  # seconds between passes over unknown sends; 0: off
    sms_reconcile_window: float = Field(default=900.0, gt=0)  # not listed this long after: note what to check (stays unknown)
    # Inbound HTTP bodies (Slack and provider webhooks) over this many bytes get 413.
    sms_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # `smsbot worker` serves /metrics on this port (0: a free one, logged); unset: no server.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    # Consent (README "Consent"): the one text sent after an opt-out (unset: none; Bird and
    # Twilio confirm STOP themselves), the automatic answer to HELP/INFO (unset: none), and
    # quiet hours in the recipient's local time, e.g. 21:00-08:00 (unset: off).
    sms_optout_confirmation: str | None = None
    sms_help_text: str | None = None
    sms_quiet_hours: str | None = None

    sociocs_api_key: SecretStr | None = None
    sociocs_api_url: str = "https://api.sociocs.com"
    sociocs_channel_key_twlo: SecretStr | None = None
    sociocs_channel_key_twlowa: SecretStr | None = None
    sociocs_channel_key_gswa: SecretStr | None = None
    sociocs_webhook_secret: SecretStr | None = None

    bird_api_key: SecretStr | None = None
    bird_api_url: str = "https://api.bird.com"
    bird_workspace_id: str | None = None
    bird_channel_id: str | None = None
    bird_webhook_signing_key: SecretStr | None = None

    textus_api_token: SecretStr | None = None
    textus_api_url: str = "https://next.textus.com"
    textus_account: str | None = None
    textus_webhook_secret: SecretStr | None = None

    sms_rate_limit_twlo: float | None = Field(default=None, gt=0)
    sms_rate_limit_twlowa: float | None = Field(default=None, gt=0)
    sms_rate_limit_gswa: float | None = Field(default=None, gt=0)
    sms_rate_limit_bird: float | None = Field(default=None, gt=0)
    sms_rate_limit_textus: float | None = Field(default=None, gt=0)
    sms_rate_limit_sandbox: float | None = Field(default=None, gt=0)

    @field_validator("sms_default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        import phonenumbers

        v = v.strip().upper()
        if v not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("needs a two-letter region code such as US, GB or IN")
        return v

    @field_validator("sms_default_sender")
    @classmethod
    def _sender(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip().lower()
        if v not in SENDERS:
            raise ValueError(f"needs one of {', '.join(SENDERS)}")
        return v

    @field_validator("sms_quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        from bot.core.consent.rules import QuietHoursError, parse_quiet_hours

        try:
            return str(parse_quiet_hours(v)) if parse_quiet_hours(v) is not None else None
        except QuietHoursError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None

    @field_validator("sms_optout_confirmation", "sms_help_text")
    @classmethod
    def _blank_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @field_validator("slack_api_url", "sociocs_api_url", "bird_api_url", "textus_api_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://", v):
            raise ValueError("needs an http(s) URL")
        return v

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str) -> str:
        if v.startswith(("postgresql://", "postgres://")) and len(v.split("://", 1)[1]) > 0:
            return v
        if not (v.startswith("sqlite:///") or v == "sqlite://" or v == "sqlite:///:memory:"):
            raise ValueError("needs a sqlite:///path or postgresql://user@host/db URL (e.g. sqlite:///smsbot.db)")
        return v

    # -- derived

    @property
    def database_path(self) -> str:
        path = self.database_url.removeprefix("sqlite://").removeprefix("/")
        return path or ":memory:"

    @property
    def allowed_users(self) -> list[str]:
        return _csv(self.sms_allowed_users)

    @property
    def allowed_channels(self) -> list[str]:
        return _csv(self.sms_allowed_channels)

    @property
    def bulk_users(self) -> list[str]:
        return _csv(self.sms_bulk_users)

    def rate_for(self, sender: str) -> float:
        value = getattr(self, f"sms_rate_limit_{sender}", None)
        return float(value) if value else DEFAULT_RATES.get(sender, 10.0)

    def secret_values(self) -> list[str]:
        """Every secret, for redaction of anything that might reach a log or Slack."""
        out = []
        for name, value in self:
            if isinstance(value, SecretStr) and value.get_secret_value():
                out.append(value.get_secret_value())
            del name
        return out


def load_settings(**overrides: Any) -> Settings:
    """Load settings; a problem becomes one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        var = str(err["loc"][0]).upper() if err.get("loc") else "configuration"
        msg = err.get("msg", "is invalid").removeprefix("Value error, ")
        raise ConfigError(f"{var}: {msg}") from None


def require_slack(settings: Settings) -> None:
    """The web app cannot run without Slack credentials; say which one is missing."""
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN: needs the bot token (xoxb-...) from the app's OAuth page")
    if not settings.slack_app_token and not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET: needs the signing secret from the app's Basic Information page "
            "(or set SLACK_APP_TOKEN for Socket Mode)"
        )
