"""The fake providers server: auth and body checks from the docs, answers, faults, recording."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fakes.providers import FakeProviders, Fault

TO = "+16175551212"
TX = "application/vnd.textus+jsonld"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(fake: FakeProviders) -> None:
    fake.reset()
    fake.record = True


@pytest.fixture()
def http(fake: FakeProviders) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5.0) as client:
        yield client


def soc(fake: FakeProviders, **body: Any) -> dict[str, Any]:
    return {"provider": "twlo", "channel_key": fake.sociocs_channel_keys["twlo"], "to": TO, **body}


def soc_headers(fake: FakeProviders) -> dict[str, str]:
    return {"apikey": fake.sociocs_api_key}


def bird_path(fake: FakeProviders, ws: str | None = None, ch: str | None = None) -> str:
    return f"/workspaces/{ws or fake.bird_workspace_id}/channels/{ch or fake.bird_channel_id}/messages"


def bird_headers(fake: FakeProviders) -> dict[str, str]:
    return {"Authorization": f"AccessKey {fake.bird_access_key}", "Accept": "application/json"}


def tx_headers(fake: FakeProviders) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.textus_token}", "Accept": TX, "Content-Type": TX}


def receiver() -> dict[str, Any]:
    return {"contacts": [{"identifierKey": "phonenumber", "identifierValue": TO}]}


# --------------------------------------------------------------------------- Sociocs


def test_sociocs_success_shape(fake: FakeProviders, http: httpx.Client) -> None:
    r = http.post("/message", json=soc(fake, text="hi"), headers=soc_headers(fake))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success" and set(body) == {"status", "data"}
    assert isinstance(body["data"]["message_id"], str) and body["data"]["message_id"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"apikey": "wrong"}, {"Authorization": "Bearer socuser:socsecret-9f3a"}],
)
def test_sociocs_auth(fake: FakeProviders, http: httpx.Client, headers: dict[str, str]) -> None:
    r = http.post("/message", json=soc(fake, text="hi"), headers=headers)
    assert r.status_code == 401
    assert r.json() == {"status": "error", "errors": [{"msg": "Invalid API key."}]}


def test_sociocs_basic_auth_and_query_key(fake: FakeProviders, http: httpx.Client) -> None:
    user, secret = fake.sociocs_api_key.split(":")
    assert http.post("/message", json=soc(fake, text="hi"), auth=(user, secret)).status_code == 200
    assert http.post("/message", json=soc(fake, text="hi"), params={"apikey": fake.sociocs_api_key}).status_code == 200


@pytest.mark.parametrize(
    ("change", "msg"),
    [
        ({"provider": "tlnx"}, "Invalid provider."),
        ({"channel_key": "ck-other"}, "Invalid channel_key."),
        ({"to": None}, "to is required: a phone number with the country code."),
        ({"text": None}, "text, image_url, video_url, file_url or template is required."),
        ({"image_url": "https://x/y.png", "provider": "twlowa"}, "Media is supported only when provider is twlo."),
        ({"template": {"id": "HX1"}}, "template is supported only when provider is twlowa or gswa."),
        ({"schedule": "next tuesday"}, "Invalid schedule. Use ISO 8601, e.g. 2006-01-02T15:04:05-04:00."),
        ({"image_urls": "https://x/y.png"}, "image_urls must be an array of URLs."),
    ],
)
def test_sociocs_body_checks(fake: FakeProviders, http: httpx.Client, change: dict[str, Any], msg: str) -> None:
    body = soc(fake, text="hi")
    if change.get("provider") == "twlowa":
        change = {**change, "channel_key": fake.sociocs_channel_keys["twlowa"]}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    r = http.post("/message", json=body, headers=soc_headers(fake))
    assert r.status_code == 400
    assert r.json() == {"status": "error", "errors": [{"msg": msg}]}


def test_sociocs_channel_key_is_per_provider(fake: FakeProviders, http: httpx.Client) -> None:
    body = {**soc(fake, text="hi"), "provider": "gswa"}  # twlo's key with gswa
    assert http.post("/message", json=body, headers=soc_headers(fake)).json()["errors"][0]["msg"] == (
        "Invalid channel_key.")
    body["channel_key"] = fake.sociocs_channel_keys["gswa"]
    assert http.post("/message", json=body, headers=soc_headers(fake)).status_code == 200


def test_sociocs_whatsapp_template(fake: FakeProviders, http: httpx.Client) -> None:
    body = {"provider": "twlowa", "channel_key": fake.sociocs_channel_keys["twlowa"], "to": TO,
            "template": {"id": "HX1", "variables": {"1": "John"}}}
    assert http.post("/message", json=body, headers=soc_headers(fake)).status_code == 200
    body["template"] = {"variables": {}}
    r = http.post("/message", json=body, headers=soc_headers(fake))
    assert (r.status_code, r.json()["errors"][0]["msg"]) == (400, "template.id is required.")


def test_sociocs_bulk(fake: FakeProviders, http: httpx.Client) -> None:
    body = {"provider": "twlo", "channel_key": fake.sociocs_channel_keys["twlo"],
            "recipients": [{"to": TO, "name": "A"}, {"to": "+16175550000"}], "text": "hi"}
    r = http.post("/messages/bulk", json=body, headers=soc_headers(fake))
    assert r.status_code == 200 and r.json()["data"]["job_id"]
    assert fake.sociocs_jobs.get(r.json()["data"]["job_id"])["count"] == 2  # type: ignore[index]
    r = http.post("/messages/bulk", json={**body, "recipients": []}, headers=soc_headers(fake))
    assert (r.status_code, r.json()["errors"][0]["msg"]) == (400, "recipients is required.")


def test_sociocs_list_messages(fake: FakeProviders, http: httpx.Client) -> None:
    mid = http.post("/message", json=soc(fake, text="hi"), headers=soc_headers(fake)).json()["data"]["message_id"]
    now = datetime.now(UTC)
    params = {"start_date": (now - timedelta(hours=1)).isoformat(), "end_date": (now + timedelta(hours=1)).isoformat()}
    r = http.get("/messages", params=params, headers=soc_headers(fake))
    assert r.status_code == 200 and [m["message_id"] for m in r.json()["data"]] == [mid]
    old = {"start_date": "2020-01-01", "end_date": "2020-01-31"}
    assert http.get("/messages", params=old, headers=soc_headers(fake)).json()["data"] == []
    too_long = {"start_date": "2020-01-01", "end_date": "2020-03-01"}
    assert http.get("/messages", params=too_long, headers=soc_headers(fake)).status_code == 400


def test_unknown_path_is_404(http: httpx.Client) -> None:
    assert http.post("/nope/nope/nope").status_code == 404


# --------------------------------------------------------------------------- Bird


def test_bird_success_echoes_receiver_and_reference(fake: FakeProviders, http: httpx.Client) -> None:
    body = {"receiver": receiver(), "reference": "r-1", "body": {"type": "text", "text": {"text": "hi"}}}
    r = http.post(bird_path(fake), json=body, headers=bird_headers(fake))
    assert r.status_code == 202
    msg = r.json()
    assert msg["status"] == "accepted" and msg["reference"] == "r-1" and msg["channelId"] == fake.bird_channel_id
    assert msg["receiver"]["contacts"][0]["identifierValue"] == TO
    assert len(msg["id"]) == 36 and msg["id"].count("-") == 4
    got = http.get(f"{bird_path(fake)}/{msg['id']}", headers=bird_headers(fake))
    assert got.status_code == 200 and got.json() == msg


@pytest.mark.parametrize("auth", [None, "Bearer jwt", "AccessKey wrong"])
def test_bird_auth(fake: FakeProviders, http: httpx.Client, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = http.post(bird_path(fake), json={"receiver": receiver(), "body": {}}, headers=headers)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"body": {"type": "text", "text": {"text": "x"}}}, 422, "receiver.contacts"),
        ({"receiver": receiver()}, 422, "body or template is required"),
        ({"receiver": receiver(), "body": {"type": "text", "text": {"text": "x"}},
          "template": {"projectId": "p", "locale": "en"}}, 422, "either body or template"),
        ({"receiver": receiver(), "body": {"type": "carousel"}}, 422, "Unsupported body type"),
        ({"receiver": receiver(), "body": {"type": "file", "file": {"files": [{"mediaUrl": "https://x/a"}]}}},
         422, "contentType"),
        ({"receiver": receiver(), "body": {"type": "image", "image": {"images": [{"mediaUrl": "u"}] * 11}}},
         422, "1 to 10"),
        ({"receiver": receiver(), "template": {"projectId": "p"}}, 422, "locale"),
        ({"receiver": receiver(), "body": {"type": "text", "text": {"text": "x"}},
          "scheduledFor": (datetime.now(UTC) + timedelta(days=36)).isoformat()}, 422, "35 days"),
    ],
)
def test_bird_body_checks(fake: FakeProviders, http: httpx.Client, body: dict[str, Any], status: int,
                          words: str) -> None:
    r = http.post(bird_path(fake), json=body, headers=bird_headers(fake))
    assert r.status_code == status
    assert r.json()["code"] == "InvalidPayload" and words in r.json()["message"]


def test_bird_malformed_json_is_400(fake: FakeProviders, http: httpx.Client) -> None:
    r = http.post(bird_path(fake), content=b"{nope", headers={**bird_headers(fake), "Content-Type": "application/json"})
    assert r.status_code == 400


@pytest.mark.parametrize("which", ["ws", "ch"])
def test_bird_unknown_workspace_or_channel(fake: FakeProviders, http: httpx.Client, which: str) -> None:
    path = bird_path(fake, **{which: "ffffffff-0000-0000-0000-000000000000"})
    body = {"receiver": receiver(), "body": {"type": "text", "text": {"text": "x"}}}
    assert http.post(path, json=body, headers=bird_headers(fake)).status_code == 404


def test_bird_unknown_message_is_404(fake: FakeProviders, http: httpx.Client) -> None:
    assert http.get(f"{bird_path(fake)}/nope", headers=bird_headers(fake)).status_code == 404


# --------------------------------------------------------------------------- TextUs


def test_textus_success_shape(fake: FakeProviders, http: httpx.Client) -> None:
    r = http.post(f"/{fake.textus_account}/messages", json={"to": TO, "body": "hi"}, headers=tx_headers(fake))
    assert r.status_code == 201 and r.headers["content-type"] == TX
    msg = r.json()
    assert msg["@type"] == "Message" and msg["id"].startswith("/messages/") and msg["channel"] == "sms"
    assert msg["attachments"]["totalItems"] == 0


def test_textus_several_recipients_is_202_without_body(fake: FakeProviders, http: httpx.Client) -> None:
    r = http.post(f"/{fake.textus_account}/messages", json={"to": [TO, "+13035555678"], "body": "hi"},
                  headers=tx_headers(fake))
    assert (r.status_code, r.content) == (202, b"")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Accept": TX}, 401),
        ({"Authorization": "Bearer wrong", "Accept": TX}, 401),
        ({"Authorization": "Bearer textus-token-5b8e11", "Accept": "application/json"}, 406),
    ],
)
def test_textus_auth_and_accept(fake: FakeProviders, http: httpx.Client, headers: dict[str, str],
                                status: int) -> None:
    r = http.post(f"/{fake.textus_account}/messages", json={"to": TO, "body": "hi"}, headers=headers)
    assert r.status_code == status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"body": "hi"}, 400),
        ({"to": TO}, 400),
        ({"to": TO, "body": "x", "attachments": [{"media_url": "https://x/a.png", "content_type": "image/png"}] * 2},
         400),
        ({"to": TO, "body": "x", "attachments": [{"media_url": "https://x/a.mp4", "content_type": "video/mp4"}]},
         400),
        ({"to": TO, "channel": "whatsapp", "template": {"id": "pndTmpl"}}, 422),
        ({"to": TO, "channel": "whatsapp", "template": {"id": "nope"}}, 422),
        ({"to": TO, "channel": "whatsapp", "template": {"id": "dkDdrbR", "variable_values": {"appt_date": "1/1"}}},
         422),
        ({"to": TO, "channel": "whatsapp",
          "template": {"id": "dkDdrbR", "variable_values": {"appt_date": "1/1", "appt_time": "12:00"}}}, 201),
    ],
)
def test_textus_body_checks(fake: FakeProviders, http: httpx.Client, body: dict[str, Any], status: int) -> None:
    r = http.post(f"/{fake.textus_account}/messages", json=body, headers=tx_headers(fake))
    assert r.status_code == status
    if status == 422:
        assert r.content == b""  # as documented: "No body"


def test_textus_unknown_account(fake: FakeProviders, http: httpx.Client) -> None:
    assert http.post("/other_account/messages", json={"to": TO, "body": "x"}, headers=tx_headers(fake)).status_code == 404


# --------------------------------------------------------------------------- strict as the docs


def _bird_ok() -> dict[str, Any]:
    return {"receiver": receiver(), "body": {"type": "text", "text": {"text": "hi"}}}


@pytest.mark.parametrize("extra", [{"bogus_field": 1}, {"contactSaving": {"save": True}}, {"scheduledAt": "2030-01-01"},
                                   {"template": {"id": "HX1", "vars": {}}, "provider": "twlowa"},
                                   {"contact_saving": {"save": True, "listId": 3}}])
def test_sociocs_send_refuses_fields_its_docs_do_not_name(fake: FakeProviders, http: httpx.Client,
                                                          extra: dict[str, Any]) -> None:
    body = {**soc(fake, text="hi"), **extra}
    if extra.get("provider") == "twlowa":
        body = {**body, "channel_key": fake.sociocs_channel_keys["twlowa"]}
        del body["text"]
    r = http.post("/message", json=body, headers=soc_headers(fake))
    assert r.status_code == 400
    assert r.json()["status"] == "error" and "Unknown field" in r.json()["errors"][0]["msg"]
    assert len(fake.sociocs_messages) == 0


def test_sociocs_bulk_refuses_unknown_fields_also_in_recipients(fake: FakeProviders, http: httpx.Client) -> None:
    body = {"provider": "twlo", "channel_key": fake.sociocs_channel_keys["twlo"], "recipients": [{"to": TO}],
            "text": "hi"}
    for bad in ({**body, "template": {"id": "x"}}, {**body, "recipients": [{"to": TO, "phone": TO}]}):
        r = http.post("/messages/bulk", json=bad, headers=soc_headers(fake))
        assert r.status_code == 400 and "Unknown field" in r.json()["errors"][0]["msg"]
    assert len(fake.sociocs_jobs) == 0


@pytest.mark.parametrize("kind", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_sociocs_needs_a_json_content_type(fake: FakeProviders, http: httpx.Client, kind: str | None) -> None:
    headers = {**soc_headers(fake), **({"Content-Type": kind} if kind else {})}
    r = http.post("/message", content=json.dumps(soc(fake, text="hi")).encode(), headers=headers)
    assert r.status_code == 400 and "Content-Type must be application/json" in r.json()["errors"][0]["msg"]
    charset = {**soc_headers(fake), "Content-Type": "application/json; charset=utf-8"}
    assert http.post("/message", content=json.dumps(soc(fake, text="hi")).encode(), headers=charset).status_code == 200


@pytest.mark.parametrize(
    "change",
    [{"bogus_field": 1}, {"scheduledAt": "2030-01-01T00:00:00Z"},
     {"receiver": {"contacts": [{"identifierValue": TO}]}},
     {"receiver": {"contacts": [{"identifierKey": "emailaddress", "identifierValue": TO}]}},
     {"receiver": {"contacts": [{"identifierKey": "phonenumber", "identifierValue": TO, "phone": TO}]}},
     {"receiver": {**receiver(), "to": TO}}],
)
def test_bird_refuses_fields_and_receivers_its_docs_do_not_allow(fake: FakeProviders, http: httpx.Client,
                                                                  change: dict[str, Any]) -> None:
    r = http.post(bird_path(fake), json={**_bird_ok(), **change}, headers=bird_headers(fake))
    assert r.status_code == 422 and r.json()["code"] == "InvalidPayload"
    assert len(fake.bird_messages) == 0


def test_bird_template_parameters_are_checked_by_name(fake: FakeProviders, http: httpx.Client) -> None:
    template = {"projectId": "p", "version": "latest", "locale": "en",
                "parameters": [{"type": "string", "key": "name", "value": "Robert"}]}
    ok = http.post(bird_path(fake), json={"receiver": receiver(), "template": template}, headers=bird_headers(fake))
    assert ok.status_code == 202
    template["parameters"][0]["val"] = "x"  # type: ignore[index]
    r = http.post(bird_path(fake), json={"receiver": receiver(), "template": template}, headers=bird_headers(fake))
    assert r.status_code == 422 and "template.parameters" in r.json()["message"]


def test_bird_needs_accept_json_and_a_json_body(fake: FakeProviders, http: httpx.Client) -> None:
    no_accept = {"Authorization": f"AccessKey {fake.bird_access_key}"}
    r = http.post(bird_path(fake), json=_bird_ok(), headers={**no_accept, "Accept": "text/html"})
    assert r.status_code == 406 and r.json()["code"] == "NotAcceptable"
    assert http.get(f"{bird_path(fake)}/x", headers={**no_accept, "Accept": "*/*"}).status_code == 406
    r = http.post(bird_path(fake), content=json.dumps(_bird_ok()).encode(),
                  headers={**bird_headers(fake), "Content-Type": "text/plain"})
    assert r.status_code == 400 and "Content-Type" in r.json()["message"]
    assert len(fake.bird_messages) == 0


@pytest.mark.parametrize("change", [{"bogus_field": 1}, {"scheduledAt": "2030-01-01"}, {"media_url": "https://x"},
                                    {"attachments": [{"media_url": "https://x/a.png", "contentType": "image/png"}]},
                                    {"template": {"id": "dkDdrbR", "variables": {}}, "channel": "whatsapp"}])
def test_textus_refuses_fields_its_docs_do_not_name(fake: FakeProviders, http: httpx.Client,
                                                    change: dict[str, Any]) -> None:
    r = http.post(f"/{fake.textus_account}/messages", json={"to": TO, "body": "hi", **change},
                  headers=tx_headers(fake))
    assert r.status_code == 400 and r.json()["@type"] == "Error" and "Unknown field" in r.json()["message"]
    assert len(fake.textus_messages) == 0


def test_textus_needs_its_own_content_type(fake: FakeProviders, http: httpx.Client) -> None:
    r = http.post(f"/{fake.textus_account}/messages", json={"to": TO, "body": "hi"},
                  headers={**tx_headers(fake), "Content-Type": "application/json"})
    assert r.status_code == 415 and TX in r.json()["message"]
    assert len(fake.textus_messages) == 0


def test_every_documented_field_is_still_accepted(fake: FakeProviders, http: httpx.Client) -> None:
    full = soc(fake, name="N", text="t", image_url="https://x/a.png", video_url="https://x/v.mp4",
               file_url="https://x/f.pdf", contact_saving={"save": True, "list_id": 0, "extra_fields": {"a": 1}},
               schedule="2030-01-01T00:00:00-04:00", user_id="u1")
    assert http.post("/message", json=full, headers=soc_headers(fake)).status_code == 200
    bird = {**_bird_ok(), "reference": "r", "tags": ["a"], "validity": 60, "ignoreQuietHours": True,
            "scheduledFor": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    assert http.post(bird_path(fake), json=bird, headers=bird_headers(fake)).status_code == 202
    tx = {"to": [TO], "body": "b", "saved_reply": "/saved_replies/Q", "channel": "sms",
          "attachments": [{"media_url": "https://x/a.png", "content_type": "image/png"}]}
    assert http.post(f"/{fake.textus_account}/messages", json=tx, headers=tx_headers(fake)).status_code == 201


# --------------------------------------------------------------------------- faults and recording


def test_faults_are_consumed_in_order_then_normal(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script("/message", [Fault(status=429, headers={"Retry-After": "1"}, body={"status": "error"}),
                             Fault(status=500)])
    codes = [http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake)) for _ in range(3)]
    assert [r.status_code for r in codes] == [429, 500, 200]
    assert codes[0].headers["retry-after"] == "1"
    assert len(fake.requests) == 3  # faulted requests are recorded too


def test_faults_only_hit_matching_paths(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script("/messages/bulk", [Fault(status=503)])
    assert http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake)).status_code == 200
    assert http.post("/messages/bulk", json={}, headers=soc_headers(fake)).status_code == 503
    assert http.post("/messages/bulk", json={}, headers=soc_headers(fake)).status_code == 400


def test_none_matches_everything(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(None, [Fault(status=418)])
    assert http.get("/anything").status_code == 418


def test_delay_alone_then_normal_answer(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(None, [Fault(delay=0.3)])
    start = time.perf_counter()
    r = http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake))
    assert r.status_code == 200 and time.perf_counter() - start >= 0.3


def test_drop_closes_without_answer(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(None, [Fault(drop=True)])
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake))
    assert fake.requests[0].json["text"] == "x"
    assert http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake)).status_code == 200


def test_latency_applies_to_every_request(fake: FakeProviders, http: httpx.Client) -> None:
    fake.latency = 0.15
    start = time.perf_counter()
    for _ in range(2):
        http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake))
    assert time.perf_counter() - start >= 0.3


def test_records_method_path_query_lowercased_headers_and_json(fake: FakeProviders, http: httpx.Client) -> None:
    before = time.time()
    http.get("/messages", params={"start_date": "2024-01-01"}, headers={"X-Thing": "1", "apikey": "k"})
    (rec,) = fake.requests
    assert (rec.method, rec.path, rec.query) == ("GET", "/messages", {"start_date": "2024-01-01"})
    assert rec.headers["x-thing"] == "1" and rec.json is None and rec.time >= before


def test_record_false_keeps_nothing(fake: FakeProviders, http: httpx.Client) -> None:
    fake.record = False
    http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake))
    assert fake.requests == []


def test_reset_forgets_scripts_and_latency(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(None, [Fault(status=500), Fault(status=500)])
    assert http.get("/x").status_code == 500
    fake.latency = 5
    fake.reset()
    assert fake.requests == [] and fake.latency == 0
    assert http.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake)).status_code == 200


def test_stores_are_bounded(http: httpx.Client) -> None:
    with FakeProviders(max_stored=3, record=False) as small, httpx.Client(base_url=small.url) as client:
        for i in range(5):
            client.post("/message", json=soc(small, text=str(i)), headers=soc_headers(small))
        assert len(small.sociocs_messages) == 3
        assert [m["text"] for m in small.sociocs_messages.values()] == ["2", "3", "4"]


def test_concurrent_requests_are_all_served_and_recorded(fake: FakeProviders) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with httpx.Client(base_url=fake.url, timeout=5.0) as client:
                for _ in range(25):
                    r = client.post("/message", json=soc(fake, text="x"), headers=soc_headers(fake))
                    assert r.status_code == 200
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(fake.requests) == 200 and len(fake.sociocs_messages) == 200


def test_stop_releases_the_port_and_open_connections() -> None:
    server = FakeProviders().start()
    url = server.url
    port = int(url.rsplit(":", 1)[1])
    client = httpx.Client(base_url=url)
    assert client.get("/messages").status_code == 401  # a kept-alive connection is open
    server.stop()
    with pytest.raises(httpx.TransportError):
        client.get("/messages")
    client.close()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        _ = server.url
