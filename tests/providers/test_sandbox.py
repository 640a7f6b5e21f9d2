"""Sandbox: takes messages, sends nothing, keeps them, and can announce them."""

from __future__ import annotations

import re
import threading

import pytest

from providers.base import InvalidMessage, OutboundMessage, TemplateSend
from providers.sandbox import SandboxProvider

TO = "+16175551212"


def test_send_records_and_answers_accepted() -> None:
    p = SandboxProvider()
    msg = OutboundMessage(to=TO, text="hello", image_urls=["https://x.example/a.png"])
    result = p.send(msg)
    assert result.status == "accepted"
    assert result.detail == "sandbox: not sent"
    assert result.provider_message_id is not None
    assert re.fullmatch(r"sbx_[0-9a-f]{12}", result.provider_message_id)
    assert p.sent == [msg]


def test_ids_differ() -> None:
    p = SandboxProvider()
    ids = {p.send(OutboundMessage(to=TO, text=str(i))).provider_message_id for i in range(50)}
    assert len(ids) == 50


def test_name_label_and_permissive_capabilities() -> None:
    p = SandboxProvider()
    assert (p.name, p.label) == ("sandbox", "Sandbox")
    caps = p.capabilities
    assert (caps.max_images, caps.video, caps.file, caps.templates) == (10, True, True, True)
    assert p.validate(
        OutboundMessage(to=TO, image_urls=["https://x.example/a.png"] * 10, video_url="https://x.example/v.mp4",
                        file_url="https://x.example/f.pdf", template=TemplateSend(id="t"))
    ) == []


def test_rules_still_apply() -> None:
    p = SandboxProvider()
    with pytest.raises(InvalidMessage, match="the message is empty"):
        p.send(OutboundMessage(to=TO))
    assert p.sent == []


def test_hook_gets_each_id() -> None:
    seen: list[str] = []
    p = SandboxProvider(on_accepted=seen.append)
    ids = [p.send(OutboundMessage(to=TO, text="x")).provider_message_id for _ in range(3)]
    assert seen == ids
    assert p.capabilities.status_webhooks
    assert not SandboxProvider().capabilities.status_webhooks


def test_broken_hook_does_not_fail_the_send(caplog: pytest.LogCaptureFixture) -> None:
    def boom(_: str) -> None:
        raise RuntimeError("hook broke")

    p = SandboxProvider(on_accepted=boom)
    result = p.send(OutboundMessage(to=TO, text="x"))
    assert result.status == "accepted" and len(p.sent) == 1
    assert "on_accepted hook failed" in caplog.text


def test_concurrent_sends_are_all_kept() -> None:
    p = SandboxProvider()
    ids: list[str | None] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(200):
            rid = p.send(OutboundMessage(to=TO, text=f"{n}-{i}")).provider_message_id
            with lock:
                ids.append(rid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(p.sent) == 1600 and len(set(ids)) == 1600
    assert {m.text for m in p.sent} == {f"{n}-{i}" for n in range(8) for i in range(200)}


def test_build_request_is_never_executed() -> None:
    p = SandboxProvider()
    req = p.build_request(OutboundMessage(to=TO, text="x"))
    assert req.url == "sandbox://messages"
    assert req.json_body == {"to": TO, "text": "x", "image_urls": []}
    with pytest.raises(RuntimeError):
        p.execute(req)
    assert p.secrets() == []
    p.close()
