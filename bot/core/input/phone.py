"""Phone numbers: everything we store and send is E.164, parsed with `phonenumbers`."""

from __future__ import annotations

import phonenumbers


class InvalidNumber(ValueError):
    """The text is not a valid phone number; the message says what to fix."""


def normalize(raw: str, default_region: str = "US") -> str:
    """`0617 555 1212` / `(617) 555-1212` / `+1 617 555 1212` -> `+16175551212`."""
    text = (raw or "").strip()
    if not text:
        raise InvalidNumber("No phone number given. Use E.164 like +16175551212 or a national number.")
    # Sociocs accepts country code without the plus: treat a long all-digit number with a
    # leading country code as international when it does not parse nationally.
    try:
        parsed = phonenumbers.parse(text, default_region.upper())
    except phonenumbers.NumberParseException:
        raise InvalidNumber(
            f"'{text[:40]}' is not a phone number. Use E.164 like +16175551212 "
            f"or a national number for region {default_region.upper()}."
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        digits = "".join(ch for ch in text if ch.isdigit())
        # People write a trunk "0" out of habit (`0617 555 1212`); try without it.
        if not text.startswith("+") and digits.startswith("0"):
            try:
                alt = phonenumbers.parse(digits.lstrip("0"), default_region.upper())
                if phonenumbers.is_valid_number(alt):
                    return phonenumbers.format_number(alt, phonenumbers.PhoneNumberFormat.E164)
            except phonenumbers.NumberParseException:
                pass
        if not text.startswith("+") and text.isdigit():
            try:
                alt = phonenumbers.parse("+" + text, None)
                if phonenumbers.is_valid_number(alt):
                    return phonenumbers.format_number(alt, phonenumbers.PhoneNumberFormat.E164)
            except phonenumbers.NumberParseException:
                pass
        raise InvalidNumber(
            f"'{text[:40]}' is not a valid phone number for region {default_region.upper()}. "
            "Check the digits, or give the country code (e.g. +44 20 7946 0958)."
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def display(e164: str) -> str:
    """`+16175551212` -> `+1 617-555-1212` for people to read."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def looks_like_number(token: str) -> bool:
    """True when a token could start a phone number (used by the command parser)."""
    t = token.strip()
    return bool(t) and (t[0] == "+" or t[0].isdigit() or t[0] == "(")
