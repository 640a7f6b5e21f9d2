"""`smsbot simulate inbound` with bad input: a clear message, exit 2, nothing stored."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bot.cli.simulate import run
from bot.core.config import Settings
from storage import open_store


@pytest.mark.parametrize("text, said", [
    ("bad \udcff byte", "not valid UTF-8"),  # a non-UTF-8 byte in argv arrives as a lone surrogate
    ("", "--text is empty"),
    ("   ", "--text is empty"),
])
def test_text_that_cannot_be_a_message_is_refused_and_nothing_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, said: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    settings = Settings(_env_file=None, slack_bot_token="xoxb-x", database_url=url)  # type: ignore[call-arg]
    args = argparse.Namespace(via="twlo", from_number="+16175551212", text=text, whatsapp=False)
    assert run(args, settings) == 2
    assert said in capsys.readouterr().err
    store = open_store(url)
    try:
        assert store.conn.execute("SELECT count(*) FROM inbound_messages").fetchone()[0] == 0
    finally:
        store.close()
