"""An existing install's history becomes the journal's: ``bookend-hermes
import`` reads a ``state.db`` written by hermes-agent 0.19.0's own
``SessionDB`` (every end reason the lifecycle scenario produces, a
compression chain, a reopened session, rows a crash left open) and an
OpenClaw-shaped ``sessions.json``. The counts match, ``bookend verify`` is
clean, a second import appends nothing, and a journal with other history is
refused unless ``--merge``.

Guards against the adoption cliff: users keep years of sessions in
``state.db`` and will not start from an empty journal, and an import that
doubles sessions when run twice would be worse than none.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import bookend

from conftest import verify


def run_import(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bookend_hermes.cli", "import", *args], capture_output=True,
                          text=True, timeout=120)


def test_a_hermes_state_db_imports_once(bare_home, tmp_path):
    bare_home.run("history")
    journal_dir = tmp_path / "imported"
    state = str(bare_home.path / "state.db")
    done = run_import("--state-db", state, "--dir", str(journal_dir))
    assert done.returncode == 0, done.stderr
    assert "imported 9 sessions" in done.stdout, done.stdout
    with bookend.open(journal_dir) as journal:
        rows = {s["session_id"]: s for s in journal.sessions()}
        events = journal.stats()["events"]
    assert len(rows) == 9
    assert rows["g2"]["end_reason"] == "idle_expiry" and rows["g2"]["expiry_finalized"] is True
    assert rows["g3"]["end_reason"] == "daily_reset" and rows["cron1"]["end_reason"] == "completed"
    assert rows["c2"]["parent_id"] == "c1" and rows["c2"]["end_reason"] == "switched"
    assert rows["g1"]["key"] == "agent:main:telegram:dm:1" and rows["g1"]["platform"] == "telegram"
    assert rows["open1"]["active"] and rows["open2"]["active"]
    assert verify(journal_dir).returncode == 0
    again = run_import("--state-db", state, "--dir", str(journal_dir))
    assert again.returncode == 0 and "imported 0 sessions (9 already" in again.stdout, again.stdout
    with bookend.open(journal_dir) as journal:
        # nothing but opens and closes: this test's close, the second
        # import's open and close, this open
        assert journal.stats()["events"] == events + 4
        assert len(journal.sessions()) == 9


def test_open_rows_can_be_reaped(bare_home, tmp_path):
    bare_home.run("history")
    done = run_import("--state-db", str(bare_home.path / "state.db"), "--dir", str(tmp_path / "j"),
                      "--open-rows", "reap")
    assert done.returncode == 0 and "0 kept active, 2 ended reaped" in done.stdout, done.stdout
    with bookend.open(tmp_path / "j") as journal:
        assert journal.get("open1")["end_reason"] == "reaped"


def test_other_history_is_refused_unless_merging(bare_home, tmp_path):
    bare_home.run("history")
    journal_dir = tmp_path / "j"
    with bookend.open(journal_dir) as journal:
        journal.start("elsewhere", key="x")
    refused = run_import("--state-db", str(bare_home.path / "state.db"), "--dir", str(journal_dir))
    assert refused.returncode == 1 and "--merge" in refused.stderr
    merged = run_import("--state-db", str(bare_home.path / "state.db"), "--dir", str(journal_dir), "--merge")
    assert merged.returncode == 0 and "imported 9 sessions" in merged.stdout


def test_an_openclaw_sessions_json_imports(tmp_path):
    now = int(time.time() * 1000)
    store = {
        "agent:main:telegram:dm:1": {"sessionId": "oc-1", "updatedAt": now - 60_000},
        "agent:main:discord:dm:2": {"sessionId": "oc-2", "updatedAt": now - 30_000},
    }
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps(store))
    done = run_import("--openclaw-sessions-json", str(path), "--agent", "main", "--dir", str(tmp_path / "oc"))
    assert done.returncode == 0 and "imported 2 sessions" in done.stdout, done.stdout + done.stderr
    with bookend.open(tmp_path / "oc") as journal:
        row = journal.get("oc-1")
        assert row["key"] == "agent:main:telegram:dm:1" and row["attrs"] == {"agent": "main"} and row["active"]
    again = run_import("--openclaw-sessions-json", str(path), "--agent", "main", "--dir", str(tmp_path / "oc"))
    assert "imported 0 sessions (2 already" in again.stdout
