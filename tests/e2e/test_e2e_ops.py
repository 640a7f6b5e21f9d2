"""End to end over HTTP: /readyz (store and schema), /metrics (webhook results counted exactly),
and the worker's own metrics port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import E2E
from tests.e2e.test_e2e_webhooks import (
    SECRETS,
    sent_row,
    sociocs_post,
    sociocs_status,
    textus_post,
)


@pytest.fixture
def make(e2e_factory: Callable[..., E2E]) -> Callable[..., E2E]:
    """The real app with every provider's webhook secret set."""
    return lambda **extra: e2e_factory(**SECRETS, **extra)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(f"{url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def webhook_count(samples: dict[Any, float], provider: str, result: str) -> float:
    return samples[("smsbot_webhook_events_total", (("provider", provider), ("result", result)))]


def moved(before: dict[Any, float], after: dict[Any, float], prefix: str) -> dict[Any, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after if k[0].startswith(prefix) and after[k] != before.get(k)}


def test_readyz_is_200_on_a_current_store(make: Callable[..., E2E]) -> None:
    e2e = make()
    resp = httpx.get(f"{e2e.url}/readyz")
    assert resp.status_code == 200
    assert resp.json()["ok"] is True and "current" in resp.json()["store"]


def test_readyz_is_503_with_the_reason_when_the_schema_is_newer(make: Callable[..., E2E]) -> None:
    e2e = make()
    version = e2e.rt.store.schema_version()
    with e2e.rt.store.write() as conn:
        conn.execute("UPDATE schema_version SET version = ?", (version + 1,))
    resp = httpx.get(f"{e2e.url}/readyz")
    assert resp.status_code == 503
    assert resp.json() == {"ok": False, "store": f"schema v{version + 1} is newer than this smsbot knows "
                                                  f"(v{version}): upgrade smsbot on this machine"}
    assert httpx.get(f"{e2e.url}/healthz").status_code == 200  # liveness is not readiness


def test_metrics_count_each_webhook_result_exactly(make: Callable[..., E2E]) -> None:
    e2e = make()
    row = sent_row(e2e)
    pid = row.provider_message_id
    before = scrape(e2e.url)
    assert sociocs_post(e2e, sociocs_status(pid, "delivered")).status_code == 200  # accepted
    assert sociocs_post(e2e, sociocs_status(pid, "sent")).status_code == 200  # stale: duplicate
    assert sociocs_post(e2e, sociocs_status(pid, "delivered"), secret="wrong").status_code == 401
    unsigned = httpx.post(f"{e2e.url}/webhooks/textus", content=b"{}", headers={"Content-Type": "application/json"})
    assert unsigned.status_code == 401
    assert sociocs_post(e2e, None, raw=b"{not json").status_code == 400  # malformed
    assert sociocs_post(e2e, {"event": "something_else"}).status_code == 200  # not a status: ignored
    assert textus_post(e2e, ["a list"]).status_code == 400
    after = scrape(e2e.url)
    assert moved(before, after, "smsbot_webhook_events") == {
        ("smsbot_webhook_events_total", (("provider", "sociocs"), ("result", "accepted"))): 1.0,
        ("smsbot_webhook_events_total", (("provider", "sociocs"), ("result", "duplicate"))): 1.0,
        ("smsbot_webhook_events_total", (("provider", "sociocs"), ("result", "bad_signature"))): 1.0,
        ("smsbot_webhook_events_total", (("provider", "textus"), ("result", "bad_signature"))): 1.0,
        ("smsbot_webhook_events_total", (("provider", "sociocs"), ("result", "malformed"))): 1.0,
        ("smsbot_webhook_events_total", (("provider", "sociocs"), ("result", "ignored"))): 1.0,
        ("smsbot_webhook_events_total", (("provider", "textus"), ("result", "malformed"))): 1.0,
    }
    # The outbox depth is read from the store at scrape time.
    assert after[("smsbot_outbox_messages", (("status", "sent"),))] == 1.0
    assert after[("smsbot_outbox_messages", (("status", "pending"),))] == 0.0


def test_worker_metrics_port_zero_picks_a_free_port(make: Callable[..., E2E]) -> None:
    e2e = make()
    port = e2e.rt.start_metrics(0)
    assert port > 0
    samples = scrape(f"http://127.0.0.1:{port}")
    assert webhook_count(samples, "bird", "accepted") == 0.0  # the same registry, prefilled at 0
    e2e.rt.stop()
    try:
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
    except httpx.TransportError:
        pass  # closed with the runtime
    else:
        raise AssertionError("the metrics server outlived the runtime")
