"""A sender that sends nothing: for trying the bot, demos and tests."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable

import httpx

from .base import (
    Capabilities,
    InvalidMessage,
    OutboundMessage,
    PreparedRequest,
    Provider,
    SendResult,
)
from .checks import CredentialCheck

log = logging.getLogger(__name__)


class SandboxProvider(Provider):
    name = "sandbox"
    label = "Sandbox"
    family = "sandbox"
    webhooks_note = "The sandbox receives no webhooks."

    def __init__(self, on_accepted: Callable[[str], None] | None = None) -> None:
        # No super().__init__(): the sandbox never opens an HTTP client.
        self.on_accepted = on_accepted
        self.capabilities = Capabilities(
            channel="sms+whatsapp",
            max_images=10,
            video=True,
            file=True,
            templates=True,
            native_schedule=True,
            # Delivery events exist only when someone fakes them through the hook.
            status_webhooks=on_accepted is not None,
            contact_saving=True,
        )
        self._lock = threading.Lock()
        #: every message taken, oldest first; appended under a lock (copy it before iterating
        #: while other threads send).
        self.sent: list[OutboundMessage] = []

    def build_request(self, msg: OutboundMessage) -> PreparedRequest:
        return PreparedRequest(
            method="POST",
            url="sandbox://messages",
            headers={"Content-Type": "application/json"},
            json_body=msg.model_dump(mode="json", exclude_none=True),
        )

    def parse_response(self, response: httpx.Response) -> SendResult:
        raise RuntimeError("The sandbox never calls HTTP; use send().")

    def execute(self, prepared: PreparedRequest) -> httpx.Response:
        raise RuntimeError("The sandbox never calls HTTP; use send().")

    def send(self, msg: OutboundMessage) -> SendResult:
        problems = self.validate(msg)
        if problems:
            raise InvalidMessage(" ".join(problems))
        message_id = f"sbx_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self.sent.append(msg)
        if self.on_accepted is not None:
            try:
                self.on_accepted(message_id)
            except Exception:
                # The message was "accepted"; a broken fake-event hook must not turn that into a failure.
                log.exception("sandbox on_accepted hook failed for %s", message_id)
        return SendResult(provider_message_id=message_id, status="accepted", detail="sandbox: not sent")

    def close(self) -> None:
        pass

    def check_credentials(self) -> CredentialCheck:
        return CredentialCheck(sender=self.name, status="ok", message="The sandbox sends nothing and needs no credentials.")
