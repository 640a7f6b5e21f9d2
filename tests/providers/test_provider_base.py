"""What Provider gives every sender from its class attributes: secrets(), repr, the doctor's webhook note."""

from __future__ import annotations

import pytest

from providers.base import Provider
from providers.bird import BirdProvider
from providers.sandbox import SandboxProvider
from providers.sociocs import SociocsProvider
from providers.textus import TextusProvider


def _providers() -> list[tuple[Provider, str, list[str]]]:
    return [
        (BirdProvider("bk-SECRET", "ws", "ch"), "BirdProvider(workspace_id='ws', channel_id='ch')", ["bk-SECRET"]),
        (TextusProvider("tx-SECRET", "acme", base_url="https://t.example/"),
         "TextusProvider(account='acme', base_url='https://t.example')", ["tx-SECRET"]),
        (SociocsProvider("twlo", "api-SECRET", "chan-SECRET", base_url="https://s.example"),
         "SociocsProvider(code='twlo', base_url='https://s.example')", ["api-SECRET", "chan-SECRET"]),
        (SandboxProvider(), "SandboxProvider()", []),
    ]


@pytest.mark.parametrize(("provider", "shown", "secrets"), _providers(), ids=lambda v: getattr(v, "name", ""))
def test_repr_names_public_fields_and_secrets_lists_credentials(provider: Provider, shown: str, secrets: list[str]) -> None:
    assert repr(provider) == shown
    assert provider.secrets() == secrets
    assert "SECRET" not in repr(provider)
    check = provider.check_webhooks()
    assert check.status == "unknown" and check.message.strip()
    if not isinstance(provider, SandboxProvider):  # the sandbox opens no HTTP client
        provider.close()
