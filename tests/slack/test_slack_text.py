"""The one cap for Slack text: after escaping, never inside an entity or a mention, and says so."""

from __future__ import annotations

from bot.slack.blocks.templates import catalog_listing
from bot.slack.text import CUT_MARK, MESSAGE_TEXT, SECTION_TEXT, cap, escape, fit, shown


def test_cap_cuts_after_escaping_without_breaking_an_entity() -> None:
    text = escape("&" * 5000)  # 25,000 characters once escaped
    out = cap(text, SECTION_TEXT)
    assert len(out) <= SECTION_TEXT and out.endswith(CUT_MARK)
    assert out[: -len(CUT_MARK)].replace("&amp;", "") == ""  # whole entities only
    assert shown("a<b" * 2000, 100).endswith(CUT_MARK) and len(shown("a<b" * 2000, 100)) <= 100
    assert cap("short", 10) == "short"


def test_cap_never_leaves_half_a_mention() -> None:
    out = cap("x" * 90 + "<@U12345678>", 100)
    assert "<@" not in out and out.endswith(CUT_MARK)


def test_fit_caps_every_text_where_slack_limits_it() -> None:
    big = escape("R&D " * 20_000)
    payload = fit({"text": big, "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": big}, "fields": [{"type": "mrkdwn", "text": big}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": big}]},
        {"type": "header", "text": {"type": "plain_text", "text": big}},
        {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": big}}]}]})
    assert len(payload["text"]) == MESSAGE_TEXT and payload["text"].endswith(CUT_MARK)
    section, context, header, actions = payload["blocks"]
    assert len(section["text"]["text"]) <= 3000 and len(section["fields"][0]["text"]) <= 2000
    assert len(context["elements"][0]["text"]) <= 3000
    assert len(header["text"]["text"]) <= 150 and len(actions["elements"][0]["text"]["text"]) <= 75
    view = fit({"type": "modal", "title": {"type": "plain_text", "text": "A very long modal title indeed"}})
    assert len(view["title"]["text"]) <= 24


def test_a_large_template_catalog_reply_fits_one_message() -> None:
    from bot.core.templates import parse_catalog
    from bot.slack.blocks.templates import SenderInfo
    from bot.slack.listeners.command import _reply  # every command reply goes through fit()

    lines = ["templates:"]
    for i in range(400):
        lines += [f"  - name: t{i}", "    sender: textus", f"    template_id: id{i}", "    body: \"" + "".join(f"{{{{k{j}}}}}" for j in range(40)) + "\"",
                  "    variables:"] + [f"      - {{key: k{j}, label: \"R&D <{j}> & more & more\"}}" for j in range(40)]
    catalog = parse_catalog("\n".join(lines))
    listing = catalog_listing(catalog, SenderInfo(configured=frozenset({"textus"}), label=str.upper), limit=400)
    reply = _reply(listing)
    assert len(reply["text"]) <= MESSAGE_TEXT and reply["text"].endswith(CUT_MARK)
    assert "<1>" not in reply["text"]
