"""Customers' messages in Slack: the ConversationView port (bot/core/ports_conversations.py).

Each message is posted once across the fleet (bot/slack/once.py, key `inbound:<id>`, the id
in the message metadata). Its text is the customer's: escaped, so a text holding
`<!channel>` pings nobody. Bird's media URLs need the access key: the file is fetched with
`Authorization: AccessKey` and uploaded into the thread; other providers' URLs are public
and linked. Notes go through the delivery outbox (SlackOutbox), off the caller's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.input.phone import display
from bot.core.ports import Posted
from bot.slack.once import POST_LEASE, find_post, metadata, process_owner
from bot.slack.outbox import SlackOutbox
from bot.slack.text import MESSAGE_TEXT, cap, escape, shown
from providers.base import redact
from storage.conversations import Conversation, ConversationQueries, InboundRow
from storage.store import Store

log = logging.getLogger("smsbot.conversations")

MEDIA_LINKS = 20  # attachments linked in one post; more are counted
MEDIA_BYTES = 20 * 1024 * 1024  # a Bird attachment bigger than this is linked, not copied
INVITE_NOTE = ":warning: I'm not in this channel, so replies here can't reach the customer: `/invite @smsbot`."


def _link_label(url: str) -> str:
    return url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")


def _web(url: str) -> bool:
    try:
        return urlsplit(url).scheme.lower() in ("http", "https")
    except ValueError:
        return False


def media_lines(media: list[dict[str, Any]]) -> list[str]:
    """Links to the attachments: http(s) only (a `javascript:` URL is not a link we offer), at
    most MEDIA_LINKS of them (a payload can list hundreds), the rest counted."""
    web = [(i, m) for i, m in enumerate(media, 1) if _web(str(m.get("url", "")))]
    lines = [f"<{_link_label(str(m['url']))}|{m.get('kind', 'file')} {i}>" for i, m in web[:MEDIA_LINKS]]
    if len(web) > MEDIA_LINKS:
        lines.append(f"_… and {len(web) - MEDIA_LINKS} more attachment(s): see them at the provider._")
    if other := len(media) - len(web):
        lines.append(f"_{other} attachment{'s are' if other > 1 else ' is'} not web links: see them at the provider._")
    return lines


def who(conv: Conversation, row: InboundRow) -> str:
    name = row.contact_name or conv.contact_name
    number = display(row.from_number)
    return f"{escape(name)} ({number})" if name else number


def inbound_text(conv: Conversation, row: InboundRow, label: str, *, new_thread: bool, mention: str | None,
                 window_until: datetime | None) -> str:
    """The post for one customer message (plain mrkdwn; the customer's text escaped and quoted)."""
    if new_thread:
        head = f":incoming_envelope: New message from {who(conv, row)} via {escape(label)}"
    else:
        head = f":speech_balloon: {who(conv, row)} via {escape(label)} wrote"
    if mention:
        head += f" <@{mention}>"
    body = shown(row.text, 3500) if row.text else ""
    lines = [head + ":"] + ([f"> {line}" for line in body.splitlines()] or []) if body else [head]
    links = [m for m in row.media if not m.get("needs_bird_access_key") and row.provider != "bird"]
    lines += media_lines(links)
    if window_until is not None:
        when = window_until.strftime("%a %-d %b, %H:%M UTC")
        lines.append(f"_WhatsApp window open until {when}: free-form replies can go until then, templates any time._"
                     if window_until > datetime.now(UTC) else
                     f"_WhatsApp window closed at {when}: only a template can reach them now (`/sms template`)._")
    lines.append("_Reply in this thread to answer; start with `//` for a note that stays here._")
    return "\n".join(lines)


class SlackConversationView:
    """ConversationView over the Slack Web API and the delivery outbox."""

    def __init__(self, client: WebClient, store: Store, outbox: SlackOutbox | None, *,
                 label: Callable[[str], str], secrets: list[str], bird_key: str | None = None,
                 bird_api_url: str | None = None, http: httpx.Client | None = None) -> None:
        self.client = client
        self.store = store
        self.queries = ConversationQueries(store)
        self.outbox = outbox
        self.label = label
        self.secrets = secrets
        self.owner = process_owner()
        self.bird_key = bird_key
        # The key only ever goes to Bird's hosts (or the configured Bird API, e.g. a test server).
        self.bird_hosts = {"bird.com"} | ({urlsplit(bird_api_url).netloc} if bird_api_url else set())
        self.http = http or httpx.Client(timeout=10)
        self._joined: set[str] = set()  # channels this process joined (or found itself in)

    # -- the port

    def post_inbound(self, conversation: Conversation, message: InboundRow, *, channel: str,
                     thread_ts: str | None, mention: str | None, window_until: datetime | None) -> Posted | None:
        text = inbound_text(conversation, message, self.label(conversation.sender), new_thread=thread_ts is None,
                            mention=mention, window_until=window_until)
        key = f"inbound:{message.id}"
        # Claimed on the message's own row (one write), not with a lease of its own: showing
        # customers' messages must not hold the store's write lock longer than storing them.
        claim = self.queries.claim_post(message.id, self.owner, POST_LEASE)
        if claim is None:
            return None  # posted, or another process is posting it
        if claim == "retry" and (found := find_post(self.client, channel, key, thread_ts)):
            return Posted(channel, found)  # the earlier poster died after posting
        data = self._post(channel, text, thread_ts, metadata(key, inbound_id=message.id))
        if not data or not data.get("ts"):
            self.queries.release_post(message.id, self.owner)
            return None
        posted = Posted(str(data.get("channel") or channel), str(data["ts"]))
        self._bird_media(message, posted.channel, thread_ts or posted.ts)
        return posted

    def note(self, channel: str, thread_ts: str, text: str) -> None:
        if self.outbox is not None:
            self.outbox.post(channel, text, thread_ts)
        else:
            self._post(channel, text, thread_ts, None)

    def react(self, channel: str, ts: str, name: str) -> None:
        try:
            self.client.reactions_add(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else "?"
            if error != "already_reacted":
                log.warning("reactions.add failed: %s", error)
        except Exception as exc:
            log.warning("reactions.add failed: %s", type(exc).__name__)

    # -- Slack calls

    def _member(self, channel: str) -> bool:
        """Join a public channel before posting there: Slack sends message events (the replies)
        only from channels the bot is in, though chat:write.public lets it post anywhere."""
        if not channel.startswith("C") or channel in self._joined:
            return True
        try:
            self.client.conversations_join(channel=channel)
        except Exception as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) and exc.response is not None else "?"
            log.warning("could not join %s (%s): replies there need `/invite @smsbot`", channel, error)
            return False
        self._joined.add(channel)
        return True

    def _post(self, channel: str, text: str, thread_ts: str | None, meta: dict[str, Any] | None) -> dict[str, Any] | None:
        if meta is not None and not self._member(channel):
            text += f"\n{INVITE_NOTE}"
        try:
            resp = self.client.chat_postMessage(channel=channel, text=cap(redact(text, self.secrets), MESSAGE_TEXT),
                                                thread_ts=thread_ts, unfurl_links=False, metadata=meta)
            return resp.data if isinstance(resp.data, dict) else None
        except SlackApiError as exc:
            log.warning("posting a customer message failed: %s",
                        exc.response.get("error") if exc.response is not None else "?")
        except Exception as exc:
            log.warning("posting a customer message failed: %s", type(exc).__name__)
        return None

    def _bird_media(self, message: InboundRow, channel: str, thread_ts: str) -> None:
        """Bird attachments: fetched with the access key, uploaded into the thread (else linked)."""
        if message.provider != "bird":
            return
        for number, media in enumerate(message.media[:MEDIA_LINKS], 1):
            url = str(media.get("url") or "")
            data = self._fetch(url)
            name = str(media.get("filename") or f"{media.get('kind', 'file')}-{message.id}-{number}")
            try:
                if data is None:
                    raise ValueError("not fetched")
                self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, content=data, filename=name,
                                            title=name)
            except Exception as exc:
                log.warning("Bird attachment not copied into Slack (%s); linking it", type(exc).__name__)
                link = f" <{_link_label(url)}|{escape(name)}>" if _web(url) else f" {escape(name)}"
                self._post(channel, f"Attachment {number} (open it in Bird, it needs the access key):{link}",
                           thread_ts, None)
        if (more := len(message.media) - MEDIA_LINKS) > 0:
            self._post(channel, f"_… and {more} more attachment(s): see them in Bird._", thread_ts, None)

    def _fetch(self, url: str) -> bytes | None:
        host = urlsplit(url).netloc.lower()
        allowed = host in self.bird_hosts or urlsplit(url).hostname in ("bird.com",) or (
            (urlsplit(url).hostname or "").endswith(".bird.com") and urlsplit(url).scheme == "https")
        if not self.bird_key or not allowed:
            return None
        try:
            resp = self.http.get(url, headers={"Authorization": f"AccessKey {self.bird_key}"})
        except httpx.HTTPError:
            return None
        if resp.status_code != 200 or len(resp.content) > MEDIA_BYTES:
            return None
        return resp.content
