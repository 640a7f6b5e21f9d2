"""Who sees which messages: the one rule behind /sms status, /sms list, the App Home and export.

- People see the messages they sent or scheduled themselves.
- The people in SMS_BULK_USERS (the managers) see everyone's. When SMS_BULK_USERS is empty
  (a small team), everyone allowed to send (SMS_ALLOWED_USERS, or everyone when that is
  empty too) is a manager.
- Unconfirmed bulk drafts are shown to their author only, managers included.
- `smsbot export` runs as the operator: every confirmed message; `--user U123` applies
  that person's view instead.

Who is a manager is decided here; the SQL filter that applies it is
`storage.store.visible_sql`, used by every query that reads messages for people.
"""

from __future__ import annotations

from bot.core.config import Settings
from storage.store import Viewer


def is_manager(settings: Settings, user_id: str | None) -> bool:
    """May this person see (and manage) everyone's messages?"""
    if not user_id:
        return False
    managers = settings.bulk_users
    if managers:
        return user_id in managers
    allowed = settings.allowed_users
    return not allowed or user_id in allowed


def viewer_for(settings: Settings, user_id: str | None) -> Viewer:
    return Viewer(user_id=user_id or None, sees_all=is_manager(settings, user_id))
