"""A run's trained model, rebuilt from its config and loaded from one of its checkpoints.

The config's model goes through engine.models.user_file.for_run (a model from the user's own file
is found beside the run), the network is built for the run's classes, size and channels without
fetching any starting weights (the checkpoint holds every weight), and best.pt or last.pt is read
with torch.load(weights_only=True) (engine.training.checkpoint). The model is put in eval mode on
the run's device (the CPU when that device is not here), with the eval-mode transform the run's
test set went through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.compute.device import DeviceUnavailable, Runtime, select_runtime
from engine.data.augment import BatchAugment
from engine.data.splits import Split
from engine.experiment.config import Experiment
from engine.inference.errors import InferenceError
from engine.inference.preprocessing import Preprocessing, of_run
from engine.models import WeightsUnavailable, build_model
from engine.runfolder.folder import RunFolder
from engine.training import checkpoint as ckpt

CHECKPOINTS = ("best", "last")


@dataclass
class TrainedModel:
    folder: RunFolder
    exp: Experiment
    model: nn.Module  # in eval mode, on rt.device
    prep: Preprocessing
    augment: BatchAugment  # its .eval is the test set's transform
    rt: Runtime
    checkpoint: Path
    epoch: int | None  # the epochs the checkpoint holds, when it says
    test: Split | None  # the run's test split, when its dataset is here

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) on any device -> the float batch the model takes, on its device."""
        x = self.augment.eval(images.to(self.rt.device))
        return x.contiguous(memory_format=self.rt.memory_format)

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """float32 logits (N, classes) on the CPU, through the run's precision as its evaluation ran."""
        with self.rt.autocast():
            return self.model(self.inputs(images)).float().cpu()


def checkpoint_path(folder: RunFolder, which: str) -> Path:
    """checkpoints/<which>.pt, or an InferenceError naming it and the checkpoints the run has."""
    if which not in CHECKPOINTS:
        raise InferenceError(f"--checkpoint {which}: use best or last")
    path = folder.checkpoints / f"{which}.pt"
    if path.is_file():
        return path
    kept = sorted(p.name for p in folder.checkpoints.glob("*.pt")) if folder.checkpoints.is_dir() else []
    has = f"it has {', '.join(kept)}" if kept else "it has no checkpoint at all (it never finished an epoch)"
    other = next((c for c in CHECKPOINTS if c != which and f"{c}.pt" in kept), None)
    hint = f": try --checkpoint {other}" if other else ""
    raise InferenceError(f"no {which}.pt in {folder.checkpoints} ({has}){hint}")


def runtime_for(exp: Experiment) -> Runtime:
    """The run's device and precision; the CPU when the device it trained on is not here."""
    try:
        return select_runtime(exp.train)
    except DeviceUnavailable:
        return select_runtime(exp.train.model_copy(update={"device": "cpu", "precision": "auto"}))


def load_trained(run_dir: Path, which: str = "best", *, cpu: bool = False) -> TrainedModel:
    """The run's model with the weights of checkpoints/<which>.pt, ready to predict. cpu=True keeps
    it on the CPU in fp32 (what an export traces)."""
    from engine.models.user_file import for_run  # a model from the user's own file, found beside the run

    folder = RunFolder(Path(run_dir))
    if not (folder.path / "config.toml").is_file():
        raise InferenceError(f"{folder.path} is not a run folder (no config.toml)")
    exp = folder.experiment()
    path = checkpoint_path(folder, which)
    prep, test = of_run(exp, folder.summary(), folder.preprocessing())
    cfg = for_run(folder.path, exp.model).model_copy(update={"weights_path": None})
    try:
        model = build_model(cfg, len(prep.class_names), prep.size, prep.channels, fetch=False)
    except WeightsUnavailable as err:
        raise InferenceError(f"the run's model cannot be built here: {err}") from None
    rt = Runtime(torch.device("cpu"), "fp32", False) if cpu else runtime_for(exp)
    try:
        state = ckpt.load_checkpoint(path, rt.device)
    except ckpt.CheckpointError as err:
        raise InferenceError(str(err)) from None
    try:
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:  # another model's weights, or none
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise InferenceError(f"{path} does not hold this run's model ({first})") from None
    model = model.to(rt.device, memory_format=rt.memory_format).eval()
    epoch = state.get("epoch")
    return TrainedModel(
        folder=folder,
        exp=exp,
        model=model,
        prep=prep,
        augment=BatchAugment(exp.augment, prep.mean, prep.std),
        rt=rt,
        checkpoint=path,
        epoch=epoch if type(epoch) is int else None,
        test=test,
    )
