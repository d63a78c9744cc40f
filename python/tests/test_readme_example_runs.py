"""The README's Python block runs as written, in a fresh interpreter with the
package installed the README's way, and prints the ends it read.

Guards against the first hour of a new user: an example that does not run
is the first thing they meet.
"""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_block_runs():
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 1, "the README has one Python block; this test runs it"
    done = subprocess.run([sys.executable, "-c", blocks[0]], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[1::2] == ["superseded", "idle_expiry"], done.stdout
