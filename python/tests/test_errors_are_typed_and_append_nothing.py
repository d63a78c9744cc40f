"""Every refusal is a typed exception whose class and ``kind`` match the JSON
error kinds, carries the error's details as attributes, and appends
nothing; wrong argument types raise ``TypeError`` before anything is sent.
The same assertions hold embedded and against a real server.

Guards against the seeds' silent failures: a gateway that catches a bare
``Exception`` cannot tell "this session already ended" (harmless) from
"the journal is gone" (stop), and a half-applied bad command is state that
contradicts the journal.
"""

from __future__ import annotations

import glob
import os

import pytest

import bookend


def events(face) -> int:
    return face.stats()["events"]


REFUSALS = [
    ("touch ghost", lambda f: f.touch("ghost"), bookend.UnknownSession, {"session_id": "ghost"}),
    ("touch ended", lambda f: f.touch("done"), bookend.SessionEnded, {"session_id": "done", "reason": "manual_reset"}),
    ("busy key", lambda f: f.start("other", key="busy", supersede=False), bookend.KeyBusy,
     {"key": "busy", "active_id": "live"}),
    ("key mismatch", lambda f: f.start("live", key="elsewhere"), bookend.KeyMismatch,
     {"session_id": "live", "existing": "busy", "requested": "elsewhere"}),
    ("reopen active", lambda f: f.reopen("live"), bookend.AlreadyActive, {"session_id": "live"}),
    ("empty id", lambda f: f.start("", key="k"), bookend.InvalidCommand, {}),
    ("empty marker", lambda f: f.flush("live", ""), bookend.EmptyField, {"field": "marker"}),
    ("long id", lambda f: f.start("x" * 129, key="k"), bookend.TooLong, {"field": "session_id", "max": 128}),
    ("long key", lambda f: f.start("s", key="k" * 1025), bookend.TooLong, {"field": "key"}),
    ("huge attrs", lambda f: f.start("s", key="k", attrs={"a": "v" * 20_000}), bookend.TooLong, {}),
    ("many attrs", lambda f: f.start("s", key="k", attrs={f"a{i}": "v" for i in range(65)}), bookend.TooLong, {}),
    ("escape in reason", lambda f: f.end("live", "ok\x1b[2J"), bookend.InvalidChars, {"field": "reason"}),
    ("far future", lambda f: f.touch("live", at=2**62), bookend.InvalidTime, {}),
    ("failed after finalized", lambda f: f.finalize_failed("final", "late"), bookend.AlreadyFinalized,
     {"session_id": "final"}),
]


@pytest.mark.parametrize("name,call,cls,details", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_are_typed_and_append_nothing(face, name, call, cls, details):
    face.start("live", key="busy")
    face.start("done", key="other")
    face.end("done", "manual_reset")
    face.start("final", key="third")
    face.end("final", "idle_expiry")
    face.finalized("final")
    before = events(face)
    with pytest.raises(bookend.CommandRefused) as caught:
        call(face)
    error = caught.value
    assert type(error) is cls, f"{name}: {type(error).__name__} {error}"
    assert bookend.BY_KIND[error.kind] is type(error)
    assert error.message and error.kind in str(error)
    for attr, value in details.items():
        assert getattr(error, attr) == value, f"{name}: {attr} = {getattr(error, attr)!r}"
    assert events(face) == before, f"{name}: a refused command appended something"
    assert face.get("live")["active"] is True


WRONG_TYPES = [
    lambda f: f.start(42),
    lambda f: f.start("s", key=7),
    lambda f: f.start("s", attrs={"n": 1}),
    lambda f: f.start("s", attrs=["a"]),
    lambda f: f.start("s", supersede="no"),
    lambda f: f.touch(None),
    lambda f: f.flush("s", None),
    lambda f: f.end("s"),
    lambda f: f.end(reason="r"),
    lambda f: f.end("s", "r", key="k"),
    lambda f: f.expire(),
    lambda f: f.expire(idle_minutes="30"),
    lambda f: f.expire(idle_minutes=True),
    lambda f: f.reap(-1),
    lambda f: f.get(3),
    lambda f: f.sessions(limit=0),
    lambda f: f.sessions(active="yes"),
    lambda f: f.pending_flush(1),
    lambda f: f.events(from_lsn=0),
    lambda f: f.ack("c", "1"),
]


@pytest.mark.parametrize("call", WRONG_TYPES, ids=[f"case{i}" for i in range(len(WRONG_TYPES))])
def test_wrong_argument_types_raise_before_sending(face, call):
    before = events(face)
    with pytest.raises((TypeError, ValueError)):
        call(face)
    assert events(face) == before


def test_consumer_and_from_lsn_together_are_refused(face):
    with pytest.raises(bookend.BookendError) as caught:
        face.events(consumer="c", from_lsn=3)
    assert caught.value.kind in ("invalid_argument", "invalid_query")


def test_a_second_writer_is_told_who_holds_the_journal(tmp_path):
    with bookend.open(tmp_path / "j"):
        with pytest.raises(bookend.Locked) as caught:
            bookend.open(tmp_path / "j")
    assert caught.value.pid == os.getpid()
    assert str(tmp_path / "j") in str(caught.value)


def test_corruption_names_the_segment_and_offset(tmp_path):
    directory = tmp_path / "j"
    with bookend.open(directory) as journal:
        for i in range(50):
            journal.start(f"s{i}", key=f"k{i}")
    (segment,) = glob.glob(str(directory / "*.wal"))
    data = bytearray(open(segment, "rb").read())
    end = len(data.rstrip(b"\0"))
    data[end // 2] ^= 0xFF
    open(segment, "wb").write(data)
    with pytest.raises(bookend.Corruption) as caught:
        bookend.open(directory)
    assert caught.value.segment == segment
    assert isinstance(caught.value.offset, int) and 0 < caught.value.offset < end
    assert "bookend repair" in caught.value.message


def test_calls_after_close_raise_closed(tmp_path):
    journal = bookend.open(tmp_path / "j")
    journal.start("s1", key="k")
    assert journal.close()["ok"] is True
    assert journal.close() is None
    with pytest.raises(bookend.Closed):
        journal.touch("s1")
    with pytest.raises(bookend.Closed):
        journal.stats()


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(bookend.InvalidArgument):
        bookend.open(tmp_path / "j", durability="sometimes")
    with pytest.raises(bookend.InvalidArgument):
        bookend.open(tmp_path / "j", on_unclean="maybe")
    with pytest.raises(ValueError):
        bookend.connect("ftp://nowhere")


def test_an_unreachable_server_is_unavailable():
    client = bookend.connect("http://127.0.0.1:9")
    with pytest.raises(bookend.Unavailable):
        client.start("s1", key="k")
