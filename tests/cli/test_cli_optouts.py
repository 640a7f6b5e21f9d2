"""`smsbot optouts` (list, import, export, sync against the fake providers) and the CLI send's checks."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest

from bot.app.main import main
from storage.consent import ConsentQueries
from storage.store import NewMessage, Store
from tests.conftest import CHANNEL_KEYS, SOCIOCS_KEY, TEXTUS_ACCOUNT, TEXTUS_TOKEN
from tests.fakes.providers import FakeProviders


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'o.db'}")
    monkeypatch.chdir(tmp_path)  # no stray .env
    return Store(str(tmp_path / "o.db"))


def test_import_export_round_trip_and_list(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.csv"
    src.write_text("number,family,by_recipient,reason\n+16175551212,sms,yes,STOP by email\n"
                   "(617) 555-1213,,,\nnot a number,,,\n+16175551214,fax,,\n", encoding="utf-8")
    assert main(["optouts", "import", str(src)]) == 1  # two bad lines, said by line
    out = capsys.readouterr()
    assert "2 number(s) newly opted out; 2 line(s) skipped." in out.out
    assert "line 4:" in out.err and "line 5: family 'fax'" in out.err
    q = ConsentQueries(store)
    assert q.state("+16175551212", "sms").by_recipient  # type: ignore[union-attr]
    assert q.state("+16175551212", "whatsapp") is None
    assert {s.family for s in q.all_opted_out() if s.number == "+16175551213"} == {"sms", "whatsapp"}

    assert main(["optouts", "export"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["number"] for r in rows] == ["+16175551212", "+16175551213", "+16175551213"]
    assert rows[0]["by_recipient"] == "yes" and rows[0]["source"] == "import" and rows[0]["reason"] == "STOP by email"
    assert main(["optouts"]) == 0
    assert "3 opt-out(s) in force" in capsys.readouterr().out


def test_sync_imports_textus_and_sociocs_opt_outs(store: Store, fake_providers: FakeProviders,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in {"TEXTUS_API_TOKEN": TEXTUS_TOKEN, "TEXTUS_ACCOUNT": TEXTUS_ACCOUNT,
                        "TEXTUS_API_URL": fake_providers.url, "SOCIOCS_API_KEY": SOCIOCS_KEY,
                        "SOCIOCS_API_URL": fake_providers.url, "SOCIOCS_CHANNEL_KEY_TWLO": CHANNEL_KEYS["twlo"]}.items():
        monkeypatch.setenv(name, value)
    fake_providers.textus_opt_outs.put("+16175550001", {"@type": "OptOut", "phoneNumber": "+16175550001",
                                                        "formattedPhoneNumber": "(617) 555-0001"})
    fake_providers.sociocs_blocked.add("16175550002")
    for n in ("+16175550002", "+16175550003"):
        store.enqueue(NewMessage(idem_key=n, sender="twlo", to_number=n, payload={}, due_at=time.time()))
    assert main(["optouts", "sync"]) == 0
    out = capsys.readouterr().out
    assert "TextUs: 1 opt-out(s) listed, 1 new." in out
    assert "Sociocs: 2 known number(s) asked, 1 blocked, 1 new." in out
    q = ConsentQueries(store)
    assert q.state("+16175550001", "sms").source == "sync_textus"  # type: ignore[union-attr]
    assert q.state("+16175550002", "whatsapp").source == "sync_sociocs"  # type: ignore[union-attr]
    assert q.state("+16175550003", "sms") is None
    assert any(r.path == "/contacts/isblocked/16175550002" for r in fake_providers.requests)


def test_cli_send_to_an_opted_out_number_is_refused(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    ConsentQueries(store).opt_out("+16175551212", "sms", source="keyword_STOP", by_recipient=True)
    assert main(["send", "--via", "sandbox", "--to", "+16175551212", "--text", "hi"]) == 2
    err = capsys.readouterr().err
    assert "via STOP reply" in err and "nothing was sent" in err
    assert store.counts_by_status() == {}


def test_webhooks_register_prints_the_textus_opt_out_events(capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli.webhooks import run_webhooks
    from bot.core.config import Settings

    settings = Settings(_env_file=None, textus_api_token=TEXTUS_TOKEN, textus_account=TEXTUS_ACCOUNT)  # type: ignore[call-arg]
    assert run_webhooks("https://sms.example.com", settings) == 0
    out = capsys.readouterr().out
    assert "contact.opted_out, contact.opted_in" in out and "https://sms.example.com/webhooks/textus" in out


@pytest.mark.parametrize("content", [
    b"number,reason\n+16175551230,ok\n" + b"+16175551231,caf\xe9\n",  # Excel's "CSV" in Latin-1
    b"number\n" + b"+16175551230\n" * 2000 + b"\xff\xfe garbage",  # a bad byte far past the first chunk
    b"number,reason\n+16175551230,ok\n+16175551231," + b"x" * 200_000 + b"\n",  # a field over csv's limit
])
def test_import_of_a_file_it_cannot_read_says_so_and_imports_nothing(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    src = tmp_path / "bad.csv"
    src.write_bytes(content)
    assert main(["optouts", "import", str(src)]) == 2
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "Traceback" not in err
    assert list(ConsentQueries(store).all_opted_out()) == []


def test_export_defuses_formulas_in_reasons_and_its_file_imports_back_unchanged(
        store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A reason is typed by a person (`/sms optout +1... =HYPERLINK(...)`) or imported: opened in a
    spreadsheet, the export must not run it (as `smsbot export` does for message text)."""
    src = tmp_path / "in.csv"
    src.write_text('number,reason\n+16175551212,"=HYPERLINK(""https://evil.example"",""x"")"\n+16175551213,-1+2\n',
                   encoding="utf-8")
    assert main(["optouts", "import", str(src)]) == 0
    out = tmp_path / "out.csv"
    assert main(["optouts", "export", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["reason"] for r in rows} == {"'=HYPERLINK(\"https://evil.example\",\"x\")", "'-1+2"}
    assert all(r["number"].startswith("+1617") for r in rows)  # numbers are left as they are
    capsys.readouterr()
    Store.close(store)
    (tmp_path / "o.db").unlink()
    assert main(["optouts", "import", str(out)]) == 0
    reasons = {s.reason for s in ConsentQueries(Store(str(tmp_path / "o.db"))).all_opted_out()}
    assert reasons == {"=HYPERLINK(\"https://evil.example\",\"x\")", "-1+2"}
