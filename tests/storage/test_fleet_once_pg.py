"""Two workers on one PostgreSQL store announce each scheduled send once (see tests/core/test_fleet_once.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.app.runtime import build_runtime
from tests.conftest import make_settings
from tests.core.test_fleet_once import N, schedule, tagged, wait_for
from tests.fakes.providers import FakeProviders
from tests.fakes.slack import FakeSlack


@pytest.mark.postgres
def test_two_workers_on_postgresql_announce_once(pg_url: str, tmp_path: Path, fake_slack: FakeSlack,
                                                 fake_providers: FakeProviders) -> None:
    settings = make_settings(tmp_path, fake_slack, fake_providers, database_url=pg_url)
    runtimes = [build_runtime(settings, with_web=False, with_slack=True, poll_interval=0.1,
                              http_client=httpx.Client(timeout=2.0)) for _ in range(2)]
    try:
        for rt in runtimes:
            rt.start_worker()
        fake_slack.latency = 0.03
        store = runtimes[0].store
        ids = schedule(store, N, due_in=3)
        wait_for(lambda: all(store.get(i).status == "sent" for i in ids), timeout=15, what="every send sent")
        for rt in runtimes:
            assert rt.dispatcher is not None and rt.dispatcher.wait_idle(5)
            assert rt.delivery is None or rt.delivery.outbox.flush(5)
        tops = [m for m in fake_slack.messages("C1") if not m.get("parent_user_id")]
        assert len(tops) == N
        for mid in ids:
            assert len(tagged(fake_slack, "C1", f"announce:{mid}")) == 1
            assert len(tagged(fake_slack, "C1", f"status:{mid}")) == 1
        leads = [rt.lead.leads() for rt in runtimes if rt.lead is not None]
        assert sorted(leads) == [False, True]
    finally:
        for rt in runtimes:
            rt.stop()
