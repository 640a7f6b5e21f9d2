"""Post a Slack message once across every process sharing the store.

The post is claimed like a send: a short lease in the store (`try_lead` on a per-post key)
lets one process post while the others wait for the recorded ts. Every post carries Slack
message metadata naming its key, and a process that finds the post was already attempted
(the `post-try:` key was seen: the last poster may have died between posting and recording)
looks for it in the channel's recent history before posting again.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient

from storage.store import MessageRow, Store

log = logging.getLogger("smsbot.notify")

EVENT_TYPE = "smsbot_message"
# How long one process may hold a post before another may take it over (a Slack call with
# its retries is well under this).
POST_LEASE = 30.0
WAIT_STEP = 0.05
HISTORY_LIMIT = 200  # recent messages searched for a lost post (bounded on purpose)

# post(metadata) -> Slack's answer (with channel and ts) or None; record(channel, ts) stores it.
Poster = Callable[[dict[str, Any]], dict[str, Any] | None]
Recorder = Callable[[str, str], None]


def status_line_hooks(store: Store, row: MessageRow) -> tuple[Callable[[], bool], Recorder]:
    """For the key `status:<id>`: whether the thread's status line is recorded (or the row is
    gone), and how to record its ts. The announcer and the delivery view post the same line."""
    channel, thread = str(row.thread_channel), str(row.thread_ts)

    def recorded() -> bool:
        now = store.get(row.id)
        return now is None or bool(now.status_ts)

    def record(_channel: str, ts: str) -> None:
        store.set_thread(row.id, channel, thread, status_ts=ts)

    return recorded, record


def process_owner() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def metadata(key: str, **ids: int) -> dict[str, Any]:
    """Slack message metadata tagging a post with its key and row ids (event_payload values are scalars)."""
    return {"event_type": EVENT_TYPE, "event_payload": {"key": key, **ids}}


def find_post(client: WebClient, channel: str, key: str, thread_ts: str | None = None) -> str | None:
    """The ts of a recent post tagged with `key` in `channel` (or in the thread), if Slack has one."""
    if channel[:1] in ("U", "W", "D"):
        # A person's id or a DM: reading DMs back would need im:history, which we do not ask for.
        return None
    try:
        if thread_ts:
            resp = client.conversations_replies(channel=channel, ts=thread_ts, include_all_metadata=True,
                                                limit=HISTORY_LIMIT)
        else:
            resp = client.conversations_history(channel=channel, include_all_metadata=True, limit=HISTORY_LIMIT)
    except Exception as exc:
        log.warning("looking for an earlier post failed: %s", getattr(exc, "response", {}).get("error")
                    if hasattr(exc, "response") else type(exc).__name__)
        return None
    for message in resp.get("messages") or []:
        meta = message.get("metadata") or {}
        if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("key") == key:
            return str(message["ts"])
    return None


class PostOnce:
    """One poster per key across the fleet, and a lookup before a repost."""

    def __init__(self, client: WebClient, store: Store, owner: str | None = None, *,
                 lease: float = POST_LEASE) -> None:
        self.client = client
        self.store = store
        self.owner = owner or process_owner()
        self.lease = lease

    def _claim(self, key: str, recorded: Callable[[], bool]) -> bool:
        """Take the post's lease; False once someone else recorded it (waits while another holds it)."""
        deadline = time.monotonic() + self.lease
        while not self.store.try_lead(f"post:{key}", self.owner, self.lease):
            if recorded() or time.monotonic() > deadline:
                return False
            time.sleep(WAIT_STEP)
        if recorded():
            self.store.resign(f"post:{key}", self.owner)
            return False
        return True

    def post(self, key: str, channel: str, post: Poster, record: Recorder, recorded: Callable[[], bool],
             thread_ts: str | None = None, **ids: int) -> dict[str, Any] | None:
        """Post unless it was posted (recorded, or found in Slack); Slack's answer, or None."""
        if recorded() or not self._claim(key, recorded):
            return None
        try:
            if not self.store.first_time(f"post-try:{key}"):
                # An earlier attempt may have posted and died before recording it.
                found = find_post(self.client, channel, key, thread_ts)
                if found:
                    record(channel, found)
                    return None
            data = post(metadata(key, **ids))
            if data and data.get("ts"):
                record(str(data.get("channel") or channel), str(data["ts"]))
            return data
        finally:
            self.store.resign(f"post:{key}", self.owner)
