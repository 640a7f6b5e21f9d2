"""`smsbot templates check`: the catalog checked on its own, as an admin or CI runs it."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from tests.cli.runner import last, run

EXAMPLE = Path(__file__).resolve().parents[2] / "templates.example.yml"

BROKEN = """\
templates:
  - name: appt-confirm
    sender: twlowa
    template_id: HX123
    body: Hi {{1}} on {{2}}
    variables:
      - key: 1
        label: Customer name
  - name: welcome
    sender: twlo
    body: Hello
"""


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No .env, no templates.yml and no SMS_TEMPLATES_FILE from the developer's machine.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SMS_TEMPLATES_FILE", raising=False)


def test_check_prints_the_summary_and_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.yml"
    shutil.copy(EXAMPLE, path)
    assert run("templates", "check", "--file", str(path)) == 0
    out = last().stdout.splitlines()
    assert out[0] == f"{path}: 5 template(s) OK"
    assert out[1] == "  appt-confirm (twlowa, HX0123456789abcdef0123456789abcdef): 1, 2, 3"
    assert out[2] == ("  order-shipped (gswa, 7c1f0a52-3d4e-4b8f-9a61-2e5d8c0b9f13, media): "
                      "Header.1, Body.1, Body.2, Buttons.1")


def test_check_prints_every_problem_with_file_and_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "templates.yml"
    path.write_text(BROKEN, encoding="utf-8")
    assert run("templates", "check", "--file", str(path)) == 1
    captured = last()
    assert captured.stdout == ""
    assert captured.stderr.splitlines() == [
        f"{path}:4: template 'appt-confirm': template_id 'HX123' is not a Twilio content SID "
        "(HX followed by 32 hex characters)",
        f"{path}:5: template 'appt-confirm': placeholder {{{{2}}}} in body has no variable; add a variable '2'",
        f"{path}:10: template 'welcome': sender 'twlo' (Twilio SMS) cannot send templates; "
        "use 'twlowa' for Twilio WhatsApp",
    ]


def test_check_uses_sms_templates_file_when_no_file_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "from-env.yml"
    path.write_text(textwrap.dedent("""\
        templates:
          - name: hello
            sender: sandbox
            body: Hello {{1}}
            variables: [{key: 1, label: Name}]
        """), encoding="utf-8")
    monkeypatch.setenv("SMS_TEMPLATES_FILE", str(path))
    assert run("templates", "check") == 0
    assert last().stdout.splitlines() == [f"{path}: 1 template(s) OK", "  hello (sandbox, hello): 1"]


def test_check_of_a_missing_file_fails_even_for_the_default_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("templates", "check") == 1
    assert last().stderr == "templates.yml: file not found\n"
    assert run("templates", "check", "--file", "nope.yml") == 1
    assert last().stderr == "nope.yml: file not found\n"


def test_check_reports_yaml_syntax_errors_with_their_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("templates:\n  - name: a\n    body: [unclosed\n", encoding="utf-8")
    assert run("templates", "check", "--file", str(path)) == 1
    [line] = last().stderr.splitlines()
    assert line.startswith(f"{path}:4: YAML syntax error:")


def test_templates_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("templates") == 2
    assert "check" in last().stderr


def test_check_refuses_an_underscore_bird_locale_and_says_what_to_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bird types `locale` as BCP 47: `en_US` would be sent as is and refused by Bird.
    path = tmp_path / "templates.yml"
    path.write_text(textwrap.dedent("""\
        templates:
          - name: welcome
            sender: bird
            project_id: ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318
            locale: en_US
            body: Hi
          - name: hola
            sender: bird
            project_id: ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318
            locale: english
            body: Hola
          - name: ok
            sender: bird
            project_id: ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318
            locale: pt-BR
            body: Oi
        """), encoding="utf-8")
    assert run("templates", "check", "--file", str(path)) == 1
    assert last().stderr.splitlines() == [
        f"{path}:5: template 'welcome': locale 'en_US' uses an underscore; Bird takes BCP 47 locales "
        "with a hyphen: write locale: en-US",
        f"{path}:10: template 'hola': locale 'english' is not a BCP 47 locale like en or en-US "
        "(language, then region, with a hyphen)",
    ]
