"""Fixtures for the Python package's tests.

``face`` runs a test twice: against an embedded journal (``bookend.open``)
and against a real ``bookend serve`` started on loopback
(``bookend.connect``), so code written against one runs against the other.
The server binary is ``$BOOKEND_BIN``, else the workspace's
``target/debug/bookend`` (built here if missing).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import Iterator

import pytest

import bookend

ROOT = pathlib.Path(__file__).resolve().parents[2]


def bookend_bin() -> str:
    explicit = os.environ.get("BOOKEND_BIN")
    if explicit:
        return explicit
    path = ROOT / "target" / "debug" / "bookend"
    if not path.exists():
        subprocess.run(["cargo", "build", "--locked", "-p", "bookend-cli"], cwd=ROOT, check=True)
    return str(path)


class Server:
    """A real ``bookend serve`` on an ephemeral loopback port."""

    def __init__(self, directory: pathlib.Path, *extra: str) -> None:
        self.dir = directory
        self.process = subprocess.Popen(
            [bookend_bin(), "serve", "--listen", "127.0.0.1:0", "--dir", str(directory), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "http://" not in line:
            self.process.kill()
            raise RuntimeError(f"bookend serve did not start: {line!r} {self.process.stderr.read()!r}")
        self.url = "http://" + line.strip().rsplit("http://", 1)[1]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=15)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[Server]:
    s = Server(tmp_path / "served")
    yield s
    s.stop()


@pytest.fixture(params=["open", "connect"])
def face(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[bookend.Journal | bookend.Client]:
    """The journal API: embedded, or a client of a real server."""
    if request.param == "open":
        journal = bookend.open(tmp_path / "embedded")
        yield journal
        journal.close()
    else:
        s = Server(tmp_path / "served")
        client = bookend.connect(s.url)
        yield client
        client.close()
        s.stop()


def python() -> str:
    return sys.executable
