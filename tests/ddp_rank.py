"""One rank of a test's torchrun run: trains the experiment in EXP_TOML into RUNS_DIR through the engine's
own loop, then writes a digest of the weights this rank ended with to OUT_DIR/rank<N>.txt, so the test can
see that every rank holds the same model (which no run folder shows: rank 0 alone writes it)."""

import hashlib
import sys
from pathlib import Path

import torch

from engine.experiment.config import Experiment
from engine.runfolder.folder import RunFolder
from engine.training import trainer


def main(exp_toml: str, runs_dir: str, out_dir: str) -> int:
    exp = Experiment.load(Path(exp_toml))
    world = trainer._join(exp)
    made = RunFolder.create(Path(runs_dir), exp, None, "ddp") if world.main else None
    folder = RunFolder(Path(world.broadcast_object(str(made.path) if made else None)))
    training = trainer._Training(folder, exp, None, None, resume=False, world=world)
    result = training.run()
    digest = hashlib.sha256()
    for name, tensor in sorted(training.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    Path(out_dir, f"rank{world.rank}.txt").write_text(f"{result.state} {digest.hexdigest()}\n")
    return 0 if result.state == "finished" else 1


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main(*sys.argv[1:4]))
