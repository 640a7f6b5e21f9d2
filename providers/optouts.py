"""What the providers already know about opt-outs (`smsbot optouts sync`); read-only calls.

- TextUs: GET /{account}/opt_outs (Opt Outs API), a JSON-LD collection whose `members` are
  OptOut objects with `formattedPhoneNumber` / `phoneNumber` (inbound-notes.md section 3;
  no paging is documented, so one call is read).
- Sociocs: GET /contacts/isblocked/{phone} -> {status: "success", data: {is_blocked: bool}},
  one number at a time: Sociocs lists no blocked contacts, so only numbers we know are asked.
"""

from __future__ import annotations

from typing import Any

import phonenumbers

from .base import PreparedRequest, ProviderError, short_body
from .sociocs import SociocsProvider
from .textus import MEDIA_TYPE, TextusProvider


def build_textus_opt_outs(provider: TextusProvider) -> PreparedRequest:
    return PreparedRequest(method="GET", url=f"{provider.base_url}/{provider.account}/opt_outs",
                           headers={"Authorization": f"Bearer {provider._token}", "Accept": MEDIA_TYPE})


def _e164(raw: Any) -> str | None:
    try:
        parsed = phonenumbers.parse(str(raw), None)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def textus_opt_outs(provider: TextusProvider) -> list[str]:
    """The E.164 numbers opted out in the TextUs account."""
    response = provider.execute(build_textus_opt_outs(provider))
    if not 200 <= response.status_code < 300:
        provider.raise_for_status(response, provider.scrub(short_body(response)), "request")
    try:
        payload = response.json()
    except ValueError:
        raise ProviderError("TextUs answered GET opt_outs without JSON.") from None
    members = payload.get("members") if isinstance(payload, dict) else None
    if not isinstance(members, list):
        raise ProviderError("TextUs answered GET opt_outs with an unexpected shape (no members list).")
    numbers = (_e164(m.get("phoneNumber") or m.get("formattedPhoneNumber")) for m in members if isinstance(m, dict))
    return sorted({n for n in numbers if n})


def build_sociocs_is_blocked(provider: SociocsProvider, number: str) -> PreparedRequest:
    return PreparedRequest(method="GET", url=f"{provider.base_url}/contacts/isblocked/{number.lstrip('+')}",
                           headers=provider._headers(with_body=False))


def sociocs_is_blocked(provider: SociocsProvider, number: str) -> bool:
    payload = provider._check(provider.execute(build_sociocs_is_blocked(provider, number)), "request")
    data = payload.get("data")
    return bool(isinstance(data, dict) and data.get("is_blocked"))
