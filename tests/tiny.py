"""Small, fast experiments on the generated shapes data, shared by the engine, CLI and UI tests."""

from engine.experiment.config import Experiment
from engine.experiment.overrides import apply_overrides

TINY = {
    "data.dataset": "shapes",
    "data.train_subset": 640,
    "data.val_split": 0.25,
    "train.epochs": 3,
    "train.batch_size": 64,
    "train.device": "cpu",
    "optim.name": "sgd",
    "optim.lr": 0.05,
    "optim.momentum": 0.9,
    "model.arch": "simplecnn",
}


def tiny_experiment(**overrides) -> Experiment:
    """`tiny_experiment(**{"optim.lr": 0.1})`: TINY with dotted-key overrides."""
    return apply_overrides(Experiment(), {**TINY, **overrides})


def tiny_sets(**overrides) -> list[str]:
    """The same as `--set` arguments for the CLI."""
    out = []
    for k, v in {**TINY, **overrides}.items():
        out += ["--set", f"{k}={v}"]
    return out
