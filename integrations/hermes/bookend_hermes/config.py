"""Where the plugin's settings come from: ``plugins.entries.bookend`` in
hermes's ``config.yaml``, then ``BOOKEND_JOURNAL_DIR``, then defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Settings:
    #: The journal directory (default ``$HERMES_HOME/bookend``).
    dir: Path
    #: ``durable`` (default) or ``buffered``.
    durability: str | None
    #: What the next open does with a killed process's sessions: ``end``
    #: them ``crash_recovered`` (default) or ``keep`` them.
    on_unclean: str
    #: Run the mirror (bookend's ends into state.db) in the process that
    #: holds the journal.
    mirror: bool
    #: The state.db the mirror writes (default ``$HERMES_HOME/state.db``).
    state_db: Path
    #: The mirror's consumer name (its durable cursor).
    consumer: str
    #: Share the journal with the other hermes processes (gateway, CLI,
    #: cron), each owning its sessions; a killed one's sessions are ended
    #: by a survivor within about ``writer_check_ms``. Default on: hermes
    #: is several processes. Off, a second process cannot open the journal.
    shared_writers: bool = True
    writer_check_ms: int = 500


def hermes_home() -> Path:
    try:
        from hermes_constants import get_hermes_home
        return Path(get_hermes_home())
    except Exception:  # noqa: BLE001 - hermes not importable: its documented default
        return Path(os.environ.get("HERMES_HOME") or Path.home() / ".hermes")


def _entries() -> dict[str, Any]:
    try:
        from hermes_cli.config import load_config
        plugins = load_config().get("plugins") or {}
    except Exception:  # noqa: BLE001
        return {}
    entries = plugins.get("entries") if isinstance(plugins, dict) else None
    section = entries.get("bookend") if isinstance(entries, dict) else None
    return section if isinstance(section, dict) else {}


def load() -> Settings:
    home = hermes_home()
    entry = _entries()
    directory = os.environ.get("BOOKEND_JOURNAL_DIR") or entry.get("dir") or home / "bookend"
    return Settings(
        dir=Path(os.path.expanduser(str(directory))),
        durability=entry.get("durability"),
        on_unclean=str(entry.get("on_unclean", "end")),
        mirror=bool(entry.get("mirror", True)),
        state_db=Path(os.path.expanduser(str(entry.get("state_db") or home / "state.db"))),
        consumer=str(entry.get("consumer", "hermes-mirror")),
        shared_writers=bool(entry.get("shared_writers", True)),
        writer_check_ms=int(entry.get("writer_check_ms", 500)),
    )
