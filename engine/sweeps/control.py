"""Orders to a whole sweep: stop, pause, continue, from any process (`cnnlab stop SWEEP_DIR`, the
console's sweep screen).

Two doors, so that the order lands fast and holds: the sweep's state in its study (every worker, on
any machine, reads it every second: a stopped sweep's workers stop their trial at the next batch and
take no new one, a paused sweep's workers pause theirs and wait), and the command to each running
trial's run folder through the control channel (engine.runfolder.control), which its trainer reads every half
second. A stopped sweep carries on with `cnnlab sweep --resume`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.runfolder import control
from engine.sweeps import study as st
from engine.sweeps.folder import Sweep

ORDERS = {"stop": "stopped", "pause": "paused", "continue": "running", "checkpoint": None}  # None: state unchanged


@dataclass
class Ordered:
    sweep: Sweep
    state: str  # the sweep's state now: stopped, paused, running
    runs: list[Path]  # the running trials' folders the command was sent to


def order_sweep(sweep_dir: Path, command: str, storage_url: str | None = None) -> Ordered:
    """Stop, pause or continue every worker of the sweep in `sweep_dir` (or have each running trial
    write a checkpoint of its exact position)."""
    from optuna.trial import TrialState

    if command not in ORDERS:
        raise ValueError(f"unknown sweep command {command!r}; one of {', '.join(ORDERS)}")
    sweep = Sweep.load(Path(sweep_dir))
    ss = st.load_study(sweep, st.storage_of(sweep, storage_url))
    if ORDERS[command] is not None:
        st.set_sweep_state(ss, ORDERS[command])
    sent = []
    for slot, trial in sorted(st.latest_by_slot(ss.trials()).items()):
        folder = sweep.trial_folder(slot) if trial.state == TrialState.RUNNING else None
        if folder is not None:  # a trial trained on another machine has its folder there: the study reaches it
            control.send(folder, command, reason=f"the sweep was told to {command}")
            sent.append(folder)
    return Ordered(sweep, st.sweep_state(ss), sent)


def running_trials(sweep: Sweep, storage_url: str | None = None) -> int:
    """How many of the sweep's trials are running, on any machine (its study says)."""
    ss = st.load_study(sweep, st.storage_of(sweep, storage_url))
    return st.open_slots(ss)[1]
