"""The metric catalog: counters move by exactly what happened, label values stay bounded,
and the exposition parses as the Prometheus text format (also over the worker's HTTP server)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.core.metrics import Metrics, start_metrics_server

PHONE = "+16175551212"


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the parsed exposition: (name, sorted labels) -> value."""
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, tuple(sorted(labels.items())))]


def test_counters_move_by_exactly_what_happened() -> None:
    m = Metrics()
    for _ in range(3):
        m.sent("bird", "sent")
    m.sent("twlo", "failed")
    m.webhook("sociocs", "duplicate")
    m.webhook("sociocs", "accepted")
    m.webhook("sociocs", "accepted")
    m.rate_limited("textus")
    m.paused("textus")
    m.inbound("bird")
    m.opt_out("textus")
    m.slack_error("chat.update")
    m.slack_retry("chat.update")
    m.bulk_job("running")
    assert value(m, "smsbot_messages_total", sender="bird", status="sent") == 3
    assert value(m, "smsbot_messages_total", sender="twlo", status="failed") == 1
    assert value(m, "smsbot_messages_total", sender="bird", status="failed") == 0  # pre-filled at zero
    assert value(m, "smsbot_webhook_events_total", provider="sociocs", result="accepted") == 2
    assert value(m, "smsbot_webhook_events_total", provider="sociocs", result="duplicate") == 1
    assert value(m, "smsbot_webhook_events_total", provider="bird", result="bad_signature") == 0
    assert value(m, "smsbot_provider_rate_limited_total", sender="textus") == 1
    assert value(m, "smsbot_sender_pauses_total", sender="textus") == 1
    assert value(m, "smsbot_inbound_messages_total", provider="bird") == 1
    assert value(m, "smsbot_opt_outs_total", provider="textus") == 1
    assert value(m, "smsbot_slack_api_errors_total", method="chat.update") == 1
    assert value(m, "smsbot_slack_api_retries_total", method="chat.update") == 1
    assert value(m, "smsbot_bulk_job_transitions_total", state="running") == 1


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.sent("bird", "sent")
    assert value(a, "smsbot_messages_total", sender="bird", status="sent") == 1
    assert value(b, "smsbot_messages_total", sender="bird", status="sent") == 0


def test_histograms_count_provider_calls_and_lateness() -> None:
    m = Metrics()
    with m.provider_call("bird"):
        pass
    try:
        with m.provider_call("bird"):
            raise RuntimeError("provider down")
    except RuntimeError:
        pass
    m.schedule_lateness("twlo", 42.0)
    m.schedule_lateness("twlo", -3.0)  # early: counted as 0 s late
    assert value(m, "smsbot_provider_call_seconds_count", sender="bird") == 2
    assert value(m, "smsbot_schedule_lateness_seconds_count", sender="twlo") == 2
    assert value(m, "smsbot_schedule_lateness_seconds_sum", sender="twlo") == 42.0
    assert value(m, "smsbot_schedule_lateness_seconds_bucket", sender="twlo", le="30.0") == 1
    assert value(m, "smsbot_schedule_lateness_seconds_bucket", sender="twlo", le="60.0") == 2


def test_label_values_are_bounded_never_a_number_a_user_or_text() -> None:
    m = Metrics(senders=["bird", "twlo"])
    m.sent(PHONE, "sent")
    m.sent("BIRD", "Sent")  # case is normalised, not a new series
    m.sent("bird", "U012ABCDEF")
    m.webhook("evil.example", "hello world")
    m.slack_error("U012ABCDEF")
    m.rate_limited("textus")  # a real sender, but not configured in this process
    body = m.exposition()[0].decode()
    for leaked in (PHONE, "U012ABCDEF", "evil.example", "hello world"):
        assert leaked not in body
    assert value(m, "smsbot_messages_total", sender="other", status="sent") == 1
    assert value(m, "smsbot_messages_total", sender="bird", status="sent") == 1
    assert value(m, "smsbot_messages_total", sender="bird", status="other") == 1
    assert value(m, "smsbot_webhook_events_total", provider="other", result="other") == 1
    assert value(m, "smsbot_slack_api_errors_total", method="other") == 1
    assert value(m, "smsbot_provider_rate_limited_total", sender="other") == 1
    senders = {dict(k[1]).get("sender") for k in samples(m) if k[0] == "smsbot_messages_total"}
    assert senders == {"bird", "twlo", "other"}


def test_outbox_and_bulk_gauges_read_the_callable_at_scrape_time() -> None:
    m = Metrics()
    counts = {"pending": 4, "sent": 10, PHONE: 2}
    m.watch_outbox(lambda: counts)
    m.watch_bulk_jobs(lambda: {"running": 1, "done": 3})
    assert value(m, "smsbot_outbox_messages", status="pending") == 4
    assert value(m, "smsbot_outbox_messages", status="other") == 2
    assert value(m, "smsbot_outbox_messages", status="failed") == 0
    assert value(m, "smsbot_bulk_jobs", status="done") == 3
    counts["pending"] = 1
    assert value(m, "smsbot_outbox_messages", status="pending") == 1


def test_a_failing_counts_callable_does_not_break_the_scrape() -> None:
    m = Metrics()

    def broken() -> dict[str, int]:
        raise RuntimeError("database is locked")

    m.watch_outbox(broken)
    m.sent("bird", "sent")
    got = samples(m)
    assert not any(name == "smsbot_outbox_messages" for name, _ in got)
    assert got[("smsbot_messages_total", (("sender", "bird"), ("status", "sent")))] == 1


def test_the_worker_metrics_server_picks_a_free_port_and_serves_the_exposition() -> None:
    m = Metrics()
    m.sent("textus", "unknown")
    with start_metrics_server(m.registry, port=0, host="127.0.0.1") as server:
        assert server.port > 0
        answer = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        missing = httpx.get(f"http://127.0.0.1:{server.port}/nope", timeout=5)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    parsed = {s.name: s for f in text_string_to_metric_families(answer.text) for s in f.samples
              if s.labels == {"sender": "textus", "status": "unknown"}}
    assert parsed["smsbot_messages_total"].value == 1
    assert missing.status_code == 404
