"""`smsbot simulate inbound --via twlo --from +16175551212 --text "hi"`: a customer's message
without a provider account (and the CSV of customers' messages `smsbot export --inbound` writes).

The message is built as the provider's webhook payload, read by the same parser
(providers/inbound.py) and stored by the same ConversationEngine.ingest as a real webhook.
The running smsbot (run / serve) finds it in the store and shows it in Slack within a second
or two; with none running, it is shown when one starts.
"""

from __future__ import annotations

import csv
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import IO, Any

import click

from bot.cli.main import command_group, configured
from bot.core.config import Settings
from bot.core.consent.book import ConsentBook
from bot.core.consent.inbound import ConsentInbound
from bot.core.conversations.engine import ConversationEngine, HooksFailed
from bot.core.input.phone import InvalidNumber, normalize
from bot.core.senders import build_senders
from bot.core.sending import SendService
from providers.base import redact
from providers.inbound import InboundMessage, InboundPayloadError, InboundResult, parse_inbound
from storage import open_store
from storage.conversations import InboundRow

FAMILIES = {"twlo": "sociocs", "twlowa": "sociocs", "gswa": "sociocs", "bird": "bird", "textus": "textus"}
VIA = (*FAMILIES, "sandbox")


def payload_for(via: str, number: str, text: str, message_id: str, whatsapp: bool) -> dict[str, Any]:
    """The webhook body the provider would send for this message (inbound-notes.md)."""
    if FAMILIES[via] == "sociocs":
        return {"message_id": message_id, "event": "message", "provider": via, "channel_key": f"{via}_simulated",
                "direction": "incoming", "from": number.lstrip("+"), "text": text, "image_urls": [],
                "video_urls": [], "file_urls": [], "timestamp": int(time.time() * 1000)}
    if via == "bird":
        return {"service": "channels", "event": "whatsapp.inbound" if whatsapp else "sms.inbound", "payload": {
            "id": message_id, "direction": "incoming", "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sender": {"contact": {"identifierKey": "phonenumber", "identifierValue": number}},
            "body": {"type": "text", "text": {"text": text}}}}
    return {"@type": "WebhookDelivery", "id": f"/simulated/{message_id}", "action": "message.received",
            "conversation": {"id": "/conversations/simulated", "phoneNumber": number},
            "message": {"id": f"/messages/{message_id}", "direction": "in", "body": text,
                        "channel": "whatsapp" if whatsapp else "sms"}}


def simulated(via: str, number: str, text: str, whatsapp: bool = False) -> InboundResult:
    message_id = f"sim-{uuid.uuid4().hex[:12]}"
    if via == "sandbox":
        return InboundResult(message=InboundMessage(provider="sociocs", sender="sandbox", channel="sms",
                                                    from_number=number, text=text, provider_message_id=message_id))
    result = parse_inbound(FAMILIES[via], payload_for(via, number, text, message_id, whatsapp))
    if result is None:
        raise InboundPayloadError("the simulated payload was not read as an inbound message")
    return result


GROUP = command_group("simulate", "feed a customer's message through the inbound path (no provider needed)")


@GROUP.command("inbound", help="a customer's message, as if a provider's webhook brought it")
@click.option("--via", required=True, type=click.Choice(VIA), help="the sender the customer wrote to")
@click.option("--from", "from_number", required=True, help="the customer's number")
@click.option("--text", required=True)
@click.option("--whatsapp", is_flag=True, help="Bird / TextUs: as a WhatsApp message")
def inbound_command(via: str, from_number: str, text: str, whatsapp: bool) -> int:
    args = SimpleNamespace(via=via, from_number=from_number, text=text, whatsapp=whatsapp)
    return run(args, configured())


def text_problem(text: str) -> str | None:
    """Why `--text` cannot be a customer's message (there is no media option), or None."""
    if not text.strip():
        return "--text is empty"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a non-UTF-8 byte in argv arrives as a lone surrogate
        return "--text is not valid UTF-8 (check the terminal's encoding)"
    return None


def run(args: Any, settings: Settings) -> int:
    """`args`: via, from_number, text, whatsapp (as the command's options)."""
    problem = text_problem(args.text)
    if problem is not None:
        print(f"error: {problem}; nothing was stored.", file=sys.stderr)
        return 2
    try:
        number = normalize(args.from_number, settings.sms_default_region)
        result = simulated(args.via, number, args.text, args.whatsapp)
    except (InvalidNumber, InboundPayloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = open_store(settings.database_url)
    senders = build_senders(settings)
    try:
        engine = ConversationEngine(store, None)  # shown by the running smsbot, not from here
        # The same consent hooks as a webhook: STOP recorded here, its thread note and any
        # automatic reply stored for the running smsbot to post and send.
        book = ConsentBook(store, settings)
        service = SendService(store, senders, default_region=settings.sms_default_region, consent=book)
        ConsentInbound(book, service, engine).attach()
        try:
            answer = engine.ingest(result)
        except HooksFailed as exc:  # stored; running it again runs the hooks again
            print(f"error: {exc}; run the command again", file=sys.stderr)
            return 1
    finally:
        senders.close()
        store.close()
    print(f"{answer}: {args.text!r} from {number} via {args.via}. "
          "A running smsbot shows it in Slack within a few seconds (or when it starts).")
    return 0


INBOUND_FIELDS = ["id", "received_at", "from", "name", "sender", "provider", "channel", "text", "media",
                  "provider_message_id", "conversation_id"]


def write_inbound_csv(rows: Iterable[InboundRow], out: IO[str], secrets: list[str], cell: Callable[[Any], str],
                      iso: Callable[[float | None], str]) -> int:
    """`smsbot export --inbound`: what customers wrote (issue 13), one row per stored message."""
    writer = csv.writer(out)
    writer.writerow(INBOUND_FIELDS)
    count = 0
    for r in rows:
        media = " ".join(str(m.get("url", "")) for m in r.media)
        writer.writerow([redact(cell(v), secrets) for v in (
            r.id, iso(r.received_at), r.from_number, r.contact_name, r.sender, r.provider, r.channel, r.text,
            media, r.provider_message_id, r.conversation_id)])
        count += 1
    return count
