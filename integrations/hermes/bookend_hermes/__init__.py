"""bookend-hermes: hermes-agent's session lifecycle journaled by bookend.

hermes loads this through the ``hermes_agent.plugins`` entry point and
calls :func:`register` once per process when ``plugins.enabled`` lists
``bookend``. Register opens the journal (``plugins.entries.bookend.dir``,
``BOOKEND_JOURNAL_DIR``, or ``$HERMES_HOME/bookend``) beside the other
hermes processes (``shared_writers``), wraps ``SessionDB``'s
lifecycle methods (``patch.py``), starts the state.db mirror, and closes
the journal at exit. A journal that cannot be opened is reported once, with
the reason, and hermes runs as it would without the plugin.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass
from typing import Any

import bookend

from . import config, patch
from .mirror import MirrorThread
from .recorder import Recorder

logger = logging.getLogger("bookend_hermes")

__all__ = ["register", "start", "stop", "active"]


@dataclass
class Active:
    journal: bookend.Journal
    recorder: Recorder
    settings: config.Settings
    mirror: MirrorThread | None


_lock = threading.Lock()
_active: Active | None = None


def active() -> Active | None:
    """The plugin's state in this process, if it holds a journal."""
    return _active


def start(settings: config.Settings | None = None) -> Active | None:
    """Opens the journal and patches SessionDB (idempotent)."""
    global _active
    with _lock:
        if _active is not None:
            return _active
        settings = settings or config.load()
        try:
            settings.dir.parent.mkdir(parents=True, exist_ok=True)
            journal = bookend.open(settings.dir, durability=settings.durability, on_unclean=settings.on_unclean,
                                   shared_writers=settings.shared_writers,
                                   writer_check_ms=settings.writer_check_ms)
        except (bookend.BookendError, OSError) as e:
            logger.warning("bookend: the journal %s cannot be opened, so this process's sessions are not"
                           " journaled: %s", settings.dir, e)
            return None
        from hermes_state import SessionDB

        recorder = Recorder(journal)
        patch.patch(SessionDB, recorder)
        mirror = None
        if settings.mirror:
            mirror = MirrorThread(journal, settings.state_db, settings.consumer)
            mirror.start()
        _active = Active(journal, recorder, settings, mirror)
        atexit.register(stop)
        report = journal.open_report
        if report["crash_recovered"]:
            logger.info("bookend: %d sessions left open by processes that died were ended crash_recovered",
                        len(report["crash_recovered"]))
        return _active


def stop() -> None:
    """Restores SessionDB and closes the journal (active sessions are kept
    for the next process: a restart, not a shutdown)."""
    global _active
    with _lock:
        current, _active = _active, None
    if current is None:
        return
    try:
        from hermes_state import SessionDB
        patch.unpatch(SessionDB)
    except ImportError:
        pass
    if current.mirror is not None:
        current.mirror.stop()
    current.journal.close()


def register(ctx: Any) -> None:
    """hermes's plugin entry point."""
    start()
