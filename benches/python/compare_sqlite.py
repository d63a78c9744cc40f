"""The Python package against Python's own sqlite3, side by side, one run.

    .venv/bin/python benches/python/compare_sqlite.py [--pairs N] [--server target/release/bookend]

Each scenario writes session start+end pairs (two commands, two events)
into a fresh store under target/bench-python/ (the real disk, never tmpfs).
SQLite does what hermes's SessionDB does today: WAL mode, one transaction
per event (an INSERT for the start, an UPDATE for the end), with
synchronous=FULL (durable) or NORMAL (buffered). Prints a Markdown table of
pairs/s and the ratio, for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import bookend

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORK = ROOT / "target" / "bench-python"


def fresh(name: str) -> pathlib.Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def sqlite_db(name: str, synchronous: str) -> sqlite3.Connection:
    path = fresh(name)
    path.mkdir()
    db = sqlite3.connect(path / "state.db", isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, key TEXT, started_at REAL,"
               " ended_at REAL, end_reason TEXT)")
    return db


def sqlite_pair(db: sqlite3.Connection, lock: threading.Lock) -> None:
    sid = uuid.uuid4().hex
    with lock:
        db.execute("BEGIN")
        db.execute("INSERT INTO sessions (id, key, started_at) VALUES (?, ?, ?)", (sid, "k:" + sid, time.time()))
        db.execute("COMMIT")
    with lock:
        db.execute("BEGIN")
        db.execute("UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
                   (time.time(), "idle_expiry", sid))
        db.execute("COMMIT")


def bookend_pair(journal) -> None:
    ack = journal.start(key="k:" + uuid.uuid4().hex)
    journal.end(ack.session_id, "idle_expiry")


def threads(n: int, pairs: int, work) -> float:
    per = pairs // n
    started = time.perf_counter()
    ts = [threading.Thread(target=lambda: [work() for _ in range(per)]) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * n / (time.perf_counter() - started)


def tasks(n: int, pairs: int, journal) -> float:
    per = pairs // n

    async def one() -> None:
        for _ in range(per):
            ack = await journal.start_async(key="k:" + uuid.uuid4().hex)
            await journal.end_async(ack.session_id, "idle_expiry")

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(n)))

    started = time.perf_counter()
    asyncio.run(main())
    return per * n / (time.perf_counter() - started)


def sqlite_rate(name: str, synchronous: str, n_threads: int, pairs: int) -> float:
    db = sqlite_db(name, synchronous)
    lock = threading.Lock()  # one connection, as SessionDB shares one
    rate = threads(n_threads, pairs, lambda: sqlite_pair(db, lock))
    db.close()
    return rate


def bookend_rate(name: str, durability: str, n_threads: int, pairs: int) -> float:
    with bookend.open(fresh(name), durability=durability) as journal:
        return threads(n_threads, pairs, lambda: bookend_pair(journal))


def per_call_micros(calls: int) -> float:
    with bookend.open(fresh("per-call"), durability="buffered") as journal:
        ack = journal.start(key="k")
        started = time.perf_counter()
        for i in range(calls):
            journal.flush(ack.session_id, f"m{i % 60}") if i < 60 else journal.get(ack.session_id)
        return (time.perf_counter() - started) / calls * 1e6


def rss_after_open(sessions: int) -> tuple[float, float]:
    path = fresh("rss-100k")
    with bookend.open(path, durability="buffered") as journal:
        for i in range(sessions):
            ack = journal.start(f"s{i}", key=f"k{i}")
            journal.end(ack.session_id, "idle_expiry")
    # VmHWM, not ru_maxrss: ru_maxrss survives execve, so a child would
    # report this benchmark's own peak.
    code = ("import bookend, re, sys, time;"
            " r = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1));"
            " base = r(); t = time.perf_counter(); j = bookend.open(sys.argv[1]); o = time.perf_counter() - t;"
            " opened = r(); j.close(); print(base, opened, o)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    base_kib, opened_kib, open_s = out.stdout.split()
    return (int(opened_kib) - int(base_kib)) / 1024, float(open_s) * 1000


class Server:
    def __init__(self, binary: str, directory: pathlib.Path) -> None:
        self.process = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--dir", str(directory)],
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        self.url = "http://" + line.strip().rsplit("http://", 1)[1]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=4000)
    parser.add_argument("--server", default=str(ROOT / "target" / "release" / "bookend"))
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args()
    p = args.pairs
    rows = []
    s1 = sqlite_rate("sqlite-full-1", "FULL", 1, p // 4)
    rows.append(("durable, 1 thread", s1, bookend_rate("bookend-durable-1", "durable", 1, p // 4)))
    s16 = sqlite_rate("sqlite-full-16", "FULL", 16, p // 4)
    rows.append(("durable, 16 threads", s16, bookend_rate("bookend-durable-16", "durable", 16, p)))
    with bookend.open(fresh("bookend-async-64")) as journal:
        b64 = tasks(64, p, journal)
    rows.append(("durable, 64 asyncio tasks (SQLite: the loop calls it inline)", s1, b64))
    sn = sqlite_rate("sqlite-normal-1", "NORMAL", 1, p)
    rows.append(("buffered, 1 thread (SQLite NORMAL)", sn, bookend_rate("bookend-buffered-1", "buffered", 1, p)))
    server = Server(args.server, fresh("served"))
    try:
        client = bookend.connect(server.url)
        rows.append(("durable, 16 threads, `connect` to `bookend serve`", s16,
                     threads(16, p, lambda: bookend_pair(client))))
        with bookend.connect(server.url) as aclient:
            rows.append(("durable, 64 asyncio tasks, `connect`", s1, tasks(64, p, aclient)))
    finally:
        server.stop()
    print(f"pairs per scenario: {p} (start+end, two events each); store under {WORK}\n")
    print("| scenario | sqlite3 pairs/s | bookend pairs/s | bookend / sqlite3 |")
    print("|---|---|---|---|")
    for name, sqlite_value, bookend_value in rows:
        print(f"| {name} | {sqlite_value:,.0f} | {bookend_value:,.0f} | {bookend_value / sqlite_value:.1f}x |")
    print(f"\nper call from Python (buffered flush/get, embedded): {per_call_micros(20_000):.1f} us")
    rss, open_ms = rss_after_open(args.sessions)
    print(f"a Python process that opened a journal of {args.sessions:,} ended sessions: "
          f"peak RSS +{rss:.1f} MiB over `import bookend`, open {open_ms:.0f} ms")


if __name__ == "__main__":
    main()
