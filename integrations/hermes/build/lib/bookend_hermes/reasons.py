"""hermes's end reasons onto bookend's, and back.

hermes writes free-text reasons into ``sessions.end_reason``; bookend has a
small vocabulary (docs/lifecycle.md) and keeps any other reason as its own
name. The map is one table each way; a reason in neither round-trips
unchanged.
"""

from __future__ import annotations

#: hermes reason -> bookend reason.
TO_BOOKEND: dict[str, str] = {
    "session_reset": "manual_reset",
    "new_session": "manual_reset",
    "idle": "idle_expiry",
    "daily": "daily_reset",
    "compression": "compression",
    "session_switch": "switched",
    "resumed_other": "switched",
    "cron_complete": "completed",
}

#: bookend reason -> what the mirror writes into state.db. Reasons only
#: bookend produces (a crash noticed by the next open, a reaper, a
#: supersede) are written under their bookend names.
TO_HERMES: dict[str, str] = {
    "manual_reset": "session_reset",
    "idle_expiry": "idle",
    "daily_reset": "daily",
    "compression": "compression",
    "switched": "session_switch",
    "completed": "cron_complete",
}


def _clean(reason: str) -> str:
    # bookend's reason charset is [a-z0-9_.:-], at most 64 bytes.
    out = "".join(c if c.isascii() and (c.isalnum() or c in "_.:-") else "_" for c in reason.lower())
    return (out or "other")[:64]


def to_bookend(reason: str | None) -> str:
    if not reason:
        return "other"
    return TO_BOOKEND.get(reason, _clean(reason))


def to_hermes(reason: str) -> str:
    return TO_HERMES.get(reason, reason)
