"""Building a journal from an existing install's history.

``bookend-hermes import --state-db PATH [--sessions-json PATH] --dir D``
replays hermes's ``sessions`` table into the journal in time order: each
row's start (platform, user, key, parent, chat attrs, its own start time),
its end with the mapped reason and its own end time, ``expiry_finalized``
as ``session:expiry_finalized``; rows left open are kept active or ended
``reaped`` (``--open-rows``). ``--openclaw-sessions-json`` does the same
for OpenClaw's ``agents/<id>/sessions/sessions.json`` (no ends recorded
there, so every entry is an open row). Sessions the journal already has are
skipped, so a second import appends nothing; a journal with history that
did not come from this store is refused unless ``--merge``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import bookend

from .reasons import to_bookend

_ATTRS = ("chat_id", "chat_type", "thread_id", "profile_name", "cwd")


@dataclass
class Row:
    session_id: str
    started_ms: int
    key: str | None = None
    platform: str | None = None
    user_id: str | None = None
    parent_id: str | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    ended_ms: int | None = None
    reason: str | None = None
    finalized: bool = False


@dataclass
class Summary:
    started: int = 0
    skipped: int = 0
    ends: Counter = field(default_factory=Counter)
    finalized: int = 0
    open_kept: int = 0
    open_reaped: int = 0
    refused: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        out = [f"imported {self.started} sessions ({self.skipped} already in the journal, skipped)"]
        out += [f"  ended {reason}: {n}" for reason, n in sorted(self.ends.items())]
        out.append(f"  expiry finalized: {self.finalized}")
        out.append(f"  open rows: {self.open_kept} kept active, {self.open_reaped} ended reaped")
        out += [f"  refused ({kind}): {n}" for kind, n in sorted(self.refused.items())]
        return out


def hermes_rows(state_db: Path, sessions_json: Path | None) -> list[Row]:
    keys = _keys_from_sessions_json(sessions_json) if sessions_json else {}
    db = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        columns = {c[1] for c in db.execute("PRAGMA table_info(sessions)")}
        rows = db.execute("SELECT * FROM sessions ORDER BY started_at, id").fetchall()
    finally:
        db.close()
    out = []
    for r in rows:
        get = (lambda name: r[name] if name in columns else None)
        out.append(Row(
            session_id=r["id"], started_ms=int(float(r["started_at"]) * 1000),
            key=get("session_key") or keys.get(r["id"]), platform=get("source"), user_id=get("user_id"),
            parent_id=get("parent_session_id"),
            attrs={name: str(get(name)) for name in _ATTRS if get(name) is not None},
            ended_ms=None if get("ended_at") is None else int(float(get("ended_at")) * 1000),
            reason=get("end_reason"), finalized=bool(get("expiry_finalized")),
        ))
    return out


def _keys_from_sessions_json(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text())
    entries = data.get("sessions", data) if isinstance(data, dict) else {}
    out = {}
    for key, entry in entries.items():
        if isinstance(entry, dict) and entry.get("session_id"):
            out[str(entry["session_id"])] = key
    return out


def openclaw_rows(sessions_json: Path, agent: str | None) -> list[Row]:
    data = json.loads(sessions_json.read_text())
    out = []
    for key, entry in (data.items() if isinstance(data, dict) else []):
        if not isinstance(entry, dict) or not entry.get("sessionId"):
            continue
        updated = entry.get("updatedAt") or 0
        attrs = {"agent": agent} if agent else {}
        out.append(Row(session_id=str(entry["sessionId"]), started_ms=int(updated), key=str(key),
                       platform="openclaw", attrs=attrs))
    return sorted(out, key=lambda r: (r.started_ms, r.session_id))


def _timeline(rows: Iterable[Row]) -> list[tuple[int, bool, Row]]:
    """Starts and ends (``True`` for an end) in time order. ``rows`` come in
    the order the sessions started, which is finer than a millisecond: at
    the same millisecond, events go in that order, and a session's end
    after its own start. So an end comes before the start of any session
    that began after it (a key is free again before it is reused), even
    when a reset, its end and the next start share one millisecond."""
    events = []
    for rank, row in enumerate(rows):
        events.append((row.started_ms, rank, False, row))
        if row.ended_ms is not None:
            events.append((max(row.ended_ms, row.started_ms), rank, True, row))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return [(at, is_end, row) for at, _, is_end, row in events]


def run_import(journal: bookend.Journal, rows: list[Row], open_rows: str, merge: bool) -> Summary:
    ids = {r.session_id for r in rows}
    known = {s["session_id"] for s in journal.sessions()}
    foreign = known - ids
    if foreign and not merge:
        raise bookend.InvalidArgument(
            f"the journal already has {len(foreign)} sessions that are not in this store; "
            "pass --merge to import beside them")
    summary = Summary(skipped=len(ids & known))
    for at, is_end, row in _timeline(rows):
        if row.session_id in known:
            continue
        try:
            if not is_end:
                journal.start(row.session_id, key=row.key, platform=row.platform, user_id=row.user_id,
                              parent_id=row.parent_id, attrs=row.attrs or None, at=at)
                summary.started += 1
            else:
                _end(journal, row, at, summary)
        except bookend.CommandRefused as e:
            summary.refused[e.kind] += 1
    _close_open_rows(journal, rows, known, open_rows, summary)
    return summary


def _end(journal: bookend.Journal, row: Row, at: int, summary: Summary) -> None:
    reason = to_bookend(row.reason)
    ack = journal.end(row.session_id, reason, at=at)
    summary.ends[ack.get("reason", reason) if ack.duplicate else reason] += 1
    if row.finalized:
        journal.finalized(row.session_id, at=at)
        summary.finalized += 1


def _close_open_rows(journal: bookend.Journal, rows: list[Row], known: set[str], policy: str,
                     summary: Summary) -> None:
    now = int(time.time() * 1000)
    for row in rows:
        if row.ended_ms is not None or row.session_id in known:
            continue
        state = journal.get(row.session_id)
        if state is None or not state["active"]:
            continue  # refused, or ended by a later start on its key (superseded)
        if policy == "reap":
            journal.end(row.session_id, "reaped", at=max(now, state["last_activity_at"]))
            summary.open_reaped += 1
        else:
            summary.open_kept += 1
