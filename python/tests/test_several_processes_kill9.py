"""Four writer processes on one journal, two Python (``bookend.open(...,
shared_writers=True)``) and two CLI (``bookend append --shared-writers``),
start, touch and end sessions on overlapping keys while the test kills one
of them with -9 at a random moment, 20 times (more with
``BOOKEND_SLOW_TESTS``), starting a new one of the same kind each time.
Within 2 s of every kill a survivor ends exactly the sessions the dead
process owned (``crash_recovered``) and closes its epoch (``writer_died``);
at the end every acknowledged start is in the journal at its LSN and
``bookend verify`` is clean with no session left open.

Guards against seed 002 in a real gateway, where a Python gateway and CLI
processes share one store: a process killed by SIGKILL, the OOM killer or
a closed terminal leaves its sessions open unless a survivor ends them.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

from conftest import bookend_bin

ROUNDS = 100 if os.environ.get("BOOKEND_SLOW_TESTS") else 20
KEYS = 6

# A Python writer: JSON commands on stdin, one JSON ack a line on stdout.
PY_CHILD = textwrap.dedent("""
    import json, sys, bookend
    journal = bookend.open(sys.argv[1], shared_writers=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            if cmd["cmd"] == "start":
                ack = journal.start(cmd["session_id"], key=cmd["key"])
            elif cmd["cmd"] == "touch":
                ack = journal.touch(cmd["session_id"])
            else:
                ack = journal.end(cmd["session_id"], cmd["reason"])
            print(json.dumps({"ok": True, "lsn": ack.lsn, "session_id": ack.session_id}), flush=True)
        except bookend.BookendError as e:
            print(json.dumps({"ok": False, "error": str(e)}), flush=True)
    journal.close("shutdown", "end")
""")


class Writer:
    def __init__(self, directory: str, name: str, kind: str) -> None:
        self.name, self.kind, self.sent, self.acks, self.cmds = name, kind, 0, [], []
        if kind == "python":
            argv = [sys.executable, "-c", PY_CHILD, directory]
        else:
            argv = [bookend_bin(), "append", "--dir", directory, "--shared-writers"]
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.acks.append(json.loads(line))

    def send(self, cmd: dict) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(cmd) + "\n")
            self.process.stdin.flush()
            self.sent += 1
            self.cmds.append(cmd)
        except (BrokenPipeError, OSError):
            pass

    def acked_starts(self) -> list[tuple[str, int]]:
        """(session, LSN) of every start acknowledged: ack i answers command i."""
        pairs = zip(self.cmds, self.acks)
        return [(a["session_id"], a["lsn"]) for c, a in pairs if c["cmd"] == "start" and a.get("ok")]

    def wait_acked(self, limit: float) -> bool:
        deadline = time.monotonic() + limit
        while len(self.acks) < self.sent:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def kill9(self) -> int:
        self.process.kill()
        killed_at = int(time.time() * 1000)
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)
        return killed_at

    def finish(self) -> None:
        if self.kind == "cli":
            self.send({"cmd": "close", "reason": "shutdown", "sessions": "end"})
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0, f"{self.name} failed"
        self.reader.join(timeout=10)


def tail(directory: str) -> list[dict]:
    out = subprocess.run([bookend_bin(), "tail", "--dir", directory], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines()]


def tail_if_any(directory: str) -> list[dict]:
    """The journal's events, or none before the first writer has made it."""
    out = subprocess.run([bookend_bin(), "tail", "--dir", directory], capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines()] if out.returncode == 0 else []


def epoch_of(events: list[dict], pid: int) -> int | None:
    return next((e["epoch"] for e in events if e["type"] == "journal:join" and e["pid"] == pid), None)


def wait_writer_died(directory: str, epoch: int, limit: float) -> dict | None:
    deadline = time.monotonic() + limit
    while True:
        for e in tail(directory):
            if e["type"] == "journal:close" and e["epoch"] == epoch and e["reason"] == "writer_died":
                return e
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def check_dead_batch(events: list[dict], epoch: int) -> int:
    """The crash_recovered ends just before the writer_died close of ``epoch``
    are exactly the sessions that epoch owned then."""
    current, owner, batch, owned_before = 0, {}, set(), None
    for e in events:
        if e["type"] == "journal:close" and e["epoch"] == epoch and e["reason"] == "writer_died":
            expected = owned_before if owned_before is not None else {s for s, o in owner.items() if o == epoch}
            assert batch == expected, f"the survivor ended {batch}, epoch {epoch} owned {expected}"
            return len(batch)
        sid = e.get("session_id")
        if e["type"] == "session:end" and e["reason"] == "crash_recovered" and owner.get(sid) == epoch:
            if owned_before is None:
                owned_before = {s for s, o in owner.items() if o == epoch}
            batch.add(sid)
        else:
            batch, owned_before = set(), None
        if e["type"] in ("journal:open", "journal:join", "journal:turn"):
            current = e["epoch"]
        elif e["type"] in ("session:start", "session:reopen"):
            owner[sid] = current
        elif e["type"] == "session:end":
            owner.pop(sid, None)
    raise AssertionError(f"no writer_died close of epoch {epoch}")


def burst(w: Writer, rng: random.Random, counter: list[int]) -> None:
    for _ in range(1 + rng.randrange(4)):
        counter[0] += 1
        w.send({"cmd": "start", "session_id": f"{w.name}-{counter[0]}", "key": f"k{rng.randrange(KEYS)}"})
        earlier = f"{w.name}-{1 + rng.randrange(counter[0])}"
        if rng.randrange(3) == 0:
            w.send({"cmd": "touch", "session_id": earlier})
        elif rng.randrange(2) == 0:
            w.send({"cmd": "end", "session_id": earlier, "reason": "manual_reset"})


def test_python_and_cli_writers_killed_at_random(tmp_path) -> None:
    directory = str(tmp_path / "journal")
    seed = int(os.environ.get("BOOKEND_TEST_SEED", time.time_ns()))
    print(f"seed {seed}")
    rng, counter, spawned = random.Random(seed), [0], [0]

    def spawn(kind: str) -> Writer:
        # Each writer has joined before the rounds go on, so every kill is
        # of a writer with an epoch.
        spawned[0] += 1
        w = Writer(directory, f"{kind}{spawned[0]}", kind)
        deadline = time.monotonic() + 10
        while epoch_of(tail_if_any(directory), w.process.pid) is None:
            assert time.monotonic() < deadline, f"{w.name} did not join"
            time.sleep(0.005)
        return w

    live = [spawn("python"), spawn("cli"), spawn("python"), spawn("cli")]
    acks, latencies = [], []
    for round_ in range(ROUNDS):
        for w in live:
            burst(w, rng, counter)
        if rng.randrange(2) == 0:
            assert all(w.wait_acked(10) for w in live), f"round {round_}: acks stalled"
        victim = live.pop(rng.randrange(len(live)))
        killed_at = victim.kill9()
        acks.extend(victim.acked_starts())
        epoch = epoch_of(tail(directory), victim.process.pid)
        assert epoch is not None, "every writer joined before its kill"
        close = wait_writer_died(directory, epoch, 2.0)
        assert close is not None, f"round {round_}: epoch {epoch} ({victim.kind}) not closed within 2 s"
        latencies.append(close["at"] - killed_at)
        check_dead_batch(tail(directory), epoch)
        live.append(spawn(victim.kind))
    for w in live:
        w.finish()
        acks.extend(w.acked_starts())

    events = tail(directory)
    starts = {e["session_id"]: e["lsn"] for e in events if e["type"] == "session:start"}
    missing = [(sid, lsn) for sid, lsn in acks if starts.get(sid) != lsn]
    assert acks and not missing, f"acknowledged starts missing or moved: {missing[:5]}"
    print(f"{len(acks)} acknowledged starts checked")
    latencies.sort()
    print(f"{ROUNDS} kills, detection p50 {latencies[len(latencies) // 2]} ms, max {latencies[-1]} ms")
    verify = subprocess.run([bookend_bin(), "verify", "--json", "--dir", directory], capture_output=True, text=True)
    report = json.loads(verify.stdout)
    assert verify.returncode == 0, report
    assert report["open_sessions"] == 0, report
