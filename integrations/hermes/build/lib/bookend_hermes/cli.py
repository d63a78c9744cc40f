"""``bookend-hermes``: the mirror and a status line, outside hermes.

    bookend-hermes mirror [--dir D] [--state-db P]   # bookend's ends into state.db, then exit
    bookend-hermes status [--dir D] [--state-db P]   # open rows in state.db vs bookend

Both open the journal for writing (a hermes process holding it runs the
mirror itself, so these are for when none does).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

import bookend

from . import config
from .mirror import run_once


def open_rows(state_db: Path) -> int:
    db = sqlite3.connect(state_db, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM sessions WHERE ended_at IS NULL").fetchone()[0]
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    settings = config.load()
    parser = argparse.ArgumentParser(prog="bookend-hermes")
    parser.add_argument("command", choices=["mirror", "status"])
    parser.add_argument("--dir", type=Path, default=settings.dir)
    parser.add_argument("--state-db", type=Path, default=settings.state_db)
    args = parser.parse_args(argv)
    try:
        with bookend.open(args.dir, on_unclean=settings.on_unclean) as journal:
            if args.command == "mirror":
                closed = run_once(journal, args.state_db, settings.consumer)
                print(f"closed {closed} state.db rows that bookend had ended")
            else:
                stats = journal.stats()["sessions"]
                print(f"bookend: {stats['active']} active, {stats['ended']} ended; "
                      f"state.db: {open_rows(args.state_db)} rows with ended_at NULL")
    except bookend.BookendError as e:
        print(f"bookend-hermes: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
