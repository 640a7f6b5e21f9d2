"""People's controls of a bulk job (Cancel, Pause, Resume, Send now) and what each answers.

Each returns the answer and whether the job's rows moved (the loops are then woken).
"""

from __future__ import annotations

from bot.core.bulk.wording import plural
from storage.bulk import BulkStore

CANCELABLE = ("running", "paused", "draft", "missed")


def cancel(jobs: BulkStore, job_id: int) -> tuple[str, bool]:
    job = jobs.get(job_id)
    if job is None:
        return f"There is no bulk send #{job_id}.", False
    if job.status not in CANCELABLE:
        return f"Bulk #{job_id} is already {job.status}; nothing to cancel.", False
    n = jobs.cancel(job_id)
    return f"Bulk #{job_id} canceled: {plural(n, 'recipient')} will not get it.", True


def pause(jobs: BulkStore, job_id: int) -> tuple[str, bool]:
    n = jobs.pause(job_id)
    job = jobs.get(job_id)
    if job is None or job.status != "paused":
        return f"Bulk #{job_id} is {job.status if job else 'unknown'}; it can't be paused.", True
    return f"Bulk #{job_id} paused; {plural(n, 'recipient')} wait for Resume.", True


def resume(jobs: BulkStore, job_id: int) -> tuple[str, bool]:
    n = jobs.resume(job_id)
    return f"Bulk #{job_id} resumed; {plural(n, 'recipient')} to go.", True


def send_missed_now(jobs: BulkStore, job_id: int) -> tuple[str, bool]:
    job = jobs.get(job_id)
    if job is None:
        return f"There is no bulk send #{job_id}.", False
    n = jobs.send_missed_now(job_id)
    if not n and job.status != "missed":
        return f"Bulk #{job_id} is {job.status}; nothing was sent now.", False
    return f"Bulk #{job_id} sending now, late: {plural(n, 'recipient')} to go.", True
