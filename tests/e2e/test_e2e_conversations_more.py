"""End to end (issue 13): Bird media, the sandbox echo, `smsbot simulate inbound`, `/sms inbox`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from bot.cli.simulate import run as simulate_run
from tests.conftest import BIRD_KEY, E2E
from tests.e2e.test_e2e_conversations import NUMBER, bird_inbound, flush, make, posts_in
from tests.e2e.test_e2e_webhooks import bird_post, sent_row

__all__ = ["make"]


def test_bird_media_is_fetched_with_the_access_key_and_uploaded_into_the_thread(make: Callable[..., E2E]) -> None:
    e2e = make()
    assert e2e.providers is not None
    e2e.providers.bird_media["w/messages/bm1/media/x"] = b"\x89PNG fake image bytes"
    row = sent_row(e2e, f"send --via bird {NUMBER} Your table is ready")
    url = f"{e2e.providers.url}/media/w/messages/bm1/media/x"
    bird_post(e2e, bird_inbound({"type": "image", "image": {"images": [{"mediaUrl": url}]}}, event="whatsapp.inbound"))
    posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "via Bird")
    done = e2e.slack.wait_for("files.completeUploadExternal")
    assert done[-1]["params"].get("thread_ts") == row.thread_ts
    uploaded = [e2e.slack.file_content(f["id"]) for f in done[-1]["params"]["files"]]
    assert uploaded == [b"\x89PNG fake image bytes"]
    fetches = [r for r in e2e.providers.requests if r.path.startswith("/media/")]
    assert fetches and fetches[0].headers["authorization"] == f"AccessKey {BIRD_KEY}"
    flush(e2e)
    assert url not in str([c["params"].get("text") for c in e2e.slack.calls_to("chat.postMessage")])


def test_the_sandbox_echoes_numbers_ending_in_0000(e2e_factory: Callable[..., E2E]) -> None:
    e2e = e2e_factory(with_providers=False)
    e2e.command("send +16175550000 Are you there?", user_id="U1", channel_id="C1")
    row = e2e.wait(lambda: (r := e2e.rt.store.get(1)) and r.thread_ts and r, 5, "the send's thread")
    echo = posts_in(e2e, str(row.thread_channel), str(row.thread_ts), "Echo: Are you there?")
    assert "<@U1>" in echo[-1]["params"]["text"]


def test_simulate_inbound_goes_through_the_webhook_path_to_the_inbox(make: Callable[..., E2E]) -> None:
    e2e = make(sms_inbox_channel="C2")
    args = argparse.Namespace(via="twlo", from_number="+1 617 555 1313", text="hi <!here>", whatsapp=False)
    assert simulate_run(args, e2e.rt.settings) == 0
    post = e2e.slack.wait_for("chat.postMessage", lambda c: "New message from +1 617-555-1313" in
                              c["params"].get("text", ""))
    assert post[-1]["params"]["channel"] == "C2" and "hi &lt;!here&gt;" in post[-1]["params"]["text"]
    flush(e2e)
    inbox = e2e.command("inbox", user_id="U1").json()
    assert inbox["response_type"] == "ephemeral" and "1 conversation(s) waiting" in inbox["text"]
    assert "+1 617-555-1313" in inbox["text"] and "archives/C2/p" in inbox["text"]
    status = e2e.command("status +16175551313", user_id="U1").json()
    assert "*Their messages*" in str(status["blocks"]) and "hi &lt;!here&gt;" in str(status["blocks"])
