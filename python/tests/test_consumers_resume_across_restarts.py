"""A named consumer reads durable events (catch-up, then live), its ``ack``
survives closing and reopening the journal, and it resumes after what it
acknowledged, never before and never skipping; one name has one reader at a
time. Both faces; the asyncio form too.

Guards against seed 003's flush storm: an "already flushed" set kept in
memory is lost on restart and every session is flushed again. A durable
cursor is the set, on disk.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

import bookend


def test_catch_up_then_live_then_resume(face):
    for i in range(5):
        face.start(f"s{i}", key=f"k{i}")
    with face.events(consumer="mirror", types=["session:start", "session:end"]) as stream:
        seen = [stream.poll(5) for _ in range(5)]
        assert [e["session_id"] for e in seen] == [f"s{i}" for i in range(5)]
        assert all(e["type"] == "session:start" for e in seen)
        # live: an event appended after the stream caught up arrives
        threading.Timer(0.2, lambda: face.end("s0", "manual_reset")).start()
        live = stream.poll(5)
        assert live["type"] == "session:end" and live["session_id"] == "s0"
        stream.ack(seen[2]["lsn"])
    # the cursor is durable: a new stream of the same name resumes after it
    with face.events(consumer="mirror", types=["session:start", "session:end"], idle_timeout=0.5) as stream:
        again = list(stream)
    assert [e["session_id"] for e in again] == ["s3", "s4", "s0"]
    statuses = {c["name"]: c for c in face.stats()["consumers"]}
    assert statuses["mirror"]["acked_lsn"] == seen[2]["lsn"]


def test_one_reader_per_name(face):
    face.start("s1", key="k")
    with face.events(consumer="only"):
        with pytest.raises(bookend.ConsumerBusy) as caught:
            face.events(consumer="only")
        assert caught.value.consumer == "only"


def test_anonymous_stream_from_an_lsn(face):
    for i in range(3):
        face.start(f"s{i}", key=f"k{i}")
    with face.events(from_lsn=3, idle_timeout=0.3) as stream:
        lsns = [e["lsn"] for e in stream]
    assert lsns[0] == 3 and lsns == list(range(3, 3 + len(lsns)))


def test_async_for_reads_events(face):
    for i in range(4):
        face.start(f"s{i}", key=f"k{i}")

    async def read() -> list[str]:
        out = []
        with face.events(consumer="async", types=["session:start"], idle_timeout=0.5) as stream:
            async for event in stream:
                out.append(event["session_id"])
                await stream.ack_async(event["lsn"])
        return out

    assert asyncio.run(read()) == [f"s{i}" for i in range(4)]
    with face.events(consumer="async", types=["session:start"], idle_timeout=0.3) as stream:
        assert list(stream) == []


def test_cursor_survives_a_reopen_of_the_embedded_journal(tmp_path):
    directory = tmp_path / "j"
    with bookend.open(directory) as journal:
        for i in range(6):
            journal.start(f"s{i}", key=f"k{i}")
        with journal.events(consumer="hooks", types=["session:start"]) as stream:
            for _ in range(4):
                event = stream.poll(5)
            stream.ack(event["lsn"])
    with bookend.open(directory) as journal:
        with journal.events(consumer="hooks", types=["session:start"], idle_timeout=0.3) as stream:
            assert [e["session_id"] for e in stream] == ["s4", "s5"]
        with pytest.raises(bookend.InvalidAck):
            journal.ack("hooks", 10_000)
