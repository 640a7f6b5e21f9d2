"""`smsbot send`: one message now (or --at later), through the same service as Slack."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from bot.cli.main import now_key, when_from, wiring
from bot.core.config import Settings


@dataclass
class SendArgs:
    to: str
    via: str | None = None
    text: str | None = None
    name: str | None = None
    image: list[str] = field(default_factory=list)
    video: str | None = None
    file: str | None = None
    file_type: str | None = None
    at: str | None = None
    tz: str = "UTC"
    quiet_ok: bool = False  # send now even in the recipient's quiet hours


def send(args: SendArgs, settings: Settings) -> int:
    from bot.core.input.phone import display
    from bot.core.input.timeparse import describe_when, is_immediate
    from bot.core.sending import SendRequest, UserError

    when = when_from(args.at, args.tz)
    when = None if when is None or is_immediate(when) else when  # `--at now` sends now
    rt = wiring().engines(settings)
    wiring().setup_logging(settings.secret_values() + rt.senders.secrets())
    assert rt.dispatcher is not None
    req = SendRequest(
        sender=args.via, to=args.to, name=args.name, text=args.text, image_urls=args.image,
        video_url=args.video, file_url=args.file, file_content_type=args.file_type, when=when,
        idem_key=now_key(), source="cli", user_name="cli", quiet_ok=args.quiet_ok,
    )
    try:
        message_id, _ = rt.service.submit(req)
    except UserError as exc:
        hint = " (--quiet-ok sends now; --at sets a time)" if "quiet hours" in exc.message else ""
        print(f"error: {exc.message}{hint}", file=sys.stderr)
        rt.stop()
        return 2
    if when is not None:
        print(f"Scheduled #{message_id} for {describe_when(when, args.tz)}; the worker sends it then.")
        rt.stop()
        return 0
    row = rt.store.claim_one(message_id, rt.dispatcher.owner)
    final = rt.dispatcher.process(row) if row else None
    rt.stop()
    if final is None:
        # A running worker claimed it first and sends it: resending would be a duplicate.
        print(f"#{message_id} was taken by a running worker, which sends it; do not send it again.")
        return 0
    label = rt.senders.label(final.sender)
    if final.status == "sent":
        note = " (sandbox: not sent)" if final.sender == "sandbox" else ""
        print(f"#{final.id} accepted by {label} for {display(final.to_number)}: "
              f"message id {final.provider_message_id}{note}")
        return 0
    if final.status == "pending":
        print(f"#{final.id} not sent yet ({final.error}); the worker will retry it.")
        return 1
    from providers.base import redact

    print(f"#{final.id} {final.status}: {redact(final.error or '', rt.senders.secrets() + settings.secret_values())}",
          file=sys.stderr)
    return 1
