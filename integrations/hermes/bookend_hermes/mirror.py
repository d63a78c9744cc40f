"""bookend's ends written back into the ``state.db`` rows hermes left open.

A durable consumer of ``session:end`` events. Only ends bookend made
itself are written back (``ORIGINATED``: a killed process's sessions ended
by the next open, a reaper, a start that superseded a leaked session, a
shutdown drain): every other end came from hermes's own write, which is
already in its row. For each, if bookend still says the session is ended
by that very end (it was not reopened since), the row is updated ``WHERE
ended_at IS NULL`` with bookend's time and reason. It only fills NULLs; an
end hermes wrote is never rewritten. The
cursor is acknowledged after the row is committed, so a crash replays at
most the last end, which the NULL guard makes harmless.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import bookend

from .reasons import to_hermes

logger = logging.getLogger("bookend_hermes")


#: How often a process whose mirror cursor another hermes process holds
#: tries again (one process mirrors at a time; another takes over when it
#: exits or dies).
BUSY_RETRY_SECONDS = 1.0

#: End reasons only bookend produces.
ORIGINATED = frozenset({"crash_recovered", "reaped", "superseded", "shutdown", "restart"})


def apply(db: sqlite3.Connection, journal: bookend.Journal, event: dict) -> bool:
    """Writes one end into state.db; whether a row changed."""
    if event.get("reason") not in ORIGINATED:
        return False
    sid = event.get("session_id")
    row = journal.get(sid) if sid else None
    if row is None or row["active"] or row["end_lsn"] != event["lsn"]:
        return False
    cursor = db.execute(
        "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
        (event["at"] / 1000.0, to_hermes(event["reason"]), sid),
    )
    db.commit()
    return cursor.rowcount > 0


def _connect(state_db: Path) -> sqlite3.Connection:
    db = sqlite3.connect(state_db, timeout=30)
    db.execute("PRAGMA busy_timeout = 30000")
    return db


def run_once(journal: bookend.Journal, state_db: Path, consumer: str = "hermes-mirror",
             idle_timeout: float = 0.5) -> int:
    """Mirrors every end not yet mirrored; returns how many rows it closed."""
    closed = 0
    db = _connect(state_db)
    try:
        with journal.events(consumer=consumer, types=["session:end"], idle_timeout=idle_timeout) as stream:
            for event in stream:
                closed += apply(db, journal, event)
                stream.ack(event["lsn"])
    finally:
        db.close()
    return closed


class MirrorThread(threading.Thread):
    """The mirror inside the process that holds the journal."""

    def __init__(self, journal: bookend.Journal, state_db: Path, consumer: str) -> None:
        super().__init__(name="bookend-hermes-mirror", daemon=True)
        self.journal, self.state_db, self.consumer = journal, state_db, consumer
        self.stopping = threading.Event()
        self.closed_rows = 0

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    self._mirror()
                except bookend.ConsumerBusy:
                    # Another hermes process mirrors; take over if it dies.
                    self.stopping.wait(BUSY_RETRY_SECONDS)
        except bookend.Closed:
            pass
        except Exception as e:  # noqa: BLE001 - the mirror must not take hermes down
            logger.warning("bookend's state.db mirror stopped: %s (run `bookend-hermes mirror` to catch up)", e)

    def _mirror(self) -> None:
        db = _connect(self.state_db)
        try:
            with self.journal.events(consumer=self.consumer, types=["session:end"]) as stream:
                while not self.stopping.is_set():
                    event = stream.poll(0.2)
                    if event is None:
                        continue
                    self.closed_rows += self._apply(db, event)
                    stream.ack(event["lsn"])
        finally:
            db.close()

    def _apply(self, db: sqlite3.Connection, event: dict) -> bool:
        try:
            return apply(db, self.journal, event)
        except sqlite3.OperationalError as e:
            # state.db has no sessions table yet (hermes creates it lazily):
            # nothing to close there.
            logger.debug("mirror: %s", e)
            return False

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
