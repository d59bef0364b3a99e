"""When the trainer checkpoints, what it writes and what it tells: the collaborator behind every save.

    each epoch's end     checkpoints/last.pt (and best.pt when the score improved), each recorded in
                         status.json (`checkpoints`: the epoch it holds, for `cnnlab runs`); the
                         epoch's position.pt is then passed and removed
    between batches      checkpoints/position.pt, the exact place inside the epoch (engine.training.position),
                         named in status.json (`position`) for a stop, a pause, a timed or asked-for checkpoint

Each save restarts the steering's clock and acknowledges an asked-for checkpoint (engine.training.steering).
Over several ranks rank 0 alone writes while the others wait (engine.training.distribution). The
training state itself (engine.training.checkpoint.training_state) is the trainer's to give.
"""

from __future__ import annotations

from typing import Any

from engine.files import timestamp
from engine.runfolder.folder import RunFolder
from engine.training.distribution import Distribution
from engine.training.live_status import LiveStatus
from engine.training.position import POSITION_FILE, Position
from engine.training.steering import Steering


class Checkpoints:
    def __init__(self, folder: RunFolder, status: LiveStatus, steer: Steering, ranks: Distribution) -> None:
        self.folder, self.status, self.steer, self.ranks = folder, status, steer, ranks

    def epoch_end(self, epochs: int, state: dict[str, Any], best: bool, batches: int) -> None:
        """last.pt (and best.pt) of `epochs` finished epochs."""
        self.ranks.save(self.folder.checkpoints / "last.pt", state)
        self.status.record_checkpoint(epochs, "last")
        if best:
            self.ranks.save(self.folder.checkpoints / "best.pt", state)
            self.status.record_checkpoint(epochs, "best")
        self.remove_position()  # the place inside this epoch is passed: last.pt holds its end
        self.steer.saved(epochs, 0, batches)

    def position(self, pos: Position, state: dict[str, Any], batches: int) -> None:
        """position.pt: `state` (the epochs done, with the RNG states of this moment) and the place `pos`."""
        state["position"] = pos.state()
        self.ranks.save(self.folder.checkpoints / POSITION_FILE, state)
        written = timestamp()
        self.status.update(
            position={"epoch": pos.epoch + 1, "batch": pos.batch, "batches": batches, "written": written}
        )
        self.steer.saved(pos.epoch, pos.batch, batches)

    def remove_position(self) -> None:
        """No place inside an epoch to go on from (passed, finished, or diverged there)."""
        if not self.ranks.writes:
            return
        try:
            (self.folder.checkpoints / POSITION_FILE).unlink(missing_ok=True)
            self.status.update(position=None)
        except OSError:
            pass
