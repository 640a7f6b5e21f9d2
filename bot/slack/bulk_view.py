"""The Slack side of a bulk job: its progress message, summary, failure file and prompts.

Implements bot.core.ports.BulkView. Slack errors stay here: each method logs and answers
None/False, and a channel the bot cannot post in falls back to the author's DM.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.core.bulk.models import BulkSummary, Progress
from bot.core.ports import BulkView, Posted
from bot.slack.announcer import UNREACHABLE, Notifier
from bot.slack.blocks.bulk import bulk_summary_text, missed_prompt, progress_message
from bot.slack.once import metadata
from storage.bulk import BulkJob, BulkStore

log = logging.getLogger("smsbot.bulk")


class SlackBulkView(BulkView):
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    def blocks(self, job: BulkJob, p: Progress, state: str) -> tuple[str, list[dict[str, Any]]]:
        return progress_message(job.id, job.created_by, self.notifier.label_for(job.sender), job.text or "", p,
                                state, job.provider_job_ids, job.due_at, job.user_tz)

    def post_progress(self, job: BulkJob, progress: Progress, state: str) -> Posted | None:
        text, blocks = self.blocks(job, progress, state)
        target = str(job.channel_id or job.created_by)
        data = None
        try:
            data = self.notifier.post(target, text, blocks, metadata=metadata(f"bulk:{job.id}", bulk_job_id=job.id))
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            if error in UNREACHABLE and job.created_by and target != job.created_by:
                blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                               f"I can't post in <#{job.channel_id}>, so this bulk send's progress comes here. "
                               "Invite me with `/invite @smsbot` to see it in the channel."}]})
                try:
                    data = self.notifier.post(job.created_by, text, blocks,
                                              metadata=metadata(f"bulk:{job.id}", bulk_job_id=job.id))
                except SlackApiError:
                    data = None
        if data and data.get("ts"):
            return Posted(str(data.get("channel") or target), str(data["ts"]))
        return None

    def redraw(self, job: BulkJob, progress: Progress, state: str) -> None:
        if job.thread_channel and job.thread_ts:
            text, blocks = self.blocks(job, progress, state)
            self.notifier.update(job.thread_channel, job.thread_ts, text, blocks)

    def post_summary(self, job: BulkJob, summary: BulkSummary, note: str = "") -> str | None:
        """The summary in the job's thread, posted once across processes (bot/slack/once.py)."""
        if not (job.thread_channel and job.thread_ts):
            return None
        channel, thread, before = job.thread_channel, job.thread_ts, job.payload.get("summary_ts")
        jobs = BulkStore(self.notifier.store)
        posted: list[str] = []

        def recorded() -> bool:
            now = jobs.get(job.id)
            return now is None or now.payload.get("summary_ts") != before

        def record(_channel: str, ts: str) -> None:
            jobs.set_summary_ts(job.id, ts)
            posted.append(ts)

        def post(meta: dict[str, Any]) -> dict[str, Any] | None:
            try:
                return self.notifier.post(channel, self.text(summary, note), thread_ts=thread, metadata=meta)
            except SlackApiError:
                return None

        self.notifier.once.post(f"bulk-summary:{job.id}:{before or ''}", channel, post, record, recorded,
                                thread_ts=thread, bulk_job_id=job.id)
        return posted[0] if posted else None

    def update_summary(self, job: BulkJob, ts: str, summary: BulkSummary, note: str = "") -> bool:
        if not job.thread_channel:
            return False
        return self.notifier.update(job.thread_channel, ts, self.text(summary, note))

    def upload_failure_csv(self, job: BulkJob, content: str, comment: str) -> bool:
        try:
            self.notifier.client.files_upload_v2(
                channel=job.thread_channel, thread_ts=job.thread_ts,
                filename=f"bulk-{job.id}-failures.csv", title=f"Bulk #{job.id}: failed and unknown",
                content=content, initial_comment=comment,
            )
            return True
        except Exception as exc:
            log.warning("uploading the failure report of bulk #%s failed: %s", job.id, type(exc).__name__)
            return False

    def missed_prompt(self, job: BulkJob, target: str, when: str) -> None:
        text, blocks = missed_prompt(job.id, job.total, when)
        try:
            self.notifier.post(target, text, blocks, thread_ts=job.thread_ts if job.thread_channel else None)
        except SlackApiError as exc:
            log.warning("posting the missed prompt of bulk #%s failed: %s", job.id, type(exc).__name__)

    def tell(self, channel: str | None, user: str, summary: BulkSummary) -> None:
        self.notifier.ephemeral_or_dm(channel, user, self.text(summary))

    @staticmethod
    def text(summary: BulkSummary, note: str = "") -> str:
        text = bulk_summary_text(summary)
        return f"{text}\n{note}" if note else text
