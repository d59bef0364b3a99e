"""What `cnnlab bench` measures: the targets (a preset, an architecture, or the report models at their
presets; any `model.arch` beyond the built-ins, such as torchvision:resnet18, on CIFAR-100's shapes),
how many steps and repeats each gets, the experiment the engine runs for it, the size of its dataset,
and the goals the ratios are held to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.bench import BenchError
from engine.experiment.config import ARCHS, DATASETS, Experiment, arch_kind
from engine.experiment.overrides import apply_overrides

GOAL_ENGINE_VS_PURE = 0.95  # against the best pure compute of any safe precision and layout
GOAL_ENGINE_VS_REPORTS = 2.0
GOAL_CACHE_SPEEDUP = 5.0
GOAL_TOGETHER = 0.90  # N trainings at once, in total, against one alone
GOAL_SMALL_BATCH_OVERHEAD = 0.10  # the engine's step against pure compute's, at a small batch
SMALL_BATCH = 8  # a batch this small or smaller gets the per-step overhead line (AlexNet's 4)

# The preset each architecture is benched at (its batch size, augmentation, optimizer).
MODEL_PRESETS = {
    "simplecnn": "simplecnn-cifar100",
    "alexnet32": "alexnet-cifar100-sgd",
    "mobilenet": "mobilenet-cifar100-lr",
    "backbone": "backbone-cifar10",
    "alexnet64": "alexnet-tinyimage10",
    "resnet34": "resnet34-cifar100",
    "resnet50": "resnet50-pretrained-cifar100",
}
DEFAULT_MODELS = ("simplecnn", "alexnet32", "mobilenet", "backbone")  # the report models
ALL_MODELS = tuple(MODEL_PRESETS)  # `--models all`

# (timed steps, warm-up steps, most repeats) per architecture: a second or two per way on a 2-core
# CPU (an AMD EPYC with AVX512-BF16 measured 4,500 img/s for SimpleCNN, 40 for AlexNet at batch 4,
# 110 for the Backbone at batch 256 in bf16); fewer steps are noise there. The Backbone takes 2-5 s a
# step at batch 256, so it gets one step and two repeats.
PLANS: dict[str, tuple[int, int, int | None]] = {
    "simplecnn": (20, 2, None),
    "alexnet32": (30, 2, None),
    "alexnet64": (20, 2, None),
    "mobilenet": (8, 1, None),
    "backbone": (1, 1, 2),
    "resnet34": (4, 1, 3),
    "resnet50": (3, 1, 2),
}
DEFAULT_PLAN = (8, 2, None)
DEFAULT_REPEATS = 5


@dataclass
class Target:
    """One model to bench: the experiment as the user would run it, and how long to time it."""

    label: str
    exp: Experiment
    preset: str | None
    steps: int
    warmup: int
    repeats: int

    @property
    def batch(self) -> int:
        return self.exp.train.batch_size


def plan_for(arch: str, steps: int | None, warmup: int | None, repeats: int | None) -> tuple[int, int, int]:
    p_steps, p_warmup, p_most = PLANS.get(arch, DEFAULT_PLAN)
    if repeats is None:
        repeats = DEFAULT_REPEATS if p_most is None else min(DEFAULT_REPEATS, p_most)
    return steps or p_steps, p_warmup if warmup is None else warmup, repeats


def model_experiment(arch: str, batch: int) -> Experiment:
    """A bare experiment for `--model ARCH`: CIFAR-100 at 32 pixels, Tiny ImageNet for 64-pixel models
    (a library's or the user's model takes 32)."""
    size = ARCHS[arch]["input"] or 32 if arch in ARCHS else 32
    dataset = "tiny-imagenet" if size == 64 else "cifar100"
    return apply_overrides(Experiment(), {"model.arch": arch, "data.dataset": dataset, "train.batch_size": batch})


def resolve_targets(
    *,
    preset: str | None = None,
    model: str | None = None,
    models: list[str] | None = None,
    batch: int | None = None,
    sets: dict[str, Any] | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    repeats: int | None = None,
    user_dir: Path | None = None,
) -> list[Target]:
    from engine.experiment.presets import get_preset, load_experiment_source

    chosen: list[tuple[str, Experiment, str | None]] = []
    if preset is not None:
        exp, p = load_experiment_source(preset, user_dir)
        chosen.append((exp.model.arch, exp, p.name if p else None))
    elif model is not None:
        if not _beyond_builtins(model) and model not in ARCHS:
            raise BenchError(f"--model {model!r}: known architectures are {', '.join(ARCHS)}")
        chosen.append((model, model_experiment(model, batch or 128), None))
    else:
        if models is not None and "all" in models:
            models = list(ALL_MODELS)
        for name in models or DEFAULT_MODELS:
            if _beyond_builtins(name):  # torchvision:NAME, timm:NAME, a file's class: as --model benches it
                chosen.append((name, model_experiment(name, batch or 128), None))
                continue
            if name not in MODEL_PRESETS:
                raise BenchError(
                    f"--models: {name!r} is not one of {', '.join(MODEL_PRESETS)} (or all), "
                    "nor torchvision:NAME, timm:NAME or file.py:Class"
                )
            p = get_preset(MODEL_PRESETS[name], user_dir)
            chosen.append((name, p.experiment, p.name))
    out = []
    for label, exp, preset_name in chosen:
        overrides = dict(sets or {})
        if batch is not None:
            overrides["train.batch_size"] = batch
        if overrides:
            exp = apply_overrides(exp, overrides)
        s, w, r = plan_for(exp.model.arch, steps, warmup, repeats)
        out.append(Target(label, exp, preset_name, s, w, r))
    return out


def _beyond_builtins(name: str) -> bool:
    """Whether `name` is a model.arch of a library or the user's file (whether it exists: once it is built)."""
    try:
        return arch_kind(name) != "builtin"
    except ValueError:
        return False


def without_weights(exp: Experiment) -> Experiment:
    """The preset's model from random weights: ImageNet weights (a download) do not change a step's cost."""
    if not exp.model.pretrained and exp.model.weights_path is None:
        return exp
    return apply_overrides(exp, {"model.pretrained": False, "model.weights_path": None})


def engine_experiment(exp: Experiment, root: Path, images: int) -> Experiment:
    """The experiment as the engine runs it in the bench: the preset's model, augmentation, optimizer
    and precision on the bench's folder dataset, one epoch, no validation. What needs a validation
    split (plateau, early stop) or a download (ImageNet weights) is set aside: it does not change a
    training step's cost."""
    over: dict[str, Any] = {
        "data.dataset": "folder",
        "data.root": str(root),
        "data.classes": None,
        "data.train_subset": images,
        "data.val_split": 0,
        "data.test_split": 0,
        "data.image_size": None,
        "data.cache": True,
        "train.epochs": 1,
        "train.phases": [],
        "train.early_stop": None,
        "model.pretrained": False,
        "model.weights_path": None,
    }
    if exp.data.normalize == "compute":
        over["data.normalize"] = "dataset"  # the folder's measured statistics: the same arithmetic
    if exp.schedule.name == "plateau":
        over["schedule.name"] = "constant"
    return apply_overrides(exp, over)


def shape_of(exp: Experiment) -> tuple[int, int, int]:
    """(classes, channels, image size) of the preset's data, without loading it."""
    from engine.data.splits import DatasetMissing, DatasetUnusable, describe

    try:
        return describe(exp.data)
    except (DatasetMissing, DatasetUnusable) as err:  # a folder preset whose folder is not here
        raise BenchError(str(err)) from None


def train_split_images(exp: Experiment) -> int | None:
    """How many images a full epoch of the preset trains on (None: a folder of unknown size):
    the dataset's training images (config.DATASETS), its first data.classes classes, the subset,
    less the validation and test splits as engine.data.splits carves them."""
    from engine.data.splits import split_sizes

    d = exp.data
    info = DATASETS[d.dataset]
    n = info.get("train_images")
    if n is None:
        return None
    if d.classes:
        n = n * d.classes // info["classes"]  # the built-in datasets have as many images in every class
    if d.train_subset is not None:
        n = min(n, d.train_subset)
    return max(split_sizes(d, n)[0], 1)


def memory_line(exp: Experiment) -> dict[str, Any] | None:
    """Bytes a full train split of the preset's dataset takes as uint8 (how the engine holds it) and
    as float32 (how a float tensor dataset would)."""
    n = train_split_images(exp)
    if n is None:
        return None
    _, channels, size = shape_of(exp)
    nbytes = n * channels * size * size
    return {"dataset": exp.data.dataset, "train_images": n, "uint8_bytes": nbytes, "float32_bytes": 4 * nbytes}


def goals() -> dict[str, float]:
    return {
        "engine_vs_pure": GOAL_ENGINE_VS_PURE,
        "engine_vs_reports": GOAL_ENGINE_VS_REPORTS,
        "cache_speedup": GOAL_CACHE_SPEEDUP,
        "together": GOAL_TOGETHER,
        "small_batch_overhead": GOAL_SMALL_BATCH_OVERHEAD,
        "small_batch": SMALL_BATCH,
    }
