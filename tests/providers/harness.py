"""One table-driven harness for the provider tests.

A `Case` is one row: a message in, what the fake answers (its normal answer, a scripted
`Fault`, or the answer that wrong settings earn), and what must come out: the request the
fake saw, and either our SendResult or the ProviderError we raise. `run_case` plays a row
against the shared fake server (tests/providers/conftest.py) and checks every field the row
sets; a field left at None is not checked.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from providers.base import OutboundMessage, Provider, ProviderError, SendResult
from providers.bird import BirdProvider
from providers.sociocs import SociocsProvider
from providers.textus import TextusProvider
from tests.fakes.providers import FakeProviders, Fault

# The fake's credentials, spelled out so rows can say what must (not) reach it.
SOCIOCS_KEY = "socuser:socsecret-9f3a"
BIRD_KEY = "bird-access-7c1e2d"
TEXTUS_TOKEN = "textus-token-5b8e11"

SOCIOCS_CODES = ("twlo", "twlowa", "gswa")
# Where each sender posts a message, and where the fake keeps what it accepted.
SEND_PATH = {"twlo": "/message", "twlowa": "/message", "gswa": "/message", "bird": "/messages", "textus": "/messages"}
STORE = {"twlo": "sociocs_messages", "twlowa": "sociocs_messages", "gswa": "sociocs_messages",
         "bird": "bird_messages", "textus": "textus_messages"}


def live_sociocs(fake: FakeProviders, code: str = "twlo", timeout: float = 5.0, **kw: Any) -> SociocsProvider:
    args: dict[str, Any] = {"api_key": fake.sociocs_api_key, "channel_key": fake.sociocs_channel_keys[code],
                            "base_url": fake.url, "client": _client(timeout)}
    args.update(kw)
    return SociocsProvider(code, **args)  # type: ignore[arg-type]


def live_bird(fake: FakeProviders, timeout: float = 5.0, **kw: Any) -> BirdProvider:
    args: dict[str, Any] = {"api_key": fake.bird_access_key, "workspace_id": fake.bird_workspace_id,
                            "channel_id": fake.bird_channel_id, "base_url": fake.url, "client": _client(timeout)}
    args.update(kw)
    return BirdProvider(**args)


def live_textus(fake: FakeProviders, timeout: float = 5.0, **kw: Any) -> TextusProvider:
    args: dict[str, Any] = {"token": fake.textus_token, "account": fake.textus_account, "base_url": fake.url,
                            "client": _client(timeout)}
    args.update(kw)
    return TextusProvider(**args)


def live(fake: FakeProviders, sender: str, timeout: float = 5.0, **kw: Any) -> Provider:
    """The sender named `sender`, pointed at the fake with its right credentials unless `kw` says otherwise."""
    if sender in SOCIOCS_CODES:
        return live_sociocs(fake, sender, timeout, **kw)
    if sender == "bird":
        return live_bird(fake, timeout, **kw)
    if sender == "textus":
        return live_textus(fake, timeout, **kw)
    raise ValueError(f"no such sender in the harness: {sender}")


def _client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=1.0))


def closed_port_url() -> str:
    """A 127.0.0.1 URL nothing listens on: the connection is refused before any byte is sent."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """An HTTP answer for parse_response: dict/list as JSON, str as is, None as no body."""
    content = b"" if body is None else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    return httpx.Response(status, content=content, headers=headers or {})


TEXT = OutboundMessage(to="+16175551212", text="x")


@dataclass(frozen=True)
class Case:
    """One row: message in -> request at the fake -> our result or our error."""

    id: str
    sender: str  # twlo, twlowa, gswa, bird, textus
    msg: OutboundMessage = field(default_factory=lambda: TEXT)
    fault: Fault | None = None  # scripted at the sender's send path instead of the normal answer
    settings: Mapping[str, Any] = field(default_factory=dict)  # overrides: a wrong key, account...
    url_suffix: str = ""  # appended to the fake's URL (a wrong base path)
    refused: bool = False  # point at a closed port instead of the fake
    timeout: float = 5.0
    # what reached the fake
    requests: int | None = None
    path: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names; a subset
    body: Mapping[str, Any] = field(default_factory=dict)  # a subset of the JSON body
    # a result...
    status: str | None = None
    provider_status: str | None = None
    id_pattern: str | None = None  # fullmatch on provider_message_id
    stored: Mapping[str, Any] | None = None  # the fake kept the message, with these fields
    # ...or an error
    error: type[Exception] | None = None
    message: str | None = None  # str(error), exactly
    match: str | None = None  # re.search in str(error)
    contains: tuple[str, ...] = ()
    status_code: int | None = None
    retryable: bool | None = None
    retry_after: float | None = None


def rows(*cases: Case) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def run_case(fake: FakeProviders, case: Case) -> None:
    if case.fault is not None:
        fake.script(SEND_PATH[case.sender], [case.fault])
    settings = dict(case.settings)
    if case.url_suffix:
        settings["base_url"] = fake.url + case.url_suffix
    if case.refused:
        settings["base_url"] = closed_port_url()
    provider = live(fake, case.sender, case.timeout, **settings)
    if case.error is None:
        _check_result(fake, case, provider.send(case.msg))
    else:
        with pytest.raises(case.error) as info:
            provider.send(case.msg)
        _check_error(case, info.value)
    _check_requests(fake, case)


def _check_result(fake: FakeProviders, case: Case, result: SendResult) -> None:
    if case.status is not None:
        assert result.status == case.status
    if case.provider_status is not None:
        assert result.provider_status == case.provider_status
    if case.id_pattern is not None:
        assert result.provider_message_id is not None
        assert re.fullmatch(case.id_pattern, result.provider_message_id), result.provider_message_id
    if case.stored is not None:
        assert result.provider_message_id is not None
        kept = getattr(fake, STORE[case.sender]).get(result.provider_message_id)
        assert kept is not None
        assert {k: kept.get(k) for k in case.stored} == dict(case.stored)


def _check_error(case: Case, exc: Exception) -> None:
    text = str(exc)
    if case.message is not None:
        assert text == case.message
    if case.match is not None:
        assert re.search(case.match, text), text
    for piece in case.contains:
        assert piece in text
    if case.status_code is not None:
        assert isinstance(exc, ProviderError) and exc.status_code == case.status_code
    if case.retryable is not None:
        assert isinstance(exc, ProviderError) and exc.retryable is case.retryable
    if case.retry_after is not None:
        assert getattr(exc, "retry_after", None) == case.retry_after


def _check_requests(fake: FakeProviders, case: Case) -> None:
    seen = fake.requests
    if case.requests is not None:
        assert len(seen) == case.requests
    if case.path is None and not case.headers and not case.body:
        return
    req = seen[0]
    if case.path is not None:
        assert req.path == case.path
    assert {k: req.headers.get(k) for k in case.headers} == dict(case.headers)
    assert {k: (req.json or {}).get(k) for k in case.body} == dict(case.body)


def assert_secret_kept(fake: FakeProviders, sender: str, fault: Fault, secrets: tuple[str, ...]) -> None:
    """Whatever the provider answers (here `fault`), no piece of the credential shows in our error."""
    fake.script(SEND_PATH[sender], [fault])
    provider = live(fake, sender)
    with pytest.raises(ProviderError) as info:
        provider.send(TEXT)
    assert_clean(info.value, secrets)
    for piece in secrets:
        assert piece not in repr(provider)


def assert_clean(exc: ProviderError, secrets: tuple[str, ...]) -> None:
    for piece in secrets:
        assert piece not in str(exc)
        assert piece not in repr(exc)
        assert all(piece not in str(arg) for arg in exc.args)
