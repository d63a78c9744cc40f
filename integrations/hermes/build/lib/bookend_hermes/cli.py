"""``bookend-hermes``: the mirror and a status line, outside hermes.

    bookend-hermes mirror [--dir D] [--state-db P]   # bookend's ends into state.db, then exit
    bookend-hermes status [--dir D] [--state-db P]   # open rows in state.db vs bookend
    bookend-hermes import [--dir D] [--state-db P] [--sessions-json P] [--open-rows keep|reap] [--merge]
    bookend-hermes import --openclaw-sessions-json P [--agent NAME] --dir D

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
from .importer import hermes_rows, openclaw_rows, run_import
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
    parser.add_argument("command", choices=["mirror", "status", "import"])
    parser.add_argument("--dir", type=Path, default=settings.dir)
    parser.add_argument("--state-db", type=Path, default=settings.state_db)
    parser.add_argument("--sessions-json", type=Path, help="hermes's sessions.json, for keys state.db lacks")
    parser.add_argument("--openclaw-sessions-json", type=Path, help="import OpenClaw's sessions.json instead")
    parser.add_argument("--agent", help="the OpenClaw agent id, kept as the attr `agent`")
    parser.add_argument("--open-rows", choices=["keep", "reap"], default="keep")
    parser.add_argument("--merge", action="store_true", help="import beside history from elsewhere")
    args = parser.parse_args(argv)
    if args.command == "import":
        return import_command(args)
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


def import_command(args: argparse.Namespace) -> int:
    try:
        if args.openclaw_sessions_json:
            rows = openclaw_rows(args.openclaw_sessions_json, args.agent)
        else:
            rows = hermes_rows(args.state_db, args.sessions_json)
    except (OSError, ValueError, sqlite3.Error) as e:
        print(f"bookend-hermes import: cannot read the store: {e}", file=sys.stderr)
        return 1
    try:
        # Buffered: the close at the end makes the whole import durable at once.
        with bookend.open(args.dir, durability="buffered") as journal:
            summary = run_import(journal, rows, args.open_rows, args.merge)
    except bookend.BookendError as e:
        print(f"bookend-hermes import: {e}", file=sys.stderr)
        return 1
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
