"""Webhook signature edges the provider tests leave open (found by `make mutate`)."""

from __future__ import annotations

from providers.bird import verify_bird_signature
from tests.providers.test_bird import SIG, SIG_BODY, SIG_KEY, SIG_TS, SIG_URL

TS = float(SIG_TS)


def test_bird_accepts_a_timestamp_exactly_at_the_tolerance_either_way() -> None:
    assert verify_bird_signature(SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, now=TS + 300)
    assert verify_bird_signature(SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, now=TS - 300)
    assert not verify_bird_signature(SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY, now=TS + 300, tolerance=299)


def test_bird_refuses_a_signature_with_characters_outside_base64() -> None:
    # A lenient decoder would drop the '*' and accept it: only the exact header counts.
    assert not verify_bird_signature(SIG_KEY, SIG[:10] + "*" + SIG[10:], SIG_TS, SIG_URL, SIG_BODY, now=TS)


def test_bird_checks_the_timestamp_against_the_real_clock_by_default() -> None:
    # SIG_TS is from 2023: stale today, whatever the signature.
    assert not verify_bird_signature(SIG_KEY, SIG, SIG_TS, SIG_URL, SIG_BODY)
