"""Rough edge 1: the console's snapshot tests pass whatever the user's shell says.

NO_COLOR (a convention many users set) made all six fail, every time; a narrow terminal, another
TERM or a Textual theme must not matter either. tests/conftest.py pins what they need; this runs
two of them in a fresh pytest under such a shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
USERS_SHELL = {"NO_COLOR": "1", "COLUMNS": "60", "LINES": "12", "TERM": "dumb", "TEXTUAL_THEME": "nord"}


@pytest.mark.slow
def test_snapshots_pass_under_no_color_and_a_narrow_terminal():
    tests = [
        "tests/tui/test_tui_pick_edit.py::test_picker_look",
        "tests/tui/test_tui_snapshots.py::test_run_screen_live",
    ]
    env = {**os.environ, **USERS_SHELL}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout
