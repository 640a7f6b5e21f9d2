"""The template modal's builders, reading it back, CSV columns and `/sms send --template`."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.core.sending import UserError
from bot.core.templates import Catalog, TemplateValuesError, parse_catalog, validate_values
from bot.slack.blocks.templates import (
    CHOOSE_ACTION,
    CHOOSE_BLOCK,
    PREVIEW_BLOCK,
    TEMPLATE_MODAL,
    VAR_ACTION,
    ModalMeta,
    SenderInfo,
    ViewLimitError,
    catalog_listing,
    check_view,
    chosen_in_state,
    errors_for_blocks,
    map_keys,
    media_block_id,
    recipient_from_state,
    template_for_recipient,
    template_modal,
    template_options,
    values_from_state,
    var_block_id,
)
from bot.slack.commands import parse_send, slack_unescape
from bot.slack.listeners.templates import template_from_command
from providers.base import TemplateSend
from tests.fakes.slack_requests import normalize_values

BIRD_PROJECT = "ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318"
SID = "HX0123456789abcdef0123456789abcdef"
LABELS = {"twlowa": "Twilio WhatsApp", "gswa": "Gupshup WhatsApp", "textus": "TextUs", "bird": "Bird",
          "sandbox": "Sandbox"}

CATALOG_YAML = f"""
templates:
  - name: appt-confirm
    sender: twlowa
    template_id: {SID}
    description: Appointment confirmation
    body: |
      Hi {{{{1}}}}, your appointment is confirmed for {{{{3}}}}.
      Questions? Write to {{{{2}}}}.
    variables:
      - {{key: 1, label: Customer name, example: John, max_length: 60}}
      - {{key: 2, label: Contact email, example: john@example.com}}
      - {{key: 3, label: Date, example: 11-Jul-2024}}
  - name: order-shipped
    sender: gswa
    template_id: 7c1f0a52-3d4e-4b8f-9a61-2e5d8c0b9f13
    media: true
    body: |
      Hello {{{{Header.1}}}}
      Your order {{{{1}}}} ships on {{{{2}}}}.
      [Button: {{{{Buttons.1}}}}]
    variables:
      - {{key: 1, group: Header, label: Customer name}}
      - {{key: 1, group: Body, label: Order number}}
      - {{key: 2, group: Body, label: Ship date}}
      - {{key: 1, group: Buttons, label: Quick reply text, required: false}}
  - name: appt-reminder
    sender: textus
    template_id: dkDdrbR
    body: "Please confirm your appointment on {{{{appt_date}}}} at {{{{appt_time}}}}:"
    variables:
      - {{key: appt_date, label: Appointment date}}
      - {{key: appt_time, label: Appointment time}}
  - name: welcome
    sender: bird
    project_id: {BIRD_PROJECT}
    locale: en
    body: Welcome {{{{name}}}}! Your code is {{{{code}}}}.
    variables:
      - {{key: name, label: First name}}
      - {{key: code, label: Welcome code, max_length: 20}}
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return parse_catalog(CATALOG_YAML, "test.yml")


def senders(*configured: str) -> SenderInfo:
    names = configured or ("twlowa", "gswa", "textus", "bird", "sandbox")
    return SenderInfo(frozenset(names), lambda n: LABELS.get(n, n))


def block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    found = [b for b in view["blocks"] if b.get("block_id") == block_id]
    assert len(found) == 1, f"{block_id} not in {[b.get('block_id') for b in view['blocks']]}"
    return found[0]


def inputs(view: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(block_id, label, optional) of every input block, in order."""
    return [(b["block_id"], b["label"]["text"], b["optional"]) for b in view["blocks"] if b["type"] == "input"]


def many_variables(sender: str, count: int, media: bool = False) -> Catalog:
    if sender == "gswa":
        groups = ["Header"] * 5 + ["Buttons"] * 5 + ["Body"] * (count - 10)
        counters: dict[str, int] = {}
        vars_, refs = [], []
        for group in groups:
            counters[group] = counters.get(group, 0) + 1
            key = counters[group]
            vars_.append(f"      - {{key: {key}, group: {group}, label: {group} value number {key}, example: x}}")
            refs.append(f"{{{{{group}.{key}}}}}")
        extra = "    template_id: gs-1\n" + ("    media: true\n" if media else "")
    else:
        vars_ = [f"      - {{key: v{i}, label: Variable number {i}, example: value {i}}}" for i in range(count)]
        refs = [f"{{{{v{i}}}}}" for i in range(count)]
        extra = "    template_id: big1\n"
    text = (f"templates:\n  - name: big\n    sender: {sender}\n{extra}    body: \"{' '.join(refs)}\"\n"
            "    variables:\n" + "\n".join(vars_) + "\n")
    return parse_catalog(text, "big.yml")


# --------------------------------------------------------------------------- the modal


def test_modal_before_a_template_is_chosen_offers_every_template(catalog: Catalog) -> None:
    view = template_modal(catalog, senders(), ModalMeta(channel_id="C1", response_url="https://r"))
    assert view["callback_id"] == TEMPLATE_MODAL
    assert view["title"]["text"] == "WhatsApp template" and view["submit"]["text"] == "Send"
    choose = block(view, CHOOSE_BLOCK)
    assert choose["dispatch_action"] is True and choose["optional"] is False
    element = choose["element"]
    assert element["type"] == "static_select" and element["action_id"] == CHOOSE_ACTION
    assert [o["value"] for o in element["options"]] == ["appt-confirm", "order-shipped", "appt-reminder", "welcome"]
    assert element["options"][0]["text"]["text"] == "appt-confirm · Twilio WhatsApp"
    assert "initial_option" not in element
    assert inputs(view) == [
        ("tpl", "Template", False), ("to", "Phone number", False), ("name", "Recipient name", True),
        ("when_dt", "Send later", True), ("when_date", "…or pick a date", True),
        ("when_time", "…and a time (your time zone)", True),
    ]
    assert ModalMeta.load(view["private_metadata"]) == ModalMeta(channel_id="C1", response_url="https://r")
    assert view["blocks"][-3]["element"]["type"] == "datetimepicker"


def test_modal_for_twilio_template_asks_exactly_its_variables(catalog: Catalog) -> None:
    tpl = catalog.get("appt-confirm")
    view = template_modal(catalog, senders(), ModalMeta(channel_id="C1"), tpl)
    assert inputs(view)[1:4] == [
        ("v|appt-confirm|1", "Customer name", False),
        ("v|appt-confirm|2", "Contact email", False),
        ("v|appt-confirm|3", "Date", False),
    ]
    first = block(view, var_block_id(tpl, "1"))
    assert first["dispatch_action"] is True
    assert first["element"] == {
        "type": "plain_text_input", "action_id": VAR_ACTION, "max_length": 60,
        "placeholder": {"type": "plain_text", "text": "e.g. John", "emoji": True},
        "dispatch_action_config": {"trigger_actions_on": ["on_enter_pressed", "on_character_entered"]},
    }
    assert first["hint"]["text"] == "Fills {{1}}"
    assert block(view, CHOOSE_BLOCK)["element"]["initial_option"]["value"] == "appt-confirm"
    assert block(view, "tpl_about")["elements"][0]["text"] == (
        "Appointment confirmation — Sent by Twilio WhatsApp (twlowa)")
    assert ModalMeta.load(view["private_metadata"]).template == "appt-confirm"
    assert block(view, PREVIEW_BLOCK)["elements"][0]["text"] == (
        "*Preview*\n>Hi [Customer name], your appointment is confirmed for [Date].\n>Questions? Write to [Contact email].")


def test_modal_for_gupshup_template_groups_inputs_under_headers_with_media_first(catalog: Catalog) -> None:
    tpl = catalog.get("order-shipped")
    view = template_modal(catalog, senders(), ModalMeta(), tpl)
    shown = [(b["type"], b.get("block_id"), (b.get("label") or b.get("text"))["text"])
             for b in view["blocks"][1:] if b["type"] in ("header", "input")][:9]
    assert shown == [
        ("header", "g|Header", "Header"),
        ("input", "v|order-shipped|MEDIA_URL", "Media URL"),
        ("input", "v|order-shipped|Header.1", "Customer name"),
        ("header", "g|Body", "Body"),
        ("input", "v|order-shipped|Body.1", "Order number"),
        ("input", "v|order-shipped|Body.2", "Ship date"),
        ("header", "g|Buttons", "Buttons"),
        ("input", "v|order-shipped|Buttons.1", "Quick reply text"),
        ("input", "to", "Phone number"),
    ]
    assert block(view, media_block_id(tpl))["optional"] is False
    assert block(view, "v|order-shipped|Buttons.1")["optional"] is True
    assert block(view, "v|order-shipped|Body.1")["hint"]["text"] == "Fills {{1}}"
    assert block(view, "v|order-shipped|Header.1")["hint"]["text"] == "Fills {{Header.1}}"


def test_redraw_keeps_block_and_action_ids_and_refreshes_the_preview(catalog: Catalog) -> None:
    tpl = catalog.get("welcome")
    before = template_modal(catalog, senders(), ModalMeta(), tpl)
    after = template_modal(catalog, senders(), ModalMeta(), tpl, {"name": "Robert <!channel>", "code": "W10"})

    def ids(view: dict[str, Any]) -> list[tuple[Any, Any]]:
        return [(b.get("block_id"), (b.get("element") or {}).get("action_id")) for b in view["blocks"]]

    assert ids(before) == ids(after)
    assert block(before, PREVIEW_BLOCK)["elements"][0]["text"] == (
        "*Preview*\n>Welcome [First name]! Your code is [Welcome code].")
    # Typed text cannot ping a channel or become a link in Slack.
    assert block(after, PREVIEW_BLOCK)["elements"][0]["text"] == (
        "*Preview*\n>Welcome Robert &lt;!channel&gt;! Your code is W10.")


def test_template_for_unconfigured_sender_is_marked_and_warned(catalog: Catalog) -> None:
    only_sociocs = senders("twlowa", "gswa")
    view = template_modal(catalog, only_sociocs, ModalMeta(), catalog.get("welcome"))
    texts = [o["text"]["text"] for o in block(view, CHOOSE_BLOCK)["element"]["options"]]
    assert texts[2:] == ["appt-reminder · TextUs (not configured)", "welcome · Bird (not configured)"]
    assert "not configured here" in block(view, "tpl_warning")["text"]["text"]


@pytest.mark.parametrize("sender", ["gswa", "textus", "twlowa"])
def test_forty_variables_stay_within_block_kit_limits(sender: str) -> None:
    catalog = many_variables(sender, 40) if sender != "twlowa" else None
    if catalog is None:
        lines = "\n".join(f"      - {{key: {i}, label: Field {i}}}" for i in range(1, 41))
        body = " ".join(f"{{{{{i}}}}}" for i in range(1, 41))
        catalog = parse_catalog(f"templates:\n  - name: big\n    sender: twlowa\n    template_id: {SID}\n"
                                f"    body: \"{body}\"\n    variables:\n{lines}\n", "big.yml")
    tpl = catalog.templates[0]
    values = {v.ref: "x" * 200 for v in tpl.variables}
    view = template_modal(catalog, senders(), ModalMeta(channel_id="C1", response_url="https://x/" + "r" * 200),
                          tpl, values)
    View(**view).to_dict()  # slack_sdk's own limit checks raise here
    assert len(view["blocks"]) <= 100
    var_blocks = [b for b in view["blocks"] if str(b.get("block_id", "")).startswith("v|")]
    assert len(var_blocks) == 40
    assert len(block(view, PREVIEW_BLOCK)["elements"][0]["text"]) <= 2000


def test_ninety_gupshup_variables_with_media_drop_decorations_not_inputs() -> None:
    catalog = many_variables("gswa", 90, media=True)
    tpl = catalog.templates[0]
    view = template_modal(catalog, senders(), ModalMeta(), tpl)
    View(**view).to_dict()
    assert len(view["blocks"]) <= 100
    assert not [b for b in view["blocks"] if b["type"] in ("header", "divider")]
    labels = [b["label"]["text"] for b in view["blocks"] if str(b.get("block_id", "")).startswith("v|")]
    assert len(labels) == 91  # 90 variables and the media URL
    assert labels[:2] == ["Header · Media URL", "Header · Header value number 1"]
    assert {"to", "when_dt", "when_date", "when_time"} <= {b.get("block_id") for b in view["blocks"]}


def test_check_view_refuses_what_slack_would_refuse(catalog: Catalog) -> None:
    view = template_modal(catalog, senders(), ModalMeta(), catalog.get("welcome"))
    too_many = {**view, "blocks": view["blocks"] + [{"type": "divider"}] * 100}
    with pytest.raises(ViewLimitError, match="100 blocks"):
        check_view(too_many)
    long_input = {**view, "blocks": [{**b, "element": {**b["element"], "max_length": 5000}}
                                     if b.get("block_id") == "to" else b for b in view["blocks"]]}
    with pytest.raises(ViewLimitError, match="max_length"):
        check_view(long_input)
    with pytest.raises(ViewLimitError, match="title"):
        check_view({**view, "title": {"type": "plain_text", "text": "A title that is far too long"}})


def test_more_than_100_templates_use_a_searchable_external_select() -> None:
    entries = "\n".join(
        f"  - {{name: t{i:03d}, sender: textus, template_id: id{i}, body: 'Hi {{{{n}}}}', "
        f"variables: [{{key: n, label: Name}}]{', description: dental' if i % 10 == 0 else ''}}}"
        for i in range(150)
    )
    catalog = parse_catalog("templates:\n" + entries + "\n", "many.yml")
    view = template_modal(catalog, senders(), ModalMeta())
    element = block(view, CHOOSE_BLOCK)["element"]
    assert element["type"] == "external_select" and "options" not in element
    assert element["min_query_length"] == 0
    assert len(template_options(catalog, senders())) == 100
    assert [o["value"] for o in template_options(catalog, senders(), "t12")] == [f"t{i}" for i in range(120, 130)]
    assert [o["value"] for o in template_options(catalog, senders(), "DENTAL t0")][:3] == ["t000", "t010", "t020"]


# --------------------------------------------------------------------------- reading the view back


def test_submission_values_are_read_per_template_block(catalog: Catalog) -> None:
    tpl = catalog.get("order-shipped")
    state = normalize_values({
        CHOOSE_BLOCK: {CHOOSE_ACTION: {"selected_option": "order-shipped"}},
        "v|order-shipped|MEDIA_URL": {VAR_ACTION: " https://example.com/p.jpg "},
        "v|order-shipped|Header.1": {VAR_ACTION: "John"},
        "v|order-shipped|Body.1": {VAR_ACTION: "A-1042"},
        "v|order-shipped|Body.2": {VAR_ACTION: ""},
        "v|order-shipped|Buttons.1": {VAR_ACTION: None},
        "v|appt-confirm|1": {VAR_ACTION: "left over from another template"},
        "to": {"value": " +16175551212 "},
        "name": {"value": ""},
    })
    assert chosen_in_state(state) == "order-shipped"
    typed, media = values_from_state(tpl, state)
    assert typed == {"Header.1": "John", "Body.1": "A-1042"}
    assert media == "https://example.com/p.jpg"
    assert recipient_from_state(state) == ("+16175551212", None)
    assert errors_for_blocks(tpl, validate_values(tpl, typed, media)) == {"v|order-shipped|Body.2": "Required: Ship date"}
    assert errors_for_blocks(tpl, validate_values(tpl, {}, None))["v|order-shipped|MEDIA_URL"] == "Required: media URL"


# --------------------------------------------------------------------------- CSV columns (bulk)


def test_template_for_recipient_maps_columns_by_key_ref_or_label(catalog: Catalog) -> None:
    row = {"phone": "+16175551212", "name": "Jane", "Customer name": "John", "2": "john@example.com",
           "DATE": "label of 3", "3": "11-Jul-2024"}
    # DATE reaches variable 3 through its label; the column named 3 names it directly and wins.
    assert template_for_recipient(catalog.get("appt-confirm"), row) == TemplateSend(
        id=SID, variables={"1": "John", "2": "john@example.com", "3": "11-Jul-2024"})
    gswa = {"Phone": "+1", "media_url": "https://example.com/p.jpg", "header_1": "John", "1": "A-1",
            "Ship date": "12-Jul"}
    assert template_for_recipient(catalog.get("order-shipped"), gswa).variables == {
        "MEDIA_URL": "https://example.com/p.jpg", "Header": {"1": "John"}, "Body": {"1": "A-1", "2": "12-Jul"}}
    bird = template_for_recipient(catalog.get("welcome"), {"NAME": "Robert", "welcome_code": "W10"})
    assert bird == TemplateSend(id=BIRD_PROJECT, project_id=BIRD_PROJECT, version="latest", locale="en",
                                variables={"name": "Robert", "code": "W10"})
    with pytest.raises(TemplateValuesError) as info:
        template_for_recipient(catalog.get("appt-reminder"), {"appt_date": "1/1", "phone": "+1"})
    assert info.value.errors == {"appt_time": "Required: Appointment time"}


def test_map_keys_reports_unknown_keys(catalog: Catalog) -> None:
    values, media, unknown, twice = map_keys(catalog.get("welcome"), {"colour": "red", "code": "C"})
    assert values == {"code": "C"} and media is None and unknown == ["colour"] and twice == {}


def test_map_keys_reports_a_variable_given_twice(catalog: Catalog) -> None:
    # `First name` is the label of `name`: the direct key still wins for CSV columns, but the
    # clash is reported instead of the label's value vanishing silently.
    mapped = map_keys(catalog.get("welcome"), {"First name": "X", "name": "R", "colour": "red"})
    assert mapped.values == {"name": "R"} and mapped.unknown == ["colour"]
    assert mapped.twice == {"name": ["First name", "name"]}
    gswa = map_keys(catalog.get("order-shipped"), {"1": "A", "Body.1": "B", "MEDIA_URL": "https://a.test",
                                                   "media": "https://b.test", "Header.1": "J"})
    assert gswa.twice == {"Body.1": ["1", "Body.1"], "MEDIA_URL": ["MEDIA_URL", "media"]}
    assert map_keys(catalog.get("welcome"), {"name": "R", "code": "C"}).twice == {}


# --------------------------------------------------------------------------- /sms send --template


def command(text: str) -> Any:
    # As the /sms router does: Slack's escaping is undone once, on the whole text.
    return parse_send(slack_unescape(text), "US")


@pytest.mark.parametrize(
    ("text", "via", "expected"),
    [
        ("--template appt-confirm +16175551212 1=John 2=john@example.com \"3=11 Jul 2024\"", "twlowa",
         TemplateSend(id=SID, variables={"1": "John", "2": "john@example.com", "3": "11 Jul 2024"})),
        ("--template order-shipped +16175551212 MEDIA_URL=<https://example.com/p.jpg> Header.1=John 1=A-1 2=12-Jul",
         "gswa", TemplateSend(id="7c1f0a52-3d4e-4b8f-9a61-2e5d8c0b9f13", variables={
             "MEDIA_URL": "https://example.com/p.jpg", "Header": {"1": "John"}, "Body": {"1": "A-1", "2": "12-Jul"}})),
        ("--template appt-reminder +16175551212 appt_date=1/1 appt_time=12:00", "textus",
         TemplateSend(id="dkDdrbR", variables={"appt_date": "1/1", "appt_time": "12:00"})),
        ("--template WELCOME +16175551212 name=Robert code=W10", "bird",
         TemplateSend(id=BIRD_PROJECT, project_id=BIRD_PROJECT, locale="en",
                      variables={"name": "Robert", "code": "W10"})),
    ],
)
def test_command_builds_each_provider_shape(catalog: Catalog, text: str, via: str, expected: TemplateSend) -> None:
    cmd = command(text)
    assert template_from_command(catalog, senders(), cmd) == (expected, None)
    assert cmd.via == via


def test_command_values_reach_the_template_exactly_as_typed(catalog: Catalog) -> None:
    # Raw Slack text: a link with &amp; in it, apostrophes, backslashes, curly quotes.
    cmd = command("--template order-shipped +16175551212 "
                  "MEDIA_URL=<https://cdn.example.com/i.jpg?w=1&amp;region=us&amp;copy=2> "
                  "Header.1=O'Brien 1=C:\\new\\path \u201c2=it\u2019s 11 Jul\u201d \"Buttons.1=a &amp;para b\"")
    template, _ = template_from_command(catalog, senders(), cmd)
    assert template.variables == {
        "MEDIA_URL": "https://cdn.example.com/i.jpg?w=1&region=us&copy=2",
        "Header": {"1": "O'Brien"},
        "Body": {"1": "C:\\new\\path", "2": "it\u2019s 11 Jul"},
        "Buttons": {"1": "a &para b"},
    }


def test_command_takes_image_as_gupshup_media(catalog: Catalog) -> None:
    cmd = command("--template order-shipped --image https://example.com/p.jpg +16175551212 Header.1=J 1=A 2=B")
    template, _ = template_from_command(catalog, senders(), cmd)
    assert template.variables["MEDIA_URL"] == "https://example.com/p.jpg" and cmd.image_urls == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("--template nope +16175551212 a=b",
         "Unknown template 'nope'. Available templates: `appt-confirm`, `order-shipped`, `appt-reminder`, "
         "`welcome` (see `/sms templates`)."),
        ("--template appt-confirm +16175551212 2=x",
         "Template 'appt-confirm': Missing required variables: Customer name (`1=`), Date (`3=`)."),
        ("--template welcome +16175551212 name=R code=C colour=red",
         "Template 'welcome': Unknown variable `colour`: 'welcome' takes `name` (First name), `code` (Welcome code)."),
        ("--template welcome +16175551212 name=R code=" + "C" * 21,
         "Template 'welcome': `code`: Too long: 21 characters; at most 20."),
        ("--template welcome +16175551212 name=R code",
         "'code' is not key=value; write e.g. name=John"),
        ("--template welcome --via twlowa +16175551212 name=R code=C",
         "Template 'welcome' is sent by `bird`; drop `--via twlowa` or use `--via bird`."),
        ("--template appt-confirm --image https://example.com/a.png +16175551212 1=a 2=b 3=c",
         "Template 'appt-confirm' carries its own content: remove --image/--video/--file."),
        ("--template welcome +16175551212 name=R first_name=S code=C",
         "Template 'welcome': Variable `name` (First name) is given twice (as `name=` and `first_name=`); "
         "give it once.\nExample:"),
        ("--template order-shipped +16175551212 MEDIA_URL=https://a.test/p.jpg media=https://b.test/p.jpg "
         "Header.1=J 1=A Body.1=B body_1=C 2=D",
         "Template 'order-shipped': The media URL is given twice (as `MEDIA_URL=` and `media=`); give it once. "
         "Variable `Body.1` (Order number) is given twice (as `1=`, `Body.1=` and `body_1=`); give it once.\n"),
        ("--template welcome +16175551212 name=\"O'Brien code=C",
         'A quote is not closed; write "note=two words" with both quotes.'),
    ],
)
def test_command_errors_say_what_to_fix(catalog: Catalog, text: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        template_from_command(catalog, senders(), command(text))
    assert info.value.message.startswith(message), info.value.message


def test_command_error_gives_a_working_example(catalog: Catalog) -> None:
    with pytest.raises(UserError) as info:
        template_from_command(catalog, senders(), command("--template appt-confirm +16175551212"))
    example = info.value.message.splitlines()[-1]
    assert example == ("Example: `/sms send --template appt-confirm +16175551212 "
                       "1=John 2=john@example.com 3=11-Jul-2024`")
    cmd = command(example.removeprefix("Example: `/sms send ").rstrip("`"))
    assert template_from_command(catalog, senders(), cmd)[0].variables["3"] == "11-Jul-2024"


def test_command_refuses_a_template_whose_sender_is_not_configured(catalog: Catalog) -> None:
    with pytest.raises(UserError) as info:
        template_from_command(catalog, senders("twlowa", "sandbox"), command("--template welcome +16175551212 name=R"))
    assert info.value.message == (
        "Template 'welcome' is sent by Bird (bird), which is not configured here, so it cannot be sent. "
        "Configured senders: sandbox, twlowa.")


def test_command_with_an_empty_catalog_says_how_to_add_templates() -> None:
    with pytest.raises(UserError, match="No WhatsApp templates are set up"):
        template_from_command(Catalog(), senders(), command("--template x +16175551212"))


# --------------------------------------------------------------------------- /sms templates


def test_listing_names_sender_and_variables(catalog: Catalog) -> None:
    text = catalog_listing(catalog, senders("twlowa", "gswa", "textus"))
    assert text.splitlines() == [
        "*WhatsApp templates* (4)",
        "• `appt-confirm` via Twilio WhatsApp (twlowa): `1` Customer name, `2` Contact email, `3` Date",
        "• `order-shipped` via Gupshup WhatsApp (gswa): `MEDIA_URL` media URL, `Header.1` Customer name, "
        "`Body.1` Order number, `Body.2` Ship date, `Buttons.1` Quick reply text (optional)",
        "• `appt-reminder` via TextUs (textus): `appt_date` Appointment date, `appt_time` Appointment time",
        "• `welcome` via Bird (bird) — _sender not configured_: `name` First name, `code` Welcome code",
        "Send one with `/sms template`, or `/sms send --template NAME +16175551212 key=value ...`.",
    ]
    assert catalog_listing(Catalog(), senders()).startswith("No WhatsApp templates are set up.")

