"""Runs the Python example against a real `bookend serve`.

    python3 examples/python/test_example.py --bookend target/debug/bookend

Starts the server on a random loopback port over a fresh journal, then
checks: command round trips through the client; an SSE consumer that
acknowledges as it goes and resumes after a reconnect without re-reading;
the hermes hook adapter forwarding session:start/session:end without
blocking; and a clean SIGTERM. Ends with "N passed, M failed".
"""

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bookend_client import BookendClient, BookendError, consume  # noqa: E402

results = []


def check(name, condition, detail=""):
    results.append((name, bool(condition)))
    print(f"{'ok  ' if condition else 'FAIL'} {name}{(': ' + str(detail)) if detail and not condition else ''}")


def start_server(binary, journal_dir):
    server = subprocess.Popen(
        [binary, "serve", "--dir", journal_dir, "--listen", "127.0.0.1:0", "--on-shutdown", "end"],
        stdout=subprocess.PIPE, text=True)
    line = server.stdout.readline()
    return server, line.strip().rsplit(" ", 1)[-1]


def test_commands(client):
    ack = client.start("py-1", key="telegram:42", platform="telegram", user_id="u1")
    check("start returns an LSN", ack["ok"] and ack["lsn"] >= 2, ack)
    again = client.start("py-1", key="telegram:42", platform="telegram", user_id="u1")
    check("a retried start returns the original LSN", again.get("duplicate") and again["lsn"] == ack["lsn"], again)
    superseding = client.start("py-2", key="telegram:42")
    check("auto-reset ends the old session in the same batch",
          superseding["events"][0]["type"] == "session:end" and superseding["events"][0]["session_id"] == "py-1", superseding)
    try:
        client.touch("nobody")
        check("an unknown session is refused", False)
    except BookendError as e:
        check("an unknown session is refused", e.kind == "unknown_session", e)
    acks = client.commands([{"cmd": "flush", "session_id": "py-1", "marker": "memory"},
                            {"cmd": "end", "session_id": "py-2", "reason": "manual_reset"}])
    check("an array of commands gets an array of acks", [a["ok"] for a in acks] == [True, True], acks)
    old = client.session("py-1")
    check("session py-1 ended superseded by py-2",
          old and old["end_reason"] == "superseded" and old["next_id"] == "py-2" and old["flush_markers"] == ["memory"], old)
    check("no active sessions", client.sessions(active=True) == [], client.sessions(active=True))
    check("health", client.health()["journal_open"] is True)


def test_consumer(client):
    seen = []

    def handle(event):
        seen.append(event["lsn"])

    consume(client, "py-memory", handle, stop=lambda: len(seen) >= 3)
    check("the consumer read the first events in order", seen == [1, 2, 3], seen)
    more = []
    consume(client, "py-memory", lambda e: more.append(e["lsn"]), stop=lambda: len(more) >= 2)
    check("it resumes after what it acknowledged", more == [4, 5], more)
    live = []
    stop = threading.Event()
    thread = threading.Thread(target=consume, args=(client, "py-live", lambda e: live.append(e)),
                              kwargs={"types": ["session:start"], "stop": stop.is_set}, daemon=True)
    thread.start()
    client.start("py-3", key="slack:1")
    deadline = time.monotonic() + 10
    while not any(e["session_id"] == "py-3" for e in live) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    client.touch("py-3")  # wakes the stream so the consumer sees the stop flag
    check("a live consumer sees new starts", any(e["session_id"] == "py-3" for e in live), live)


def load_hook_like_hermes(home):
    """Installs the hook where its HOOK.yaml says (~/.hermes/hooks/bookend,
    under a temporary home) and loads handler.py from there the way hermes
    does (by file path, nothing added to sys.path)."""
    import importlib.util
    target = os.path.join(home, ".hermes", "hooks", "bookend")
    shutil.copytree(os.path.join(HERE, "hermes_hook"), target)
    spec = importlib.util.spec_from_file_location("hermes_hook_bookend", os.path.join(target, "handler.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hook(base_url, workdir):
    os.environ["BOOKEND_URL"] = base_url
    handler = load_hook_like_hermes(os.path.join(workdir, "home"))
    key = "agent:main:discord:dm:9"

    async def gateway():
        # The shapes hermes 0.19.0 emits (gateway/run.py, gateway/slash_commands.py):
        # session:end and session:reset carry no session id, only the key.
        started = time.monotonic()
        await handler.handle("session:start", {"platform": "discord", "user_id": "u9",
                                               "session_id": "hook-1", "session_key": key})
        await handler.handle("agent:start", {"platform": "discord", "user_id": "u9", "chat_id": "c9",
                                             "session_id": "hook-1", "message": "hi"})
        await handler.handle("session:end", {"platform": "discord", "user_id": "u9", "session_key": key})
        await handler.handle("session:reset", {"platform": "discord", "user_id": "u9", "session_key": key})
        await handler.handle("session:start", {"platform": "discord", "user_id": "u9",
                                               "session_id": "hook-2", "session_key": key})
        await handler.handle("session:reset", {"platform": "discord", "user_id": "u9", "session_key": key})
        return time.monotonic() - started

    elapsed = asyncio.run(gateway())
    check("the hook never blocks the event loop", elapsed < 0.05, elapsed)
    check("the hook drains its queue", handler.drain(10))
    client = BookendClient(base_url)
    first, second = client.session("hook-1"), client.session("hook-2")
    check("a keyed session:end (no session id) ended the session on its key",
          first and first["key"] == key and first["end_reason"] == "manual_reset", first)
    check("the reset after the end appended nothing; the next session's reset ended it",
          second and second["end_reason"] == "manual_reset" and second["spans"] == 1, second)


def test_example_gateway(base_url):
    """example_gateway.py runs to completion, and again."""
    env = dict(os.environ, BOOKEND_URL=base_url)
    for run in (1, 2):
        done = subprocess.run([sys.executable, os.path.join(HERE, "example_gateway.py")],
                              env=env, capture_output=True, text=True, timeout=30)
        check(f"example_gateway.py runs to completion (run {run})", done.returncode == 0, done.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bookend", default=os.path.join(HERE, "..", "..", "target", "debug", "bookend"))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bookend-py-")
    server, url = start_server(args.bookend, os.path.join(workdir, "journal"))
    try:
        client = BookendClient(url)
        test_commands(client)
        test_consumer(client)
        test_hook(url, workdir)
        test_example_gateway(url)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        check("SIGTERM stops the server cleanly", code == 0, code)
        verify = subprocess.run([args.bookend, "verify", "--dir", os.path.join(workdir, "journal")], capture_output=True)
        check("verify is clean afterwards", verify.returncode == 0, verify.stdout.decode())
        shutil.rmtree(workdir, ignore_errors=True)
    failed = sum(1 for _, ok in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
