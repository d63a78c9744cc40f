"""Fixtures: a temporary ``HERMES_HOME`` with a config.yaml that enables (or
does not enable) the plugin, and a runner for hermes_driver.py child
processes using the real hermes-agent installed in this environment."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[2]


class Home:
    def __init__(self, path: pathlib.Path, enabled: bool, settings: str = "") -> None:
        """``settings``: YAML lines for ``plugins.entries.bookend``."""
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        plugins = "[bookend]" if enabled else "[]"
        entries = f"  entries:\n    bookend:\n{settings}" if settings else ""
        (path / "config.yaml").write_text(f"plugins:\n  enabled: {plugins}\n{entries}")

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, HERMES_HOME=str(self.path))
        env.pop("BOOKEND_JOURNAL_DIR", None)
        return env

    @property
    def journal(self) -> pathlib.Path:
        return self.path / "bookend"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, str(HERE / "hermes_driver.py"), *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr
        return done

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, str(HERE / "hermes_driver.py"), *args], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def hold(self, count: int, prefix: str = "h") -> tuple[subprocess.Popen[str], list[str]]:
        """A hermes process that created ``count`` sessions and holds them
        (until killed), and their ids."""
        child = self.spawn("hold", str(count), prefix)
        created = []
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "ready":
                break
            created.append(json.loads(line)["created"])
        return child, created

    def rows(self) -> dict[str, tuple]:
        db = sqlite3.connect(self.path / "state.db")
        try:
            return {r[0]: r[1:] for r in db.execute("SELECT id, ended_at, end_reason, parent_session_id FROM sessions")}
        finally:
            db.close()


def kill9(child: subprocess.Popen[str]) -> None:
    """kill -9, then reap the process and close its pipes."""
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture
def home(tmp_path: pathlib.Path) -> Home:
    return Home(tmp_path / "hermes", enabled=True)


@pytest.fixture
def bare_home(tmp_path: pathlib.Path) -> Home:
    return Home(tmp_path / "hermes-bare", enabled=False)


def bookend_bin() -> str:
    explicit = os.environ.get("BOOKEND_BIN")
    if explicit:
        return explicit
    path = ROOT / "target" / "debug" / "bookend"
    if not path.exists():
        subprocess.run(["cargo", "build", "--locked", "-p", "bookend-cli"], cwd=ROOT, check=True)
    return str(path)


def verify(journal: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bookend_bin(), "verify", "--dir", str(journal)], capture_output=True, text=True,
                          timeout=60)
