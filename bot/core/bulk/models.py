"""Bulk data: the plan a confirmation shows, progress counts, the summary's figures."""

from __future__ import annotations

from pydantic import BaseModel, Field

PROBLEMS_SHOWN = 20  # invalid rows listed by a confirmation (the rest are counted)


class ProblemLine(BaseModel):
    line: int
    raw: str
    reason: str


class BulkPlan(BaseModel):
    """What the confirmation shows; stored with the draft so a retry can show it again."""

    job_id: int
    sender: str
    sender_label: str
    mode: str  # per_recipient | provider_bulk
    valid: int
    total_rows: int
    duplicates_removed: int
    allow_duplicates: bool
    invalid: int
    problems: list[ProblemLine] = Field(default_factory=list)  # the first PROBLEMS_SHOWN
    notes: list[str] = Field(default_factory=list)
    encoding: str
    segments: int
    characters: int
    preview: str
    personalised: bool
    native_bulk_sender: bool = False  # a Sociocs sender (one bulk job per batch when not personalised)
    due_at: float | None = None
    user_tz: str | None = None
    source_label: str = "pasted list"
    opted_out: int = 0  # recipients excluded because they opted out
    quiet_waiting: int = 0  # rows held for quiet hours
    quiet_until: float | None = None


class Progress(BaseModel):
    total: int
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    canceled: int = 0
    missed: int = 0
    remaining: int = 0
    paused: int = 0
    opted_out: int = 0  # stopped at claim time by an opt-out (skipped; not in `failed`)
    quiet_waiting: int = 0  # held for the recipients' quiet hours (within `remaining`)
    quiet_until: float | None = None  # when the last of them may go
    rate: float | None = None  # messages a second, recently

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown + self.canceled + self.missed + self.opted_out

    @classmethod
    def from_counts(cls, counts: dict[str, int], rate: float | None = None) -> Progress:
        remaining = sum(counts.get(s, 0) for s in ("pending", "claimed", "sending", "queued", "paused", "waiting"))
        total = sum(v for k, v in counts.items() if k != "draft" and not k.startswith("_"))
        opted_out = counts.get("_opted_out", 0)
        return cls(total=total, sent=counts.get("sent", 0), failed=counts.get("failed", 0) - opted_out,
                   unknown=counts.get("unknown", 0), canceled=counts.get("canceled", 0),
                   missed=counts.get("missed", 0), remaining=remaining, paused=counts.get("paused", 0),
                   opted_out=opted_out, quiet_waiting=counts.get("_quiet_waiting", 0),
                   quiet_until=counts.get("_quiet_until"), rate=rate)


class BulkSummary(BaseModel):
    """A finished job's figures; each edge words them (Slack mrkdwn, a terminal)."""

    job_id: int
    progress: Progress
    label: str
    seconds: float | None
    canceled: bool
    provider_job_ids: list[str] = Field(default_factory=list)
