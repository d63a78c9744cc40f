"""With the plugin installed and enabled the way a user does it (pip, then
``plugins.enabled: [bookend]``), every lifecycle write hermes-agent 0.19.0's
real ``SessionDB`` makes is in the journal with the mapped reason: resets,
idle and daily auto-resets, an ``agent_close`` row promoted to a reset, a
compression split with its parent chain, a ``/resume`` switch and reopen,
expiry finalization, cron. Each span has exactly one end, ``bookend
verify`` is clean, and hermes's own rows are what hermes wrote.

Guards against seeds 000 and 001: ``session:end`` never fired for auto-
resets, and memory hooks never ran on expiry, because those paths call no
plugin hook. They all call SessionDB, which the plugin wraps.
"""

from __future__ import annotations

import bookend

from conftest import verify


def test_every_transition_with_its_mapped_reason(home):
    home.run("lifecycle")
    with bookend.open(home.journal) as journal:
        rows = {s["session_id"]: s for s in journal.sessions()}
        events = [e for e in journal.events(from_lsn=1, idle_timeout=0.3)]
    assert sorted(rows) == ["c1", "c2", "cron1", "g1", "g2", "g3", "g4"]
    expected = {"g1": "manual_reset", "g2": "idle_expiry", "g3": "daily_reset", "g4": "manual_reset",
                "c1": "cli_close", "c2": "switched", "cron1": "completed"}
    assert {sid: rows[sid]["end_reason"] for sid in rows} == expected
    assert rows["g1"]["key"] == "agent:main:telegram:dm:1" and rows["g1"]["platform"] == "telegram"
    assert rows["g1"]["user_id"] == "u1" and rows["g1"]["attrs"] == {"chat_id": "c1", "chat_type": "dm"}
    assert rows["c2"]["parent_id"] == "c1"
    assert rows["g2"]["expiry_finalized"] is True
    # c1 was reopened once (two spans); g4's agent_close span and its reset span
    assert rows["c1"]["spans"] == 2 and rows["g4"]["spans"] == 2
    ends = [e for e in events if e["type"] == "session:end"]
    per_session = {}
    for e in ends:
        per_session.setdefault(e["session_id"], []).append(e["reason"])
    assert per_session["c1"] == ["compression", "cli_close"]
    assert per_session["g4"] == ["agent_close", "manual_reset"]
    assert all(len(per_session[s]) == rows[s]["spans"] for s in rows), per_session
    done = verify(home.journal)
    assert done.returncode == 0, done.stdout + done.stderr
    # hermes's own rows: untouched by the plugin (first reason wins there too)
    state = home.rows()
    assert state["c2"][1] == "session_switch" and state["c1"][1] == "cli_close"
    assert state["g4"][1] == "session_reset" and state["c2"][2] == "c1"


def test_the_plugin_is_not_loaded_unless_enabled(bare_home):
    bare_home.run("lifecycle")
    assert not bare_home.journal.exists()
    assert len(bare_home.rows()) == 7
