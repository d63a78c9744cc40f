"""Several hermes processes at once on one journal, as hermes really runs: a
gateway-like process and two CLI-like ones, each with the plugin loaded the
way hermes loads it, each creating sessions through the real
``hermes_state.SessionDB``. One CLI process is killed with -9: within 2 s a
survivor ends exactly its sessions ``crash_recovered`` in the journal
(without waiting for any later open), the mirror running in a surviving
process writes those ends into the state.db rows hermes left open, and the
other processes' sessions stay open. Without the plugin the same kill
leaves the rows open (the contrast seed 002 reports).

Guards against seed 002 where it happens: CLI processes killed by SIGKILL,
a closed terminal or the OOM killer beside a long-lived gateway, leaving
29% of sessions with ``ended_at = NULL``.
"""

from __future__ import annotations

import json
import subprocess
import time

from conftest import bookend_bin, kill9, verify

OPEN = 3


def spawn_holding(home, prefix: str):
    child, created = home.hold(OPEN, prefix)
    assert len(created) == OPEN, child.stderr.read() if child.stderr else ""
    return child, created


def ended_in_journal(home) -> dict[str, str]:
    out = subprocess.run([bookend_bin(), "tail", "--dir", str(home.journal), "--type", "session:end"],
                         capture_output=True, text=True, check=True)
    return {e["session_id"]: e["reason"] for e in map(json.loads, out.stdout.splitlines())}


def open_rows(home) -> set[str]:
    return {sid for sid, (ended_at, _, _) in home.rows().items() if ended_at is None}


def test_a_killed_cli_process_is_closed_by_the_survivors(home):
    gateway, gateway_sessions = spawn_holding(home, "gw")
    cli_a, a_sessions = spawn_holding(home, "cliA")
    cli_b, b_sessions = spawn_holding(home, "cliB")
    try:
        kill9(cli_a)
        killed_at = time.monotonic()
        while not all(ended_in_journal(home).get(s) == "crash_recovered" for s in a_sessions):
            assert time.monotonic() - killed_at < 2.0, "the dead CLI process's sessions were not ended within 2 s"
            time.sleep(0.02)
        detected = time.monotonic() - killed_at
        ended = ended_in_journal(home)
        assert not any(s in ended for s in gateway_sessions + b_sessions), "a live process's session was ended"
        # The mirror (in whichever survivor holds its cursor) closes the rows.
        deadline = time.monotonic() + 10
        while open_rows(home) & set(a_sessions):
            assert time.monotonic() < deadline, f"rows still open: {open_rows(home)}"
            time.sleep(0.05)
        print(f"ended in the journal {detected * 1000:.0f} ms after the kill; open rows now {sorted(open_rows(home))}")
        assert open_rows(home) == set(gateway_sessions + b_sessions)
        assert {home.rows()[s][1] for s in a_sessions} == {"crash_recovered"}
    finally:
        for child in (gateway, cli_b):
            kill9(child)
    # The last two died together: the next hermes process ends theirs too.
    home.run("open_and_mirror")
    assert open_rows(home) == set()
    assert verify(home.journal).returncode == 0


def test_without_the_plugin_the_killed_process_rows_stay_open(bare_home):
    gateway, _ = spawn_holding(bare_home, "gw")
    cli_a, a_sessions = spawn_holding(bare_home, "cliA")
    try:
        kill9(cli_a)
        time.sleep(2.0)
        assert set(a_sessions) <= open_rows(bare_home), "without bookend nothing closes them"
    finally:
        kill9(gateway)
