"""A hermes process for the tests: loads plugins the way hermes does
(``hermes_cli.plugins.discover_plugins``, gated by ``plugins.enabled`` in
``$HERMES_HOME/config.yaml``), then drives the real ``hermes_state.SessionDB``
the way hermes's gateway, CLI and cron code call it.

    python hermes_driver.py SCENARIO   # HERMES_HOME must be set

Prints one JSON line per step; ``hold`` scenarios print ``ready`` and sleep
(to be killed with -9).
"""

from __future__ import annotations

import json
import sys
import time


def load_plugins() -> None:
    from hermes_cli.plugins import discover_plugins
    discover_plugins()


def db():
    from hermes_state import SessionDB
    return SessionDB()


def lifecycle(sdb) -> None:
    # A first message on telegram: the gateway creates the row with its key.
    sdb.create_session(session_id="g1", source="telegram", user_id="u1", session_key="agent:main:telegram:dm:1",
                       chat_id="c1", chat_type="dm")
    # /reset: the old session ends, a new one starts on the same key.
    sdb.promote_to_session_reset("g1", "session_reset")
    sdb.create_session(session_id="g2", source="telegram", user_id="u1", session_key="agent:main:telegram:dm:1")
    # An idle auto-reset and a daily reset, as SessionStore writes them.
    sdb.promote_to_session_reset("g2", "idle")
    sdb.create_session(session_id="g3", source="telegram", user_id="u1", session_key="agent:main:telegram:dm:1")
    sdb.promote_to_session_reset("g3", "daily")
    sdb.set_expiry_finalized("g2")
    # Agent cleanup closed a row as agent_close, then a reset promotes it.
    sdb.create_session(session_id="g4", source="discord", user_id="u2", session_key="agent:main:discord:dm:2")
    sdb.end_session("g4", "agent_close")
    sdb.promote_to_session_reset("g4", "session_reset")
    # A compression split: the parent ends `compression`, the child carries it on.
    sdb.create_session(session_id="c1", source="cli")
    sdb.end_session("c1", "compression")
    sdb.create_session(session_id="c2", source="cli", parent_session_id="c1")
    # /resume c1 from c2: c2 ends session_switch, c1 is reopened, then closed.
    sdb.end_session("c2", "session_switch")
    sdb.reopen_session("c1")
    sdb.end_session("c1", "cli_close")
    # A later stale end of an ended row: first reason wins, in both.
    sdb.end_session("c2", "cli_close")
    # A cron job.
    sdb.create_session(session_id="cron1", source="cron")
    sdb.end_session("cron1", "cron_complete")


def history(sdb) -> None:
    """An install's history: every transition of `lifecycle`, plus rows a
    crash left open."""
    lifecycle(sdb)
    sdb.create_session(session_id="open1", source="cli", user_id="me")
    sdb.create_session(session_id="open2", source="telegram", user_id="u3", session_key="agent:main:telegram:dm:3")


def hold(sdb, count: int, prefix: str = "h") -> None:
    for i in range(count):
        sdb.create_session(session_id=f"{prefix}{i}", source="cli", user_id="me")
        print(json.dumps({"created": f"{prefix}{i}"}), flush=True)
    print("ready", flush=True)
    time.sleep(120)


def open_and_mirror() -> None:
    """A later hermes process: the plugin's open recovers the dead one's
    sessions and its mirror closes their rows."""
    import bookend_hermes
    state = bookend_hermes.active()
    deadline = time.monotonic() + 20
    while state is not None and state.mirror is not None and time.monotonic() < deadline:
        report = state.journal.open_report
        if state.mirror.closed_rows >= len(report["crash_recovered"]):
            break
        time.sleep(0.05)
    print(json.dumps({"active": state is not None,
                      "closed_rows": state.mirror.closed_rows if state and state.mirror else 0}), flush=True)


def store_resets() -> None:
    """The gateway's own ``SessionStore`` deciding idle and daily resets,
    through its own clock (``gateway.session._now``, moved forward here):
    the reset paths that fire no plugin hook (seeds 000 and 001)."""
    from datetime import datetime, timedelta
    import os
    import pathlib
    import gateway.session as gs
    from gateway.config import GatewayConfig, Platform, SessionResetPolicy

    clock = [datetime(2026, 12, 2, 10, 0)]
    gs._now = lambda: clock[0]
    sessions = pathlib.Path(os.environ["HERMES_HOME"]) / "sessions"
    config = GatewayConfig(
        reset_by_platform={
            Platform.TELEGRAM: SessionResetPolicy(mode="idle", idle_minutes=30),
            Platform.DISCORD: SessionResetPolicy(mode="daily", at_hour=4),
        },
        sessions_dir=sessions,
    )
    store = gs.SessionStore(sessions, config)
    telegram = gs.SessionSource(platform=Platform.TELEGRAM, chat_id="t1", chat_type="dm", user_id="u1")
    discord = gs.SessionSource(platform=Platform.DISCORD, chat_id="d1", chat_type="dm", user_id="u2")
    seen = []
    seen.append(store.get_or_create_session(telegram).session_id)
    clock[0] += timedelta(minutes=10)
    seen.append(store.get_or_create_session(telegram).session_id)  # still fresh: the same session
    clock[0] += timedelta(minutes=31)
    seen.append(store.get_or_create_session(telegram).session_id)  # idle: a new one
    clock[0] = datetime(2026, 12, 2, 23, 0)
    seen.append(store.get_or_create_session(discord).session_id)
    clock[0] = datetime(2026, 12, 3, 4, 10)
    seen.append(store.get_or_create_session(discord).session_id)  # past 04:00: a new one
    print(json.dumps({"sessions": seen}), flush=True)


def main() -> None:
    scenario = sys.argv[1]
    load_plugins()
    sdb = db()
    if scenario == "lifecycle":
        lifecycle(sdb)
    elif scenario == "history":
        history(sdb)
    elif scenario == "hold":
        hold(sdb, int(sys.argv[2]), *sys.argv[3:4])
    elif scenario == "store_resets":
        store_resets()
    elif scenario == "open_and_mirror":
        open_and_mirror()
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print("done", flush=True)


if __name__ == "__main__":
    main()
