"""The examples in ``examples/python/`` work against a real ``bookend serve``:
``example_gateway.py`` runs to completion twice, and the hermes gateway hook
(installed where its HOOK.yaml says, loaded by file path as hermes loads
hooks) forwards hermes 0.19.0's event shapes without blocking the event
loop, ending sessions by key because hermes's ``session:end`` carries no
session id.

Guards against seed 000 (``session:end`` never fired, or fired with nothing
to name the session by) and against examples that rot.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import time

import bookend

from conftest import ROOT

EXAMPLES = ROOT / "examples" / "python"


def test_example_gateway_runs_twice(server):
    env = dict(os.environ, BOOKEND_URL=server.url)
    for _ in range(2):
        done = subprocess.run([sys.executable, str(EXAMPLES / "example_gateway.py")], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("-") >= 2
    client = bookend.connect(server.url)
    assert client.stats()["sessions"]["total"] == 4
    assert client.pending_finalization() == []


def load_hook_like_hermes(home: pathlib.Path):
    target = home / ".hermes" / "hooks" / "bookend"
    shutil.copytree(EXAMPLES / "hermes_hook", target)
    spec = importlib.util.spec_from_file_location("hermes_hook_bookend", target / "handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hermes_gateway_hook_forwards_by_key(server, tmp_path, monkeypatch):
    monkeypatch.setenv("BOOKEND_URL", server.url)
    handler = load_hook_like_hermes(tmp_path / "home")
    key = "agent:main:discord:dm:9"

    async def gateway() -> float:
        started = time.monotonic()
        base = {"platform": "discord", "user_id": "u9"}
        await handler.handle("session:start", {**base, "session_id": "hook-1", "session_key": key})
        await handler.handle("agent:start", {**base, "chat_id": "c9", "session_id": "hook-1", "message": "hi"})
        await handler.handle("session:end", {**base, "session_key": key})
        await handler.handle("session:reset", {**base, "session_key": key})
        await handler.handle("session:start", {**base, "session_id": "hook-2", "session_key": key})
        await handler.handle("session:reset", {**base, "session_key": key})
        return time.monotonic() - started

    assert asyncio.run(gateway()) < 0.05, "the hook blocked the event loop"
    assert handler.drain(10)
    client = bookend.connect(server.url)
    first, second = client.get("hook-1"), client.get("hook-2")
    assert first["key"] == key and first["end_reason"] == "manual_reset"
    assert second["end_reason"] == "manual_reset" and second["spans"] == 1
