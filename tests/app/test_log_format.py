"""LOG_FORMAT=json: one JSON object per line, with the text format's secret redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.app.logs import RedactSecrets, setup_logging
from bot.core.config import Settings

SECRET = "sk_live/Sup3r+Secret=="


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """A plain stream handler on the root logger (what a process logs through), removed after."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        for existing in root.handlers:
            existing.filters = [f for f in existing.filters if not isinstance(f, RedactSecrets)]


def test_log_format_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    assert Settings(_env_file=None).log_format == "json"  # type: ignore[call-arg]
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_json_lines_carry_ids_and_are_redacted(stream: io.StringIO) -> None:
    setup_logging([SECRET], log_format="json")
    log = logging.getLogger("smsbot.test")
    log.warning("provider said: bad key %s", SECRET, extra={"message_id": 42})
    log.info("job moved on", extra={"job_id": 7})
    try:
        raise RuntimeError(f"boom with {SECRET}")
    except RuntimeError:
        log.exception("it failed")
    text = stream.getvalue()
    assert SECRET not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 3  # the traceback stays inside its object: one line each
    first = lines[0]
    assert set(first) == {"time", "level", "logger", "message", "message_id"}
    assert first["level"] == "WARNING" and first["logger"] == "smsbot.test" and first["message_id"] == 42
    assert first["message"] == "provider said: bad key ***"
    assert first["time"].endswith("+00:00")
    assert lines[1]["job_id"] == 7 and "message_id" not in lines[1]
    assert "boom with ***" in lines[2]["exception"] and lines[2]["message"] == "it failed"


def test_text_stays_the_default(stream: io.StringIO) -> None:
    setup_logging([SECRET], log_format="text")
    logging.getLogger("smsbot.test").warning("key %s", SECRET)
    line = stream.getvalue().strip()
    assert line.endswith("WARNING smsbot.test: key ***")
