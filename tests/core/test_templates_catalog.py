"""The template catalog: loading with file:line problems, values, provider shapes, previews."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.core.templates import (
    Catalog,
    CatalogError,
    TemplateDef,
    TemplateValuesError,
    TemplateVariable,
    catalog_from_env,
    example_values,
    load_catalog,
    parse_catalog,
    parse_command_values,
    render_preview,
    split_command_values,
    summarize,
    to_template_send,
    validate_values,
)
from bot.slack.commands import slack_unescape
from providers.base import TemplateSend

EXAMPLE = Path(__file__).resolve().parents[2] / "templates.example.yml"
BIRD_PROJECT = "ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318"
TWILIO_SID = "HX0123456789abcdef0123456789abcdef"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "templates.yml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    lines = str(info.value).splitlines()
    assert lines == [str(p) for p in info.value.problems]
    return lines


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE)


# --------------------------------------------------------------------------- the example


def test_example_loads_with_all_five_senders(catalog: Catalog) -> None:
    assert catalog.names() == ["appt-confirm", "order-shipped", "appt-reminder", "welcome", "sandbox-test"]
    assert sorted(t.sender for t in catalog.templates) == ["bird", "gswa", "sandbox", "textus", "twlowa"]
    assert [t.name for t in catalog.for_sender("textus")] == ["appt-reminder"]
    assert catalog.for_sender("twlo") == []
    assert catalog.get("APPT-Confirm ") is catalog.templates[0]
    assert catalog.get("nope") is None


def test_example_reads_yaml_scalars_as_written(catalog: Catalog) -> None:
    # `key: 1` and `example: "12:00"` must stay text, not become 1 and 720.
    assert [v.key for v in catalog.get("appt-confirm").variables] == ["1", "2", "3"]
    assert catalog.get("appt-reminder").variables[1].example == "12:00"
    gswa = catalog.get("order-shipped")
    assert [v.ref for v in gswa.variables] == ["Header.1", "Body.1", "Body.2", "Buttons.1"]
    assert gswa.media is True and gswa.variables[3].required is False
    bird = catalog.get("welcome")
    assert (bird.project_id, bird.version, bird.locale) == (BIRD_PROJECT, "latest", "en")


def test_example_is_valid_for_every_template(catalog: Catalog) -> None:
    for tpl in catalog.templates:
        media = "https://placehold.co/600x400" if tpl.media else None
        assert validate_values(tpl, example_values(tpl), media) == {}, tpl.name
        assert "[" not in render_preview(tpl, example_values(tpl)).replace("[Button:", ""), tpl.name


def test_summarize(catalog: Catalog) -> None:
    text = summarize(catalog, "templates.yml")
    assert text.splitlines()[0] == "templates.yml: 5 template(s) OK"
    assert "  appt-reminder (textus, dkDdrbR): appt_date, appt_time" in text
    assert summarize(Catalog(), "t.yml") == "t.yml: no templates"


# --------------------------------------------------------------------------- missing / empty files


def test_default_path_missing_is_an_empty_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_catalog().templates == []
    assert load_catalog("templates.yml").templates == []
    assert catalog_from_env({}).templates == []


def test_configured_path_missing_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CatalogError) as info:
        load_catalog("conf/wa.yml")
    assert str(info.value) == "conf/wa.yml: file not found"
    with pytest.raises(CatalogError, match="^templates.yml: file not found$"):
        catalog_from_env({"SMS_TEMPLATES_FILE": "templates.yml"})
    with pytest.raises(CatalogError, match="^templates.yml: file not found$"):
        load_catalog(None, must_exist=True)


def test_env_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "templates:\n")
    assert catalog_from_env({"SMS_TEMPLATES_FILE": str(path)}).templates == []


def test_empty_and_comment_only_files_are_empty(tmp_path: Path) -> None:
    assert load_catalog(write(tmp_path, "")).templates == []
    assert load_catalog(write(tmp_path, "# nothing yet\n")).templates == []
    assert load_catalog(write(tmp_path, "templates: []\n")).templates == []


# --------------------------------------------------------------------------- broken files


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: a
            sender: twlowa
           body: x
        """,
    )
    assert problems(path) == [f"{path}:4: YAML syntax error: expected <block end>, but found '<block mapping start>'"]


def test_tab_indentation_is_a_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("templates:\n  - name: a\n\tsender: gswa\n", encoding="utf-8")
    assert problems(path) == [f"{path}:3: YAML syntax error: found character '\\t' that cannot start any token"]


def test_unknown_sender(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: a
            sender: whatsapp
            template_id: x
            body: hi
        """,
    )
    assert problems(path) == [
        f"{path}:3: template 'a': unknown sender 'whatsapp'; templates can be sent by: "
        "twlowa, gswa, textus, bird, sandbox"
    ]


def test_twlo_cannot_send_templates(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: sms
            sender: twlo
            template_id: x
            body: hi
        """,
    )
    assert problems(path) == [
        f"{path}:3: template 'sms': sender 'twlo' (Twilio SMS) cannot send templates; "
        "use 'twlowa' for Twilio WhatsApp"
    ]


def test_duplicate_template_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: hello
            sender: sandbox
            body: hi
          - name: other
            sender: sandbox
            body: hi
          - name: hello
            sender: sandbox
            body: hi again
        """,
    )
    assert problems(path) == [f"{path}:8: duplicate template name 'hello' (first on line 2)"]


def test_gswa_variable_without_group(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: ship
            sender: gswa
            template_id: gs-1
            body: Order {{1}}
            variables:
              - key: "1"
                label: Order
                group: Body
              - key: "2"
                label: Date
        """,
    )
    assert problems(path) == [
        f"{path}:10: template 'ship': variable '2' needs a group (Header, Body or Buttons): "
        "Gupshup sends variables per template component"
    ]


def test_bird_missing_locale_and_project(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: welcome
            sender: bird
            project_id: ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318
            body: Hi
          - name: welcome2
            sender: bird
            locale: en
            body: Hi
        """,
    )
    assert problems(path) == [
        f"{path}:2: template 'welcome': bird template needs locale (e.g. en or en-US)",
        f"{path}:6: template 'welcome2': bird template needs project_id (the Bird template project id)",
    ]


def test_unused_variable_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: remind
            sender: textus
            template_id: dkDdrbR
            body: "Your appointment is on {{appt_date}}"
            variables:
              - key: appt_date
                label: Date
              - key: appt_time
                label: Time
        """,
    )
    assert problems(path) == [
        f"{path}:9: template 'remind': variable 'appt_time' is not used in body; "
        "add {{appt_time}} to body or remove it"
    ]


def test_placeholder_without_variable_names_its_own_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        templates:
          - name: confirm
            sender: twlowa
            template_id: {TWILIO_SID}
            body: |
              Hi {{{{1}}}},

              see you on {{{{2}}}}.
            variables:
              - key: 1
                label: Name
        """,
    )
    # Line 8 is where `{{2}}` sits inside the literal block (after a blank line).
    assert problems(path) == [
        f"{path}:8: template 'confirm': placeholder {{{{2}}}} in body has no variable; add a variable '2'"
    ]


def test_placeholder_in_a_one_line_body_points_at_body(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: ship
            sender: gswa
            template_id: gs-1
            body: "Hi {{Header.1}}, order {{1}}"
            variables:
              - key: 1
                group: body
                label: Order
        """,
    )
    assert problems(path) == [
        f"{path}:5: template 'ship': placeholder {{{{Header.1}}}} in body has no variable; "
        "add a variable 'Header.1'"
    ]


def test_unknown_field_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: x
            sender: sandbox
            body: Hi {{name}}
            colour: red
            variables:
              - key: name
                lable: Name
        """,
    )
    assert problems(path) == [
        f"{path}:5: template 'x': unknown field 'colour'",
        f"{path}:7: template 'x': missing field 'label'",
        f"{path}:8: template 'x': unknown field 'lable' (did you mean 'label'?)",
    ]


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, "template:\n  - name: x\n")
    assert problems(path) == [f"{path}:1: unknown field 'template' (did you mean 'templates'?)"]


def test_duplicate_yaml_key_in_one_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: x
            sender: sandbox
            body: one
            body: two
        """,
    )
    assert problems(path) == [f"{path}:5: duplicate key 'body' (also on line 4)"]


def test_all_problems_are_reported_together_in_line_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        templates:
          - name: a
            sender: twlo
            body: hi
          - name: b
            sender: twlowa
            template_id: HX12
            body: Hi {{{{1}}}}
            variables:
              - key: "1"
                label: Name
              - key: "1"
                label: Again
          - name: a
            sender: bird
            project_id: not-a-uuid
            locale: en
            body: Hi
          - name: Bad Name
            sender: gswa
            template_id: {TWILIO_SID}
            body: Hi
            media: maybe
        """,
    )
    assert problems(path) == [
        f"{path}:3: template 'a': sender 'twlo' (Twilio SMS) cannot send templates; use 'twlowa' for Twilio WhatsApp",
        f"{path}:7: template 'b': template_id 'HX12' is not a Twilio content SID (HX followed by 32 hex characters)",
        f"{path}:12: template 'b': duplicate variable '1' (first is variable 1)",
        f"{path}:14: duplicate template name 'a' (first on line 2)",
        f"{path}:16: template 'a': project_id 'not-a-uuid' is not a Bird project id "
        "(a UUID like ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318)",
        f"{path}:19: template 'Bad Name': name: use a short name of lowercase letters, digits, '-' and '_' "
        "(at most 50), e.g. appt-reminder",
        f"{path}:23: template 'Bad Name': media: Input should be a valid boolean, unable to interpret input",
    ]


def test_field_errors_and_cross_field_problems_are_reported_in_one_run(tmp_path: Path) -> None:
    # A field error no longer hides the checks across fields: one `smsbot templates check` run
    # shows the bad name, the bad SID, the placeholder without a variable and the unused variable.
    path = write(
        tmp_path,
        """
        templates:
          - name: Bad Name
            sender: twlowa
            template_id: HX12
            body: |
              Hi {{1}}
              see you on {{2}}
            variables:
              - key: 1
                label: Name
                exampel: John
              - key: 3
                label: Unused
          - name: t
            sender: textus
            body: Hi {{who}}
            locale: en
            variables:
              - key: who
          - name: b
            sender: bird
            body: Hi {{x}}
            variables: 7
        """,
    )
    assert problems(path) == [
        f"{path}:2: template 'Bad Name': name: use a short name of lowercase letters, digits, '-' and '_' "
        "(at most 50), e.g. appt-reminder",
        f"{path}:4: template 'Bad Name': template_id 'HX12' is not a Twilio content SID "
        "(HX followed by 32 hex characters)",
        f"{path}:7: template 'Bad Name': placeholder {{{{2}}}} in body has no variable; add a variable '2'",
        f"{path}:11: template 'Bad Name': unknown field 'exampel' (did you mean 'example'?)",
        f"{path}:12: template 'Bad Name': variable '3' is not used in body; add {{{{3}}}} to body or remove it",
        f"{path}:14: template 't': textus template needs template_id (the TextUs template id)",
        f"{path}:17: template 't': locale is only for bird templates",
        f"{path}:19: template 't': missing field 'label'",
        f"{path}:20: template 'b': bird template needs project_id (the Bird template project id)",
        f"{path}:20: template 'b': bird template needs locale (e.g. en or en-US)",
        f"{path}:23: template 'b': variables: Input should be a valid list",
    ]


def test_cross_field_checks_skip_what_a_field_error_makes_unknowable(tmp_path: Path) -> None:
    # A bad sender, a misspelt field, a bad group or key: the checks that would read them stay
    # quiet rather than repeat the problem in other words ("needs template_id", "no variable").
    path = write(
        tmp_path,
        f"""
        templates:
          - name: s
            sender: whatsapp
            body: Hi {{{{1}}}}
          - name: t
            sender: twlowa
            templat_id: {TWILIO_SID}
            body: Hi {{{{1}}}}
            variables:
              - {{key: 1, label: Name}}
          - name: g
            sender: gswa
            template_id: gs-1
            media: maybe
            locale: en
            body: Hi {{{{Header.1}}}} {{{{1}}}}
            variables:
              - {{key: 1, group: Head, label: Name}}
              - {{key: 1, group: Body, label: Order}}
          - name: k
            sender: textus
            template_id: dkDdrbR
            body: Hi {{{{a-b}}}}
            variables:
              - {{key: a-b, label: Name}}
        """,
    )
    assert problems(path) == [
        f"{path}:3: template 's': unknown sender 'whatsapp'; templates can be sent by: "
        "twlowa, gswa, textus, bird, sandbox",
        f"{path}:7: template 't': unknown field 'templat_id' (did you mean 'template_id'?)",
        f"{path}:14: template 'g': media: Input should be a valid boolean, unable to interpret input",
        f"{path}:18: template 'g': group must be Header, Body or Buttons, not 'Head'",
        f"{path}:25: template 'k': key: use letters, digits and _ only",
    ]


def test_sender_specific_fields_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        templates:
          - name: t
            sender: textus
            locale: en
            media: true
            body: Hi {{who}}
            variables:
              - key: who
                label: Who
                group: Body
          - name: w
            sender: twlowa
            template_id: HX0123456789abcdef0123456789abcdef
            body: Hi {{name}}
            variables:
              - key: name
                label: Name
        """,
    )
    assert problems(path) == [
        f"{path}:2: template 't': textus template needs template_id (the TextUs template id)",
        f"{path}:4: template 't': locale is only for bird templates",
        f"{path}:5: template 't': media is only for gswa templates (a Twilio media URL is a numbered variable)",
        f"{path}:10: template 't': group is only for gswa templates",
        f"{path}:16: template 'w': variable key 'name' must be a number ('1', '2', ...) for twlowa",
    ]


def test_slack_limits_on_labels_and_keys(tmp_path: Path) -> None:
    long_label = "L" * 2001
    long_key = "k" * 101
    path = write(
        tmp_path,
        f"""
        templates:
          - name: x
            sender: sandbox
            body: Hi {{{{a}}}} {{{{{long_key}}}}}
            variables:
              - key: a
                label: {long_label}
              - key: {long_key}
                label: K
        """,
    )
    assert problems(path) == [
        f"{path}:7: template 'x': label: String should have at most 2000 characters",
        f"{path}:8: template 'x': key: String should have at most 100 characters",
    ]


def test_parse_catalog_from_text_uses_the_given_file_name() -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog("- just a list\n", "inline.yml")
    assert str(info.value) == "inline.yml:1: the file must be a mapping with a 'templates' list"


def test_yaml_merge_keys_are_followed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        defaults: &bird
          sender: bird
          project_id: {BIRD_PROJECT}
          locale: en
        templates:
          - <<: *bird
            name: a
            body: Hi
        """,
    )
    # `defaults` itself is not a catalog field, but the merged template is read correctly.
    assert problems(path) == [f"{path}:1: unknown field 'defaults'"]


# --------------------------------------------------------------------------- models built in code


def test_models_refuse_inconsistent_templates_when_built_directly() -> None:
    with pytest.raises(ValidationError, match="needs locale"):
        TemplateDef(name="w", sender="bird", project_id=BIRD_PROJECT, body="Hi")
    with pytest.raises(ValidationError, match="not used in body"):
        TemplateDef(name="w", sender="sandbox", body="Hi", variables=[TemplateVariable(key="a", label="A")])
    with pytest.raises(ValidationError, match="duplicate template name 'a'"):
        Catalog(templates=[TemplateDef(name="a", sender="sandbox", body="x")] * 2)
    assert TemplateVariable(key="1", label="x", group="buttons").group == "Buttons"


# --------------------------------------------------------------------------- values


def test_validate_values_reports_missing_long_unknown_and_media(catalog: Catalog) -> None:
    tpl = catalog.get("order-shipped")
    errors = validate_values(tpl, {"Header.1": "John", "1": "  ", "colour": "red"})
    assert errors == {
        "colour": "Unknown variable; order-shipped takes: Header.1, Body.1, Body.2, Buttons.1",
        "Body.1": "Required: Order number",
        "Body.2": "Required: Ship date",
        "MEDIA_URL": "Required: media URL",
    }
    assert validate_values(tpl, {"Body.1": "A", "body.2": "B", "Header.1": "J"}, "ftp://x")["MEDIA_URL"] == (
        "Media URL must be a public http(s) URL"
    )
    confirm = catalog.get("appt-confirm")
    assert validate_values(confirm, {"1": "J" * 61, "2": "a@b.c", "3": "d"}) == {
        "1": "Too long: 61 characters; at most 60"
    }
    assert validate_values(confirm, {"1": "J", "2": "a", "3": "d"}, "https://x/y.png") == {
        "MEDIA_URL": "This template has no media; remove the media URL"
    }
    sandbox = TemplateDef(name="plain", sender="sandbox", body="Hi")
    assert validate_values(sandbox, {"x": "1"}) == {"x": "Unknown variable; plain takes no variables"}


def test_to_template_send_twlowa(catalog: Catalog) -> None:
    send = to_template_send(catalog.get("appt-confirm"), {"1": "John", "2": "john@example.com", "3": "11-Jul-2024"})
    assert send == TemplateSend(
        id=TWILIO_SID, variables={"1": "John", "2": "john@example.com", "3": "11-Jul-2024"}
    )


def test_to_template_send_gswa_matches_the_sociocs_example(catalog: Catalog) -> None:
    values = {"Header.1": "John", "1": "john@example.com", "Body.2": "11-Jul-2024", "Buttons.1": "Quick Reply Text"}
    send = to_template_send(catalog.get("order-shipped"), values, media_url="https://placehold.co/600x400")
    assert send.id == "7c1f0a52-3d4e-4b8f-9a61-2e5d8c0b9f13"
    assert send.variables == {
        "MEDIA_URL": "https://placehold.co/600x400",
        "Header": {"1": "John"},
        "Body": {"1": "john@example.com", "2": "11-Jul-2024"},
        "Buttons": {"1": "Quick Reply Text"},
    }
    assert list(send.variables) == ["MEDIA_URL", "Header", "Body", "Buttons"]


def test_to_template_send_gswa_omits_empty_groups_and_blank_optionals(catalog: Catalog) -> None:
    values = {"Header.1": "John", "1": "A-1", "2": "today", "Buttons.1": "", "MEDIA_URL": "https://x.test/a.jpg"}
    send = to_template_send(catalog.get("order-shipped"), values)
    assert send.variables == {
        "MEDIA_URL": "https://x.test/a.jpg",
        "Header": {"1": "John"},
        "Body": {"1": "A-1", "2": "today"},
    }


def test_to_template_send_textus(catalog: Catalog) -> None:
    send = to_template_send(catalog.get("appt-reminder"), {"appt_date": "1/1", "appt_time": "12:00"})
    assert send == TemplateSend(id="dkDdrbR", variables={"appt_date": "1/1", "appt_time": "12:00"})


def test_to_template_send_bird(catalog: Catalog) -> None:
    send = to_template_send(catalog.get("welcome"), {"name": " Robert ", "code": "W10"})
    assert send == TemplateSend(
        id=BIRD_PROJECT,
        variables={"name": "Robert", "code": "W10"},
        project_id=BIRD_PROJECT,
        version="latest",
        locale="en",
    )


def test_to_template_send_sandbox_is_flat_like_twlowa(catalog: Catalog) -> None:
    send = to_template_send(catalog.get("sandbox-test"), {"1": "hello"})
    assert send == TemplateSend(id="sandbox-test", variables={"1": "hello"})


def test_to_template_send_refuses_bad_values(catalog: Catalog) -> None:
    with pytest.raises(TemplateValuesError) as info:
        to_template_send(catalog.get("appt-reminder"), {"appt_date": "1/1"})
    assert info.value.errors == {"appt_time": "Required: Appointment time"}
    assert str(info.value) == "Template 'appt-reminder': appt_time: Required: Appointment time"


# --------------------------------------------------------------------------- preview


def test_render_preview_fills_values_and_shows_labels_for_the_rest(catalog: Catalog) -> None:
    assert render_preview(catalog.get("appt-reminder"), {"appt_date": "1/1"}) == (
        "Hi there, please confirm your appointment on 1/1 at [Appointment time]:"
    )
    assert render_preview(catalog.get("appt-confirm"), {"1": "John"}) == (
        "Hi John, your appointment is confirmed for [Date].\nQuestions? Write to [Contact email]."
    )


def test_render_preview_gswa_plain_placeholders_are_body_variables(catalog: Catalog) -> None:
    text = render_preview(catalog.get("order-shipped"), {"1": "A-1042", "Header.1": "John"})
    assert text == "Hello John\nYour order A-1042 ships on [Ship date].\n[Button: [Quick reply text]]"


# --------------------------------------------------------------------------- command values


def test_parse_command_values_tokens() -> None:
    args = ["name=John", "date=11-Jul-2024", "note=two words", "url=https://x.test/?a=1&b=2", "Body.1=x", "empty="]
    assert parse_command_values(args) == {
        "name": "John",
        "date": "11-Jul-2024",
        "note": "two words",
        "url": "https://x.test/?a=1&b=2",
        "Body.1": "x",
        "empty": "",
    }


def test_parse_command_values_takes_text_exactly_as_given() -> None:
    # The /sms router has already run slack_unescape: nothing is unescaped a second time,
    # so `&reg`, `&copy`, `&para`, `&not` in a URL never become ®, ©, ¶, ¬.
    url = "https://cdn.example.com/i.jpg?w=1&region=us&copy=2&para=3&not=4"
    text = f"MEDIA_URL={url} q=a&amp;b link=<https://x.test>"
    assert parse_command_values(text) == {"MEDIA_URL": url, "q": "a&amp;b", "link": "<https://x.test>"}


def test_parse_command_values_after_slack_unescape_of_raw_slack_text() -> None:
    # What a caller holding raw Slack text does (the router does it for every /sms command).
    raw = ("name=John \u201cnote=two words\u201d MEDIA_URL=<https://cdn.example.com/i.jpg?w=1&amp;region=us> "
           "q=a&amp;b&amp;copy=1 lt=&lt;b&gt;")
    assert parse_command_values(slack_unescape(raw)) == {
        "name": "John",
        "note": "two words",
        "MEDIA_URL": "https://cdn.example.com/i.jpg?w=1&region=us",
        "q": "a&b&copy=1",
        "lt": "<b>",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=O'Brien b=it\u2019s c=\u2018hi\u2019", {"a": "O'Brien", "b": "it\u2019s", "c": "\u2018hi\u2019"}),
        ("a=C:\\new\\path b=x\\ c=\\\"q\\\"", {"a": "C:\\new\\path", "b": "x\\", "c": "\\q\\"}),
        ('"note=two words" n=1', {"note": "two words", "n": "1"}),
        ('note="two words" n=1', {"note": "two words", "n": "1"}),
        ("\u201cnote=two words\u201d x=\u201cO'Brien & co\u201d", {"note": "two words", "x": "O'Brien & co"}),
        ('a="" b= c="x"y', {"a": "", "b": "", "c": "xy"}),
        ("size=5\u201d  t=a\u00a0u=b", {"size": "5\u201d", "t": "a", "u": "b"}),
    ],
)
def test_parse_command_values_tokenises_like_the_send_command(text: str, expected: dict[str, str]) -> None:
    assert parse_command_values(text) == expected
    assert split_command_values(text) == [f"{k}={v}" for k, v in expected.items()]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["John"], "'John' is not key=value; write e.g. name=John"),
        (["=John"], "'=John' is not key=value; write e.g. name=John"),
        (["na me=x"], "'na me' is not a variable name; use letters, digits, _ (or Body.1 for gswa)"),
        (["a=1", "a=2"], "'a' is given twice"),
        ('note="open', 'A quote is not closed; write "note=two words" with both quotes.'),
        ('a=1 "b=two words', 'A quote is not closed; write "note=two words" with both quotes.'),
        ("a=1 \u201cb=two words", 'A quote is not closed; write "note=two words" with both quotes.'),
        ("a=O'Brien b", "'b' is not key=value; write e.g. name=John"),
    ],
)
def test_parse_command_values_rejects(args: list[str] | str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_command_values(args)
    assert str(info.value) == message


def test_command_values_feed_the_template(catalog: Catalog) -> None:
    values = parse_command_values('appt_date=1/1 "appt_time=12:00"')
    assert to_template_send(catalog.get("appt-reminder"), values).variables == {
        "appt_date": "1/1",
        "appt_time": "12:00",
    }


@pytest.mark.parametrize("locale", ["en", "en-US", "pt-BR", "zh-Hant-TW", "es-419"])
def test_bird_bcp47_locales_load(tmp_path: Path, locale: str) -> None:
    path = write(tmp_path, f"""
        templates:
          - name: welcome
            sender: bird
            project_id: {BIRD_PROJECT}
            locale: {locale}
            body: Hi
        """)
    assert load_catalog(path).templates[0].locale == locale


@pytest.mark.parametrize("locale", ["en_US", "pt_br"])
def test_bird_underscore_locale_is_refused_at_load(tmp_path: Path, locale: str) -> None:
    path = write(tmp_path, f"""
        templates:
          - name: welcome
            sender: bird
            project_id: {BIRD_PROJECT}
            locale: {locale}
            body: Hi
        """)
    fixed = locale.replace("_", "-")
    assert problems(path) == [
        f"{path}:5: template 'welcome': locale '{locale}' uses an underscore; Bird takes BCP 47 locales "
        f"with a hyphen: write locale: {fixed}"
    ]
