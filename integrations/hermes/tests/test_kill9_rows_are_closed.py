"""A hermes process killed with -9 with sessions open: without the plugin
its state.db rows keep ``ended_at = NULL`` forever (seed 002, 29% of
sessions); with it, the next hermes process's open ends them
``crash_recovered`` in the journal and its mirror writes that end into the
rows, so hermes's own session lists stop showing them as live. The mirror
only fills NULLs.
"""

from __future__ import annotations

import json
import signal

import bookend

from conftest import Home, kill9, verify

OPEN = 5


def kill_while_holding(home) -> list[str]:
    child, created = home.hold(OPEN)
    kill9(child)
    return created


def open_rows(home) -> list[str]:
    return sorted(sid for sid, (ended_at, _, _) in home.rows().items() if ended_at is None)


def test_without_the_plugin_the_rows_stay_open(bare_home):
    created = kill_while_holding(bare_home)
    bare_home.run("open_and_mirror")
    assert open_rows(bare_home) == sorted(created) and len(created) == OPEN


def test_with_the_plugin_the_next_process_closes_them(home):
    created = kill_while_holding(home)
    assert open_rows(home) == sorted(created) and len(created) == OPEN
    done = home.run("open_and_mirror")
    report = json.loads(done.stdout.splitlines()[0])
    assert report == {"active": True, "closed_rows": OPEN}
    assert open_rows(home) == []
    assert {home.rows()[sid][1] for sid in created} == {"crash_recovered"}
    with bookend.open(home.journal) as journal:
        assert all(journal.get(sid)["end_reason"] == "crash_recovered" for sid in created)
    assert verify(home.journal).returncode == 0


def test_a_second_process_while_the_journal_is_held_is_told_and_hermes_goes_on(tmp_path):
    # With shared_writers off, the journal has one writer at a time.
    home = Home(tmp_path / "hermes-single", enabled=True, settings="      shared_writers: false\n")
    holder = home.spawn("hold", "1")
    assert holder.stdout is not None
    for line in holder.stdout:
        if line.strip() == "ready":
            break
    try:
        done = home.run("lifecycle")
        assert "cannot be opened" in done.stderr and "locked" in done.stderr
        assert len(home.rows()) == 8  # hermes wrote all of its rows
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        holder.stdout.close()
        holder.stderr.close()
