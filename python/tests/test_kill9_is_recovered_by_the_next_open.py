"""A Python process holding the journal, killed with -9, is recovered by the
next ``bookend.open`` exactly as with the Rust API: its active sessions end
``crash_recovered`` (or stay active with ``on_unclean="keep"``), and every
command it had been told was durable is there.

Guards against seed 002: 29% of sessions keep ``ended_at = NULL`` after
hard exits because nothing notices the exit. Here the next open notices.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import bookend

CHILD = textwrap.dedent("""
    import sys, time, bookend
    journal = bookend.open(sys.argv[1])
    for i in range(int(sys.argv[2])):
        journal.start(f"s{i}", key=f"k{i}")
        print(f"acked s{i}", flush=True)
    journal.end("s0", "manual_reset")
    print("ready", flush=True)
    time.sleep(60)
""")


def run_and_kill(directory: str, sessions: int) -> list[str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, directory, str(sessions)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    acked = []
    for line in child.stdout:
        if line.strip() == "ready":
            break
        acked.append(line.split()[1])
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    return acked


@pytest.mark.parametrize("policy", ["end", "keep"])
def test_kill9_then_open(tmp_path, policy):
    directory = str(tmp_path / "j")
    acked = run_and_kill(directory, 8)
    assert acked == [f"s{i}" for i in range(8)]
    with bookend.open(directory, on_unclean=policy) as journal:
        report = journal.open_report
        assert report["unclean"] is True
        rows = {s["session_id"]: s for s in journal.sessions()}
        assert sorted(rows) == sorted(acked), "an acknowledged start is missing"
        assert rows["s0"]["end_reason"] == "manual_reset"
        survivors = [f"s{i}" for i in range(1, 8)]
        if policy == "end":
            assert sorted(report["crash_recovered"]) == survivors
            assert all(rows[s]["end_reason"] == "crash_recovered" for s in survivors)
        else:
            assert report["crash_recovered"] == []
            assert all(rows[s]["active"] for s in survivors)
    # a clean close after recovery: the next open is clean
    with bookend.open(directory) as journal:
        assert journal.open_report["unclean"] is False


def test_the_lock_of_a_killed_process_is_not_held(tmp_path):
    directory = str(tmp_path / "j")
    run_and_kill(directory, 1)
    journal = bookend.open(directory)
    assert os.path.exists(os.path.join(directory, "bookend.lock"))
    journal.close()
