"""Rough edge 5: the editor's tab keys in a real tmux, as a user over SSH would press them.

tmux sends alt+arrow with an ESC prefix, so alt+←/→ never reached the editor. F7/F8 (anywhere),
ctrl+PgUp/PgDn and [ ] (outside a text field) do. The console runs as `cnnlab` in a detached tmux
server of its own; keys go in with send-keys and the screen comes back with capture-pane, polled
until the expected tab shows (no fixed sleeps).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.experiment.schema import field_specs, sections

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux); CI installs it")
REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0  # for the console to start and for each key to show: generous, polling meanwhile


def first_title(section: str) -> str:
    return next(spec.title for spec in field_specs() if spec.section == section)


class Tmux:
    """A private tmux server (its own socket, no user config) running one command."""

    def __init__(self, socket: str) -> None:
        self.base = [TMUX, "-L", socket, "-f", os.devnull]

    def __call__(self, *args: str) -> str:
        # As in a user's tmux: the pane's size is the window's, not COLUMNS/LINES (which the suite sets).
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        run = subprocess.run([*self.base, *args], check=True, capture_output=True, text=True, timeout=10, env=env)
        return run.stdout

    def screen(self) -> list[str]:
        return self("capture-pane", "-p", "-t", "cnnlab").splitlines()

    def wait_for(self, predicate, what: str) -> list[str]:
        deadline = time.monotonic() + DEADLINE_S
        lines = self.screen()
        while not predicate(lines):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen was:\n" + "\n".join(lines))
            time.sleep(0.1)  # a poll interval, not a synchronisation: the loop waits for the screen
            lines = self.screen()
        return lines


def showing(section: str):
    """The tab whose first field's label starts a row of the form (not the tab strip's title)."""
    title = first_title(section)
    return lambda lines: any(line.startswith(f"   {title}") for line in lines)


@pytest.mark.slow
def test_tab_keys_change_the_editor_tab_in_real_tmux(tmp_path):
    names = [name for name, _ in sections()]
    assert names[:4] == ["data", "augment", "model", "optim"]
    # The installed console script, as a user starts it (python -m tui where it is not installed).
    script = Path(sys.executable).with_name("cnnlab")
    cnnlab = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m tui"
    tmux = Tmux(f"cnnlab-test-{os.getpid()}")
    runs = shlex.quote(str(tmp_path / "runs"))
    command = f"cd {shlex.quote(str(REPO))} && {cnnlab} --runs-dir {runs}"  # TERM is tmux's own, as a user's
    tmux("new-session", "-d", "-s", "cnnlab", "-x", "80", "-y", "24", command)  # the smallest size it promises
    try:
        tmux.wait_for(lambda lines: any("Report's result" in line for line in lines), "the picker")
        tmux("send-keys", "-t", "cnnlab", "Enter")  # the first preset, in the editor
        tmux.wait_for(showing("data"), "the editor on its first tab")

        tmux("send-keys", "-t", "cnnlab", "F8")
        tmux.wait_for(showing("augment"), "F8: the next tab")
        tmux("send-keys", "-t", "cnnlab", "C-PageDown")
        tmux.wait_for(showing("model"), "ctrl+PgDn: the next tab")
        tmux("send-keys", "-t", "cnnlab", "F7")
        tmux.wait_for(showing("augment"), "F7: the previous tab")
        tmux("send-keys", "-t", "cnnlab", "C-PageUp")
        tmux.wait_for(showing("data"), "ctrl+PgUp: the previous tab")

        # The optimizer tab opens on a choice (a select, not a text field): there ] and [ change tab.
        tmux("send-keys", "-t", "cnnlab", "F8", "F8", "F8")
        tmux.wait_for(showing("optim"), "three tabs on")
        tmux("send-keys", "-t", "cnnlab", "]")
        tmux.wait_for(showing(names[4]), "]: the next tab")
        tmux("send-keys", "-t", "cnnlab", "[")
        tmux.wait_for(showing("optim"), "[: the previous tab")

        # The keys are shown where the user looks for them (the footer redraws as focus moves: wait for it).
        tmux.wait_for(lambda lines: any("esc Back" in line and "F7 F8 Tab" in line for line in lines), "the footer")
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10)
