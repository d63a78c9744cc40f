"""``batch([...])`` runs many commands as one group on both faces (embedded
and over HTTP): one answer per command in order, refusals returned rather
than raised so the rest go on, later commands seeing earlier ones, and one
fsync for the whole batch rather than one per command.

Guards against a gateway that imports years of sessions, or records a burst
of resets, at the speed of one fsync per command (~7k/s), and against a
batch that stops at its first refused command and loses the rest.
"""

from __future__ import annotations

import pytest

import bookend


def test_a_batch_of_1000_commands_shares_its_fsyncs(face):
    cmds = []
    for i in range(500):
        cmds.append({"cmd": "start", "session_id": f"b{i}", "key": f"bk{i}"})
        cmds.append({"cmd": "end", "session_id": f"b{i}", "reason": "manual_reset"})
    before = face.stats()["writer"]
    answers = face.batch(cmds)
    after = face.stats()
    assert len(answers) == 1000
    assert all(isinstance(a, bookend.Ack) and a.lsn for a in answers), answers[:3]
    fsyncs = after["writer"]["fsyncs"] - before["fsyncs"]
    assert after["writer"]["appends"] - before["appends"] == 1000
    # One fsync for the batch (a second when the writer thread was already
    # syncing something else as the batch began).
    assert fsyncs <= 2, f"{fsyncs} fsyncs for one batch"
    assert after["sessions"]["ended"] >= 500


def test_refusals_answer_for_themselves_and_later_commands_see_earlier_ones(face):
    answers = face.batch([
        {"cmd": "start", "session_id": "x1", "key": "shared"},
        {"cmd": "end", "session_id": "nobody", "reason": "manual_reset"},
        {"cmd": "start", "session_id": "x2", "key": "shared"},
        {"cmd": "bogus"},
    ])
    assert isinstance(answers[0], bookend.Ack)
    assert isinstance(answers[1], bookend.BookendError) and answers[1].kind == "unknown_session"
    assert isinstance(answers[2], bookend.Ack)
    assert isinstance(answers[3], bookend.BookendError) and answers[3].kind == "invalid_command"
    assert face.get("x1")["end_reason"] == "superseded"
    assert face.get("x2")["active"] is True


def test_batch_checks_its_argument(face):
    with pytest.raises(TypeError):
        face.batch({"cmd": "start"})
    with pytest.raises(TypeError):
        face.batch(["start"])
    assert face.batch([]) == []
