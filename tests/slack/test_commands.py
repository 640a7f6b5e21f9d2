"""The `/sms send` parser: options first, the number in one or several pieces, text verbatim."""

from __future__ import annotations

import pytest

from bot.slack.commands import CommandError, help_text, parse_send, split_subcommand


@pytest.mark.parametrize(
    ("text", "to", "message", "opts"),
    [
        ("+16175551212 Your order has shipped", "+16175551212", "Your order has shipped", {}),
        ("--via twlowa 0617 555 1212 Hi", "+16175551212", "Hi", {"via": "twlowa"}),
        ("(617) 555-1212 Don't forget: 50% off", "+16175551212", "Don't forget: 50% off", {}),
        ("+1 617 555 1212 hello", "+16175551212", "hello", {}),
        ('--at "tomorrow 9am" +16175551212 See you', "+16175551212", "See you", {"at": "tomorrow 9am"}),
        ("--at=2026-12-01T09:00:00-05:00 +16175551212 x", "+16175551212", "x", {"at": "2026-12-01T09:00:00-05:00"}),
        ("--image https://e.com/a.png --image https://e.com/b.png +16175551212 Look", "+16175551212", "Look",
         {"image_urls": ["https://e.com/a.png", "https://e.com/b.png"]}),
        ("--name “Jane Doe” +16175551212 Hi Jane", "+16175551212", "Hi Jane", {"name": "Jane Doe"}),
        ("+16175551212 5 items left\nsecond line", "+16175551212", "5 items left\nsecond line", {}),
    ],
)
def test_parse_send(text: str, to: str, message: str, opts: dict) -> None:
    cmd = parse_send(text, "US")
    assert cmd.to == to
    assert cmd.text == message
    for key, value in opts.items():
        assert getattr(cmd, key) == value


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "Give a phone number"),
        ("hello there", "'hello' is not a phone number"),
        ("12 hello", "'12' is not a valid phone number"),
        ("--bogus x +16175551212 hi", "Unknown option --bogus"),
        ("--via", "--via needs a value"),
    ],
)
def test_parse_send_errors(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_send(text, "US")
    assert fragment in str(err.value)


def test_split_subcommand() -> None:
    assert split_subcommand("  SEND +1 hi ") == ("send", "+1 hi")
    assert split_subcommand("") == ("", "")


def test_help_lists_every_subcommand_with_an_example() -> None:
    text = help_text()
    for sub in ("send", "template", "templates", "bulk", "list", "cancel", "status", "help", "senders"):
        assert f"`/sms {sub}" in text


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("send <tel:+16175551212|+1 617 555 1212> Hi", "send +1 617 555 1212 Hi"),
        ("send <tel:+16175551212> Hi", "send +16175551212 Hi"),
        ("--image <https://e.com/a.png?x=1&amp;y=2> +1", "--image https://e.com/a.png?x=1&y=2 +1"),
        ("see <https://e.com|e.com> &amp; more &lt;3", "see https://e.com & more <3"),
        ("mail <mailto:a@b.com|a@b.com>", "mail a@b.com"),
        ("<@U123> stays", "@U123 stays"),
    ],
)
def test_slack_markup_is_undone_before_parsing(raw: str, plain: str) -> None:
    from bot.slack.commands import slack_unescape

    assert slack_unescape(raw) == plain


def test_a_number_slack_turned_into_a_tel_link_still_sends() -> None:
    from bot.slack.commands import slack_unescape

    cmd = parse_send(slack_unescape("<tel:+16175551212|+1 617 555 1212> Fish &amp; chips"), "US")
    assert cmd.to == "+16175551212" and cmd.text == "Fish & chips"


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("ask <@U123|bob> about it", "ask @bob about it"),
        ("in <#C1|general>", "in #general"),
        ("hey <!here> and <!channel>", "hey @here and @channel"),
        ("team <!subteam^S1|@support>", "team @support"),
    ],
)
def test_slack_mentions_become_what_the_person_saw(raw: str, plain: str) -> None:
    from bot.slack.commands import slack_unescape

    assert slack_unescape(raw) == plain


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('+16175551212 --at "tomorrow 9am" reminder', "Put options before the number"),
        ("+16175551212 --via bird hi", "Put options before the number"),
        ("+16175551212 -v bird hi", "Put options before the number"),
        ("+16175551212 +16175551213 hi", "One number per `/sms send`"),
    ],
)
def test_mistakes_that_would_send_the_wrong_text_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(CommandError) as err:
        parse_send(text, "US")
    assert fragment in str(err.value)


def test_numbers_in_the_text_are_still_text() -> None:
    assert parse_send("+16175551212 2024 prices", "US").text == "2024 prices"
    assert parse_send("+16175551212 Call 555-1234", "US").text == "Call 555-1234"


def test_non_breaking_space_after_the_subcommand() -> None:
    assert split_subcommand("send\u00a0+16175551212 hi") == ("send", "+16175551212 hi")


@pytest.mark.parametrize("text", ['--at "" +16175551212 Hi', "--at= +16175551212 Hi", '--via "" +16175551212 Hi'])
def test_an_empty_option_value_is_refused_not_ignored(text: str) -> None:
    with pytest.raises(CommandError, match="needs a value; nothing was sent"):
        parse_send(text, "US")
