"""The console in a real tmux, training on its thread, loses its terminal: the tmux session is killed
(tmux hangs up on the console, as a dropped SSH session does) or SIGHUP is sent to its process. The
console stops its run, saving the exact position, and exits; the run is stopped and resumable.

Driven like tests/tui/test_tui_tmux.py: a private tmux server, keys in with send-keys, the screen back
with capture-pane, and the run's state from its folder, each polled until it shows (no fixed sleeps).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runfolder.lock import is_held
from engine.runfolder.table import read_run
from tests.child_processes import progress, status, wait_for
from tests.tui.test_tui_tmux import REPO, TMUX, Tmux, showing

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux); CI installs it")

PRESET = """\
name = "zz-hangup"
description = "Shapes, long enough to hang up on"

[data]
dataset = "shapes"
train_subset = 2048
val_split = 0.25

[train]
epochs = 50
batch_size = 32
device = "cpu"
precision = "fp32"
"""


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill-session", "SIGHUP"])
def test_the_console_stops_its_run_when_its_terminal_hangs_up(tmp_path, how):
    runs = tmp_path / "runs"
    (runs / "presets").mkdir(parents=True)
    (runs / "presets" / "zz-hangup.toml").write_text(PRESET)
    script = Path(sys.executable).with_name("cnnlab")
    cnnlab = shlex.quote(str(script)) if script.exists() else f"{shlex.quote(sys.executable)} -m tui"
    tmux = Tmux(f"cnnlab-hangup-{os.getpid()}-{how}")
    command = f"cd {shlex.quote(str(REPO))} && OMP_NUM_THREADS=1 exec {cnnlab} --runs-dir {shlex.quote(str(runs))}"
    tmux("new-session", "-d", "-s", "cnnlab", "-x", "100", "-y", "30", command)
    try:
        tmux.wait_for(lambda lines: any("Report's result" in line for line in lines), "the picker")
        tmux("send-keys", "-t", "cnnlab", "/")
        tmux("send-keys", "-t", "cnnlab", "-l", "zz-hangup")
        tmux.wait_for(lambda lines: any("zz-hangup" in line for line in lines), "the preset, filtered")
        tmux("send-keys", "-t", "cnnlab", "Enter")
        tmux.wait_for(showing("data"), "the editor")
        tmux("send-keys", "-t", "cnnlab", "C-s")

        def training():
            found = [p for p in runs.glob("2*") if (p / "status.json").exists()]
            return found[0] if found and progress(found[0]).get("batch", 0) > 0 else None

        run_dir = wait_for(training, "the console's run to train")
        pid = status(run_dir)["pid"]
        if how == "kill-session":
            tmux("kill-session", "-t", "cnnlab")
        else:
            os.kill(pid, signal.SIGHUP)
        wait_for(lambda: gone(pid), "the console to exit")
    finally:
        subprocess.run([*tmux.base, "kill-server"], capture_output=True, timeout=10)
    st = status(run_dir)
    # Stopped by the signal, or by the console seeing its terminal gone first (a closed pane can end
    # Textual's input thread before SIGHUP is handled).
    assert st["state"] == "stopped" and re.search(
        r"stopped by (SIGHUP|the terminal's hangup) at epoch", st["message"]
    ), st
    assert (run_dir / "checkpoints" / "position.pt").exists() and st["position"]["epoch"] >= 1
    assert is_held(run_dir) is False and read_run(run_dir).resumable
