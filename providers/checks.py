"""Results of `smsbot doctor`'s provider checks: a harmless, documented read call per sender.

Never a send. Messages are written for the operator (what to fix) and carry no secret:
everything a provider says passes through the provider's own `scrub()` first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import httpx
from pydantic import BaseModel

from .base import AuthFailed, NotFound, NotSent, PreparedRequest, Provider, ProviderError, RateLimited

CheckStatus = Literal["ok", "auth_failed", "unreachable", "other"]
WebhookStatus = Literal["registered", "not_registered", "unknown"]


class CredentialCheck(BaseModel):
    """What one read call said about a sender's credentials."""

    sender: str
    status: CheckStatus
    message: str  # what was checked, or what to fix; never a secret

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class WebhookCheck(BaseModel):
    """Whether the provider's webhooks point at us; "unknown" when the provider cannot tell."""

    sender: str
    status: WebhookStatus
    message: str


def probe(
    provider: Provider,
    prepared: PreparedRequest,
    what: str,
    interpret: Callable[[httpx.Response], CredentialCheck],
    unreachable_hint: str,
) -> CredentialCheck:
    """Run one read call and map transport failures and errors onto a CredentialCheck.

    `interpret` reads a response (raising the provider's errors for non-success answers).
    """
    try:
        return interpret(provider.execute(prepared))
    except NotSent:
        return CredentialCheck(
            sender=provider.name,
            status="unreachable",
            message=f"{provider.vendor} could not be reached at {_origin(prepared.url)}: {unreachable_hint}.",
        )
    except AuthFailed as exc:
        return CredentialCheck(sender=provider.name, status="auth_failed", message=f"{exc.message}.")
    except RateLimited:
        # A 429 means the credentials were read: the key is not the problem.
        return CredentialCheck(
            sender=provider.name, status="ok", message=f"{what}: rate limited now, but the credentials were accepted."
        )
    except NotFound as exc:
        return CredentialCheck(sender=provider.name, status="other", message=provider.scrub(exc.message))
    except ProviderError as exc:
        return CredentialCheck(
            sender=provider.name, status="other", message=f"{what} failed: {provider.scrub(exc.message)}"
        )


def _origin(url: str) -> str:
    """scheme://host[:port] only: paths can hold account ids, never worth printing."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"
