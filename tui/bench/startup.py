"""Start-up to the picker: a fresh `python -c` process imports tui.app and runs the console
headless until its first frame is up; wall time from process start, and whether torch got
imported on the way (it must not be)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The child process: time from its first line to the console's first frame. It reports the
# moment on its own stdout (os.write: Textual captures print while it runs), then its facts.
COLD_START_CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
from tui.app import CnnlabApp
from tui.screens.pick import PickScreen
t_import = time.perf_counter()

class FirstFrame(CnnlabApp):
    def on_ready(self):
        facts["ready_s"] = time.perf_counter() - t0
        os.write(1, b"ready\n")
        screen = self.screen
        facts["screen"] = type(screen).__name__
        facts["presets_shown"] = screen.query_one("#presets").row_count if isinstance(screen, PickScreen) else 0
        facts["torch_imported"] = "torch" in sys.modules
        facts["torchvision_imported"] = "torchvision" in sys.modules
        self.exit()

facts = {"import_s": t_import - t0}
FirstFrame(sys.argv[1]).run(headless=True)
print(json.dumps(facts), flush=True)
"""
REPO = Path(__file__).resolve().parents[2]


def cold_start_once(runs_dir: Path) -> dict[str, Any]:
    env = dict(os.environ, CNNLAB_RUNS=str(runs_dir))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", COLD_START_CHILD, str(runs_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(REPO),
    )
    first = proc.stdout.readline()
    wall = time.perf_counter() - t0
    out, err = proc.communicate(timeout=60)
    if first.strip() != b"ready" or proc.returncode != 0:
        why = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"the console did not start (exit {proc.returncode}): {why}")
    facts = json.loads(out.decode().strip().splitlines()[-1])
    facts["wall_s"] = wall
    return facts


def cold_start(starts: int, runs_dir: Path) -> dict[str, Any]:
    runs = [cold_start_once(runs_dir) for _ in range(starts)]
    walls = [r["wall_s"] for r in runs]
    return {
        "median_s": round(statistics.median(walls), 4),
        "runs_s": [round(w, 4) for w in walls],
        "import_s": round(statistics.median(r["import_s"] for r in runs), 4),
        "in_process_s": round(statistics.median(r["ready_s"] for r in runs), 4),
        "screen": runs[-1]["screen"],
        "presets_shown": runs[-1]["presets_shown"],
        "torch_imported": any(r["torch_imported"] for r in runs),
        "torchvision_imported": any(r["torchvision_imported"] for r in runs),
    }
