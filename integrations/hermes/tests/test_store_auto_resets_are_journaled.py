"""hermes's own gateway ``SessionStore``, deciding idle and daily auto-
resets on its own clock (``gateway.session._now``, moved forward by the
driver), has every reset journaled: the expired session ends
``idle_expiry`` or ``daily_reset`` and the new one starts on the same key,
while a message inside the idle window keeps the session.

Guards against seeds 000 and 001 end to end: in hermes-agent 0.19.0 those
resets run inside ``SessionStore.get_or_create_session`` and fire no
plugin hook, so a plugin that relied on hooks would see none of them. The
plugin sees them because the store writes them through ``SessionDB``.
"""

from __future__ import annotations

import json

import bookend

from conftest import verify


def test_idle_and_daily_resets_decided_by_the_store(home):
    done = home.run("store_resets")
    seen = json.loads(done.stdout.splitlines()[0])["sessions"]
    first, same, after_idle, discord, after_daily = seen
    assert same == first and after_idle != first and after_daily != discord
    with bookend.open(home.journal) as journal:
        rows = {s["session_id"]: s for s in journal.sessions()}
    assert sorted(rows) == sorted({first, after_idle, discord, after_daily})
    assert rows[first]["end_reason"] == "idle_expiry"
    assert rows[discord]["end_reason"] == "daily_reset"
    assert rows[after_idle]["active"] and rows[after_daily]["active"]
    assert rows[first]["key"] == rows[after_idle]["key"] == "agent:main:telegram:dm:t1"
    assert rows[discord]["key"] == rows[after_daily]["key"] == "agent:main:discord:dm:d1"
    assert all(r["spans"] == 1 for r in rows.values())
    check = verify(home.journal)
    assert check.returncode == 0, check.stdout + check.stderr
    # hermes's own rows say the same.
    state = home.rows()
    assert state[first][1] == "idle" and state[discord][1] == "daily"
    assert state[after_idle][0] is None and state[after_daily][0] is None
