"""Which senders exist: a sender exists when its credentials are set; sandbox always does."""

from __future__ import annotations

import httpx

from bot.core.config import SENDERS, ConfigError, Settings
from providers.base import Provider


class Senders:
    """The configured providers by sender name, and which one is the default."""

    def __init__(self, providers: dict[str, Provider], default: str) -> None:
        self.providers = providers
        self.default = default

    def get(self, name: str | None) -> Provider | None:
        return self.providers.get((name or self.default).lower())

    def names(self) -> list[str]:
        return [n for n in SENDERS if n in self.providers]

    def real(self) -> list[str]:
        return [n for n in self.names() if n != "sandbox"]

    def label(self, name: str) -> str:
        p = self.providers.get(name)
        return p.label if p else name

    def secrets(self) -> list[str]:
        out: list[str] = []
        for p in self.providers.values():
            out += [s for s in p.secrets() if s]
        return out

    def close(self) -> None:
        for p in self.providers.values():
            p.close()


def _secret(value: object) -> str | None:
    if value is None:
        return None
    raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return raw or None


def build_senders(settings: Settings, client: httpx.Client | None = None) -> Senders:
    """Build every sender whose credentials are present; refuse half-configured ones."""
    from providers.bird import BirdProvider
    from providers.sandbox import SandboxProvider
    from providers.sociocs import SociocsProvider
    from providers.textus import TextusProvider

    providers: dict[str, Provider] = {}
    api_key = _secret(settings.sociocs_api_key)
    for code in ("twlo", "twlowa", "gswa"):
        channel_key = _secret(getattr(settings, f"sociocs_channel_key_{code}"))
        if channel_key and not api_key:
            raise ConfigError(f"SOCIOCS_API_KEY: needs the Sociocs API key to use SOCIOCS_CHANNEL_KEY_{code.upper()}")
        if api_key and channel_key:
            providers[code] = SociocsProvider(
                code=code, api_key=api_key, channel_key=channel_key, base_url=settings.sociocs_api_url, client=client
            )

    bird_key = _secret(settings.bird_api_key)
    if bird_key:
        for var in ("bird_workspace_id", "bird_channel_id"):
            if not getattr(settings, var):
                raise ConfigError(f"{var.upper()}: needs to be set to use BIRD_API_KEY")
        providers["bird"] = BirdProvider(
            api_key=bird_key,
            workspace_id=str(settings.bird_workspace_id),
            channel_id=str(settings.bird_channel_id),
            base_url=settings.bird_api_url,
            client=client,
        )

    textus_token = _secret(settings.textus_api_token)
    if textus_token:
        if not settings.textus_account:
            raise ConfigError("TEXTUS_ACCOUNT: needs the TextUs account slug to use TEXTUS_API_TOKEN")
        providers["textus"] = TextusProvider(
            token=textus_token, account=settings.textus_account, base_url=settings.textus_api_url, client=client
        )

    providers["sandbox"] = SandboxProvider()
    everything = settings.secret_values() + [x for p in providers.values() for x in p.secrets() if x]
    for provider in providers.values():
        provider.also_redact = everything

    default = settings.sms_default_sender
    if default and default not in providers:
        raise ConfigError(f"SMS_DEFAULT_SENDER: '{default}' has no credentials set; configured: {', '.join(providers)}")
    if not default:
        # The first real sender in the documented order; sandbox only when nothing else exists.
        default = next((n for n in SENDERS if n in providers and n != "sandbox"), "sandbox")
    return Senders(providers, default)
