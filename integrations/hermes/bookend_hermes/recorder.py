"""What each of hermes's lifecycle writes becomes in the journal.

hermes writes first; the recorder then appends the matching command. A
refusal that only says "already done" (a retried start, a second end) is
expected and quiet; any other failure is logged, at most once a minute per
kind, and hermes goes on.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import bookend

from .reasons import to_bookend

logger = logging.getLogger("bookend_hermes")

#: hermes end reasons a later reset may overwrite (promote_to_session_reset).
RECOVERABLE = ("agent_close", "ws_orphan_reap")

_ATTRS = ("chat_id", "chat_type", "thread_id", "profile_name", "cwd")


class Recorder:
    def __init__(self, journal: bookend.Journal) -> None:
        self.journal = journal
        self._last_logged: dict[str, float] = {}
        self.failures = 0

    def log_limited(self, what: str, error: BaseException) -> None:
        self.failures += 1
        now = time.monotonic()
        kind = f"{what}:{getattr(error, 'kind', type(error).__name__)}"
        if now - self._last_logged.get(kind, -1e9) >= 60:
            self._last_logged[kind] = now
            logger.warning("bookend could not journal %s (hermes carries on): %s", what, error)

    # ---- hermes's writes ----

    def created(self, session_id: str, source: str | None, fields: dict[str, Any]) -> None:
        attrs = {name: str(fields[name]) for name in _ATTRS if fields.get(name) is not None}
        try:
            self.journal.start(session_id, key=fields.get("session_key"), platform=source or None,
                               user_id=_text(fields.get("user_id")),
                               parent_id=_text(fields.get("parent_session_id")), attrs=attrs or None)
        except (bookend.KeyMismatch, bookend.SessionEnded):
            pass  # a later create/ensure of a row the journal already has
        except bookend.BookendError as e:
            self.log_limited("a session start", e)

    def ended(self, session_id: str, reason: str | None) -> None:
        try:
            self._end(session_id, to_bookend(reason))
        except bookend.BookendError as e:
            self.log_limited("a session end", e)

    def reopened(self, session_id: str) -> None:
        try:
            self.journal.reopen(session_id, "resume")
        except (bookend.AlreadyActive, bookend.UnknownSession):
            pass
        except bookend.BookendError as e:
            self.log_limited("a session reopen", e)

    def promoted(self, session_id: str, reason: str) -> None:
        """hermes re-ended a row as a reset. In the journal: an active
        session ends with the reset's reason; one ended ``agent_close`` or
        ``ws_orphan_reap`` is reopened and ended again, so each span still
        has exactly one end and the journal shows both."""
        try:
            row = self.journal.get(session_id)
            target = to_bookend(reason)
            if row is not None and not row["active"] and row["end_reason"] in RECOVERABLE:
                self.journal.reopen(session_id, "promote_to_session_reset")
            self._end(session_id, target)
        except bookend.BookendError as e:
            self.log_limited("a reset promotion", e)

    def finalized(self, session_id: str) -> None:
        try:
            self.journal.finalized(session_id)
        except bookend.UnknownSession:
            pass
        except bookend.BookendError as e:
            self.log_limited("an expiry finalization", e)

    def _end(self, session_id: str, reason: str) -> None:
        try:
            self.journal.end(session_id, reason)
        except bookend.UnknownSession:
            # A row from before the plugin was installed: adopt it, so its
            # end is journaled too.
            self.journal.start(session_id, attrs={"adopted": "true"})
            self.journal.end(session_id, reason)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
