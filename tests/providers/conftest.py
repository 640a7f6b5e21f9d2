"""The one fake provider server every provider test talks to (Sociocs, Bird, TextUs on one port)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.providers import FakeProviders
from tests.providers.harness import BIRD_KEY, SOCIOCS_KEY, TEXTUS_TOKEN


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders(sociocs_api_key=SOCIOCS_KEY, bird_access_key=BIRD_KEY, textus_token=TEXTUS_TOKEN) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    # Only tests that use the server pay for it; offline tests (build_request, rules) do not.
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
