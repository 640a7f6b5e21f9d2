"""Parsing `/sms ...` text. Options come first; the message text is kept verbatim."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from bot.core.input.phone import InvalidNumber, normalize

HELP_EXAMPLES: list[tuple[str, str]] = [
    ("/sms", "Open the send form (media, contact saving, send later)."),
    ("/sms send +16175551212 Your order has shipped", "Send a text with the default sender."),
    ("/sms send --via twlowa 0617 555 1212 Hi", "Choose the sender; national numbers use SMS_DEFAULT_REGION."),
    ('/sms send --at "tomorrow 9am" +16175551212 See you soon', "Schedule a send (your Slack time zone)."),
    ("/sms send --image https://example.com/a.png +16175551212 Look", "Attach an image (Twilio SMS, Bird)."),
    ("/sms send --template appointment +16175551212 name=John date=11-Jul-2024", "Send a WhatsApp template."),
    ("/sms template", "Open the WhatsApp template form."),
    ("/sms templates", "List the template catalog."),
    ("/sms bulk", "Open the bulk form: paste numbers or upload a CSV."),
    ("/sms list", "Your pending scheduled messages (--all for everyone's)."),
    ("/sms cancel 42", "Cancel scheduled message 42."),
    ("/sms status +16175551212", "History of messages to a number (or a message id)."),
    ("/sms inbox", "Customers waiting for an answer (reply in their thread; `//` starts a note)."),
    ("/sms optout +16175551212 asked by phone", "Opt a number out of every sender (managers)."),
    ("/sms optin +16175551212", "Lift a manual opt-out (managers; a STOP only the customer can lift)."),
    ("/sms optouts", "Opted-out numbers, with source and date (managers)."),
    ("/sms senders", "Which senders are configured."),
    ("/sms help", "This help."),
]

_TOKEN = re.compile(r'"[^"]*"|“[^”]*”|\S+')
_PHONE_TOKEN = re.compile(r"^[+(]?[\d().\-]+$")
VALUE_OPTIONS = {"--via", "--at", "--name", "--image", "--video", "--file", "--file-type", "--template", "--subject"}
ALIASES = {"-v": "--via", "--sender": "--via", "--from": "--via", "--when": "--at", "--media": "--image"}


class CommandError(ValueError):
    """Bad command text; the message says what to fix."""


class SendCommand(BaseModel):
    via: str | None = None
    at: str | None = None
    name: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    video_url: str | None = None
    file_url: str | None = None
    file_content_type: str | None = None
    subject: str | None = None
    template: str | None = None
    to: str  # E.164
    text: str = ""


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] in "\"“" and token[-1] in "\"”":
        return token[1:-1]
    return token


_SLACK_LINK = re.compile(r"<((?:https?|tel|mailto):[^|>]*)(?:\|([^>]*))?>")
# <@U123|bob>, <#C1|general>, <!here>, <!subteam^S1|@team>: what the person saw, as plain text.
_SLACK_REF = re.compile(r"<([@#!])([^|>]*)(?:\|([^>]*))?>")


def slack_unescape(text: str) -> str:
    """Undo Slack's formatting of command text: `<tel:+1617...|...>`, `<https://x|x>`, `&amp;`.

    Slack may wrap numbers, links and e-mail addresses it recognises; the provider must get
    what the person typed, not Slack markup.
    """

    def plain_link(m: re.Match[str]) -> str:
        target, label = m.group(1), m.group(2)
        if target.startswith("tel:"):
            return label or target[4:]
        if target.startswith("mailto:"):
            return label or target[7:]
        return target

    def plain_ref(m: re.Match[str]) -> str:
        sigil, target, label = m.group(1), m.group(2), m.group(3)
        if label:
            return label if label[:1] in "@#" else (("#" if sigil == "#" else "@") + label)
        if sigil == "!":
            return "@" + target.split("^")[0]
        return sigil + target

    text = _SLACK_LINK.sub(plain_link, text or "")
    text = _SLACK_REF.sub(plain_ref, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def split_subcommand(text: str) -> tuple[str, str]:
    text = (text or "").strip()
    if not text:
        return "", ""
    # split() also breaks on the non-breaking spaces Slack clients paste in.
    parts = text.split(None, 1)
    return parts[0].lower(), (parts[1].strip() if len(parts) > 1 else "")


_Token = tuple[str, int, int]  # (text, start, end) in the command text


def parse_send(text: str, default_region: str = "US") -> SendCommand:
    """`[--via S] [--at WHEN] [--name N] [--image URL]... NUMBER TEXT` -> SendCommand."""
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text or "")]
    opts, i = _parse_options(tokens)
    rest = tokens[i:]
    if not rest:
        raise CommandError("Give a phone number and a message, e.g. `/sms send +16175551212 Your order has shipped`.")
    to, number_end = _leading_number(text, rest, default_region)
    message = text[number_end:].strip()
    _refuse_misplaced(message, rest[0][0], default_region)
    return SendCommand(to=to, text=message, **opts)


def _is_option(tokens: list[_Token], i: int) -> bool:
    return i < len(tokens) and (tokens[i][0].startswith("--") or tokens[i][0] in ALIASES)


def _parse_options(tokens: list[_Token]) -> tuple[dict[str, Any], int]:
    """The leading `--option value` tokens -> (SendCommand fields, index of the first other token)."""
    image_urls: list[str] = []
    opts: dict[str, Any] = {"image_urls": image_urls}  # SendCommand validates the values
    i = 0
    while _is_option(tokens, i):
        key, value, i = _option_at(tokens, i)
        name = key[2:].replace("-", "_")
        if name == "image":
            image_urls.append(value)
        else:
            opts[_OPTION_FIELDS.get(name, name)] = value
    return opts, i


_OPTION_FIELDS = {"video": "video_url", "file": "file_url", "file_type": "file_content_type"}


def _option_at(tokens: list[_Token], i: int) -> tuple[str, str, int]:
    """The option at tokens[i] -> (canonical key, value, index after it)."""
    key, eq, inline = tokens[i][0].partition("=")
    key = ALIASES.get(key.lower(), key.lower())
    if key not in VALUE_OPTIONS:
        raise CommandError(
            f"Unknown option {key}. Options: {', '.join(sorted(VALUE_OPTIONS))}. See `/sms help`."
        )
    if eq:
        value = _unquote(inline)
        i += 1
    else:
        if i + 1 >= len(tokens):
            raise CommandError(f"{key} needs a value, e.g. {key} {'twlo' if key == '--via' else '...'}")
        value = _unquote(tokens[i + 1][0])
        i += 2
    if not value.strip():
        # `--at ""` must never turn a scheduled send into an immediate one.
        raise CommandError(f"{key} needs a value; nothing was sent. See `/sms help`.")
    return key, value, i


def _leading_number(text: str, rest: list[_Token], default_region: str) -> tuple[str, int]:
    """(E.164 number, where it ends in `text`) from the first tokens of `rest`."""
    # The number may be written in pieces (`0617 555 1212`): take the fewest leading
    # phone-looking tokens that make a valid number.
    last_error: InvalidNumber | None = None
    for k in range(1, min(6, len(rest)) + 1):
        if not _PHONE_TOKEN.match(rest[k - 1][0]):
            break
        candidate = text[rest[0][1] : rest[k - 1][2]]
        try:
            return normalize(candidate, default_region), rest[k - 1][2]
        except InvalidNumber as exc:
            last_error = exc
    if last_error is not None:
        raise CommandError(str(last_error))
    raise CommandError(
        f"'{rest[0][0][:40]}' is not a phone number. Put the number first, e.g. "
        "`/sms send +16175551212 Hello`."
    )


def leading_number(text: str, default_region: str = "US") -> tuple[str, str]:
    """(E.164 number, the rest of the text) from a command's arguments, read as `/sms send`
    reads its number (in pieces too); CommandError says what to fix."""
    tokens = [(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text or "")]
    if not tokens:
        raise CommandError("Give a phone number, e.g. +16175551212.")
    number, end = _leading_number(text, tokens, default_region)
    return number, text[end:].strip()


def _refuse_misplaced(message: str, number_token: str, default_region: str) -> None:
    """Refuse a message that starts with an option or a second number: surely a mistake."""
    first = message.split(None, 1)[0] if message else ""
    option = first.partition("=")[0].lower()
    if option in VALUE_OPTIONS or option in ALIASES:
        # Sending "--at tomorrow ..." as the SMS text would be an irreversible mistake.
        raise CommandError(
            f"Put options before the number: `/sms send {first} ... {number_token} your text`. "
            "Nothing was sent."
        )
    if first and _PHONE_TOKEN.match(first) and sum(ch.isdigit() for ch in first) >= 7:
        try:
            normalize(first, default_region)
        except InvalidNumber:
            return
        raise CommandError(
            "One number per `/sms send`. For several recipients use `/sms bulk`. Nothing was sent."
        )


def help_text() -> str:
    lines = ["*smsbot* sends SMS and WhatsApp messages from Slack.", ""]
    lines += [f"• `{cmd}` {desc}" for cmd, desc in HELP_EXAMPLES]
    lines += [
        "",
        "Options for `/sms send`: `--via SENDER`, `--at WHEN`, `--name NAME`, `--image URL` (repeat for several), "
        "`--video URL`, `--file URL`, `--file-type MIME`, `--subject TEXT` (Bird), `--template NAME`.",
        "Multi-word values go in double quotes: `--at \"in 2 hours\"`.",
    ]
    return "\n".join(lines)
