"""Every method of the journal API does what docs/python.md says, and answers
in the same shapes embedded and over HTTP (each test runs against
``bookend.open`` and against ``bookend.connect`` to a real ``bookend serve``).

Guards against the seeds' core failure, a lifecycle transition nobody can
see afterwards: each command here is checked through the state it leaves
(``get``, ``sessions``, the pending lists, ``stats``), not just its ack.
"""

from __future__ import annotations

import time

import bookend



def test_start_mints_an_id_and_retries_return_the_original(face):
    ack = face.start(key="telegram:42", platform="telegram", user_id="u1", source="dm",
                     attrs={"lang": "en"})
    assert isinstance(ack, bookend.Ack) and ack["ok"] is True
    assert len(ack.session_id) == 36 and ack.lsn >= 2
    again = face.start(ack.session_id, key="telegram:42", platform="telegram", user_id="u1", source="dm",
                       attrs={"lang": "en"})
    assert again.lsn == ack.lsn and again.duplicate
    row = face.get(ack.session_id)
    assert row["active"] is True and row["key"] == "telegram:42" and row["attrs"] == {"lang": "en"}
    assert row["platform"] == "telegram" and row["user_id"] == "u1" and row["source"] == "dm"


def test_a_start_on_a_busy_key_supersedes_and_names_the_successor(face):
    first = face.start("s1", key="k")
    second = face.start("s2", key="k", parent_id="s1")
    assert [e["type"] for e in second.events] == ["session:end", "session:start"]
    old = face.get("s1")
    assert old["active"] is False and old["end_reason"] == "superseded" and old["next_id"] == "s2"
    assert first.lsn < second.lsn
    assert face.get("s2")["parent_id"] == "s1"


def test_touch_flush_end_reopen(face):
    face.start("s1", key="k")
    face.touch("s1")
    flushed = face.flush("s1", "memory")
    assert flushed.lsn is not None
    assert face.flush("s1", "memory").duplicate
    end = face.end("s1", "manual_reset")
    repeat = face.end("s1", "idle_expiry")
    assert repeat.duplicate and repeat.lsn == end.lsn and repeat["reason"] == "manual_reset"
    assert face.get("s1")["flush_markers"] == ["memory"]
    face.reopen("s1")
    row = face.get("s1")
    assert row["active"] is True and row["spans"] == 2


def test_end_by_key_ends_the_active_session_of_that_key(face):
    face.start("s1", key="telegram:7")
    ack = face.end(key="telegram:7", reason="session_reset")
    assert ack.session_id == "s1"
    assert face.get("s1")["end_reason"] == "session_reset"


def test_expire_then_finalize_once(face):
    now = int(time.time() * 1000)
    face.start("old", key="a", at=now - 3_600_000)
    face.start("new", key="b", at=now - 60_000)
    ack = face.expire(idle_minutes=30, at=now)
    assert ack.session_id == "old" or [e["session_id"] for e in ack.events] == ["old"]
    assert [s["session_id"] for s in face.pending_finalization()] == ["old"]
    face.finalize_failed("old", "provider timed out", at=now + 1)
    assert face.get("old")["finalize_attempts"] == 1
    done = face.finalized("old", at=now + 2)
    assert face.pending_finalization() == []
    assert face.get("old")["expiry_finalized"] is True
    events = face.stats()["events"]
    repeat = face.finalized("old", at=now + 3)
    assert repeat.duplicate and repeat.lsn == done.lsn and face.stats()["events"] == events


def test_reap_ends_sessions_without_activity(face):
    now = int(time.time() * 1000)
    face.start("stale", key="a", at=now - 200_000)
    face.start("fresh", key="b", at=now - 1_000)
    ack = face.reap(90_000, at=now)
    assert face.get("stale")["end_reason"] == "reaped" and face.get("fresh")["active"] is True
    assert ack.lsn is not None


def test_listings_and_pending_flush(face):
    for i in range(5):
        face.start(f"s{i}", key=f"k{i}")
    face.end("s1", "manual_reset")
    face.end("s3", "manual_reset")
    face.flush("s3", "mirror")
    assert [s["session_id"] for s in face.sessions()] == [f"s{i}" for i in range(5)]
    assert [s["session_id"] for s in face.sessions(active=True)] == ["s0", "s2", "s4"]
    assert [s["session_id"] for s in face.sessions(active=False, end_reason="manual_reset")] == ["s1", "s3"]
    assert [s["session_id"] for s in face.sessions(key="k2")] == ["s2"]
    assert len(face.sessions(limit=2)) == 2
    assert [s["session_id"] for s in face.pending_flush("mirror")] == ["s1"]
    assert face.get("ghost") is None


def test_stats_count_what_happened(face):
    face.start("s1", key="k1")
    face.start("s2", key="k2")
    face.end("s1", "idle_expiry")
    stats = face.stats()
    assert stats["sessions"] == {"total": 2, "active": 1, "ended": 1, "awaiting_finalization": 1}
    assert stats["ends_by_reason"] == {"idle_expiry": 1}
    assert stats["epoch_open"] is True and stats["durable_lsn"] == stats["events"]
    assert len(stats["journal_id"]) == 36 and face.journal_id == stats["journal_id"]
