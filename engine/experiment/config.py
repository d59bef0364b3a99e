"""What an experiment is: every hyperparameter cnnlab knows, with its type, range, default,
title and help text. The console's form is generated from these fields alone, the CLI validates
`--set` against them, presets and run folders are read and written through them. What a config
that does not validate says is engine/experiment/errors.py's; the dotted keys `--set` speaks
(`optim.lr`) are engine/experiment/overrides.py's.

No torch import here: `cnnlab presets`, `cnnlab runs` and the console's first screen stay fast.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from engine.experiment import toml_files
from engine.experiment.errors import ConfigError, describe_errors

# Facts about the datasets that validation and a dry run need without loading anything;
# train_images: the training set before any split (None: a folder's own count).
DATASETS: dict[str, dict[str, Any]] = {
    "shapes": {
        "title": "Shapes (generated, no download)",
        "classes": 10,
        "size": 32,
        "channels": 3,
        "train_images": 6000,
    },
    "cifar10": {"title": "CIFAR-10", "classes": 10, "size": 32, "channels": 3, "train_images": 50000},
    "cifar100": {"title": "CIFAR-100", "classes": 100, "size": 32, "channels": 3, "train_images": 50000},
    "tiny-imagenet": {
        "title": "Tiny ImageNet (tiny-imagenet-200)",
        "classes": 200,
        "size": 64,
        "channels": 3,
        "train_images": 100000,
    },
    # torchvision's image-classification sets, read from the files its classes download; mean and
    # std are the published per-channel figures of the training images (KMNIST's are measured on load).
    "mnist": {
        "title": "MNIST (handwritten digits, grey 28x28)",
        "classes": 10,
        "size": 28,
        "channels": 1,
        "train_images": 60000,
        "class_names": [str(d) for d in range(10)],
        "mean": (0.1307,),
        "std": (0.3081,),
    },
    "fashion-mnist": {
        "title": "Fashion-MNIST (clothes, grey 28x28)",
        "classes": 10,
        "size": 28,
        "channels": 1,
        "train_images": 60000,
        "class_names": [
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ],
        "mean": (0.2860,),
        "std": (0.3530,),
    },
    "kmnist": {
        "title": "Kuzushiji-MNIST (cursive Japanese, grey 28x28)",
        "classes": 10,
        "size": 28,
        "channels": 1,
        "train_images": 60000,
        "class_names": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
        "mean": None,
        "std": None,
    },
    "svhn": {
        "title": "SVHN (house-number digits, 32x32)",
        "classes": 10,
        "size": 32,
        "channels": 3,
        "train_images": 73257,
        "class_names": [str(d) for d in range(10)],
        "mean": (0.4377, 0.4438, 0.4728),
        "std": (0.1980, 0.2010, 0.1970),
    },
    "stl10": {
        "title": "STL-10 (labelled part, 96x96)",
        "classes": 10,
        "size": 96,
        "channels": 3,
        "train_images": 5000,
        # What its class_names.txt says; the loader reads that file itself.
        "class_names": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"],
        "mean": (0.4467, 0.4398, 0.4066),
        "std": (0.2603, 0.2566, 0.2713),
    },
    "folder": {
        "title": "Image folder (root/train/<class>/*)",
        "classes": None,
        "size": None,
        "channels": 3,
        "train_images": None,
    },
}

# Architectures and the input size each was written for (None: any size).
ARCHS: dict[str, dict[str, Any]] = {
    "simplecnn": {"title": "SimpleCNN (report 004)", "input": 32},
    "alexnet32": {"title": "AlexNet for 32x32 (report 000)", "input": 32},
    "alexnet64": {"title": "AlexNet for 64x64 (report 002)", "input": 64},
    "mobilenet": {"title": "MobileNet v1 for 32x32 (report 001)", "input": 32},
    "backbone": {"title": "Backbone, K parallel conv blocks (report 003)", "input": 32},
    "resnet34": {"title": "ResNet-34 (torchvision, from scratch)", "input": None},
    "resnet50": {"title": "ResNet-50 (torchvision, ImageNet weights optional)", "input": None},
}

# The choices are the registries' keys: a dataset or architecture added above is a choice everywhere.
DatasetName = Literal[tuple(DATASETS)]  # type: ignore[valid-type]
ScheduleName = Literal[
    "constant", "step", "multistep", "exponential", "cosine", "linear", "polynomial", "cyclic", "onecycle", "plateau"
]
# Schedules whose learning rate moves within an epoch; the others change once per epoch.
PER_BATCH_SCHEDULES = frozenset({"cyclic", "onecycle"})

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
MAX_IMAGES = 100_000_000  # more images than any dataset cnnlab holds in memory: a count above it is a slip
Spread = Annotated[float, Field(gt=0.0, le=1.0)]


def option_titles(registry: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A choice field's `json_schema_extra`: the title of each choice, read from its registry."""
    return {"option_titles": {name: facts["title"] for name, facts in registry.items()}}


# model.arch beyond the built-ins: a library's model by name, or a class in the user's own file or module.
ZOO_LIBRARIES = ("torchvision", "timm")
_ZOO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
ARCH_FORMS = "a built-in (" + ", ".join(ARCHS) + "), torchvision:NAME, timm:NAME, path/to/file.py:Class or module:Class"


def arch_kind(arch: str) -> str:
    """What `model.arch` names: "builtin", "torchvision", "timm", "file" (path/to/file.py:Class) or
    "module" (package.module:Class). Only the spelling is checked here, nothing is imported: whether
    the model exists is known when it is built. ValueError says what is wrong with the spelling."""
    if arch in ARCHS:
        return "builtin"
    where, colon, name = arch.rpartition(":")
    if not colon:
        close = difflib.get_close_matches(arch, list(ARCHS), n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise ValueError(f"unknown architecture {arch!r}; {hint}it takes {ARCH_FORMS}")
    if where in ZOO_LIBRARIES:
        if not _ZOO_NAME.match(name):
            raise ValueError(f"{where}: needs a model name after the colon, e.g. {where}:resnet18")
        return where
    if not where:
        raise ValueError(f"{arch!r} names no file or module before the colon; it takes {ARCH_FORMS}")
    if not _CLASS_NAME.match(name):
        raise ValueError(f"{arch!r} needs a class name after the colon, e.g. {where}:Net")
    if where.endswith(".py"):
        return "file"
    if _MODULE_NAME.match(where):
        return "module"
    raise ValueError(f"{where!r} is neither a .py file nor a module name (package.module); it takes {ARCH_FORMS}")


def input_size_problem(arch: str, size: int | None) -> str | None:
    """Why images of `size` pixels do not suit `arch` (None: they do, or the size is unknown yet).
    Only the built-ins are written for one size; a library's or the user's model takes the data's."""
    if arch not in ARCHS:
        return None
    expects = ARCHS[arch]["input"]
    if expects is None or size is None or size == expects:
        return None
    return f"{arch} takes {expects}x{expects} images but the data gives {size}x{size}; set data.image_size = {expects}"


def _wants_number(annotation: Any) -> bool:
    """Whether a field's annotation takes an int or a float anywhere (Optional, Annotated, list, tuple)."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    return any(_wants_number(a) for a in get_args(annotation) if not isinstance(a, str))


def _holds_bool(value: Any) -> bool:
    pending = [value]
    while pending:
        v = pending.pop()
        if isinstance(v, bool):
            return True
        if isinstance(v, (list, tuple)):
            pending.extend(v)
    return False


class Section(BaseModel):
    # No inf or nan anywhere: a bound like `ge=0` alone would let inf through to fail an epoch in.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads true as 1 for a number; `optim.lr = true` is a slip, not a learning rate of 1.
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _wants_number(field.annotation) and _holds_bool(value):
            raise ValueError("takes a number, not true or false")
        return value


class DataConfig(Section):
    dataset: DatasetName = Field(
        "shapes", title="Dataset", description="Which dataset to train on.", json_schema_extra=option_titles(DATASETS)
    )
    root: str = Field(
        "data",
        title="Data folder",
        description="Folder that holds the dataset "
        "(CIFAR's python batches, tiny-imagenet-200/, MNIST/raw/, SVHN's .mat files, stl10_binary/, "
        "or train/<class>/ images).",
        min_length=1,
    )
    download: bool = Field(
        False,
        title="Download if missing",
        description="Allow torchvision to download CIFAR, MNIST, Fashion-MNIST, KMNIST, SVHN or STL-10 "
        "into the data folder.",
    )
    classes: int | None = Field(
        None, ge=2, le=1000, title="First K classes", description="Keep only the first K classes (empty: all)."
    )
    train_subset: int | None = Field(
        None,
        ge=1,
        title="Training images",
        description="Use only N training images, drawn with the split seed (empty: all).",
    )
    val_split: float = Field(
        0.1,
        ge=0.0,
        le=MAX_IMAGES,
        title="Validation split",
        description="Held out from the training images: a fraction below 1, or a count (e.g. 10000). 0: no validation.",
    )
    test_split: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        title="Test split",
        description="Fraction of the training images held out as the test set (report 002's 0.8/0.1/0.1); "
        "0: use the dataset's own test set.",
    )
    split_seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        title="Split seed",
        description="Seed of the train/validation/test split and the subset draw.",
    )
    image_size: int | None = Field(
        None,
        ge=8,
        le=512,
        title="Resize to",
        description="Resize every image to this square size (empty: keep the native size).",
    )
    normalize: Literal["dataset", "given", "compute", "none"] = Field(
        "dataset",
        title="Normalisation",
        description="dataset: its known mean/std; given: the mean/std below; compute: from the training split; none.",
    )
    mean: tuple[Unit, Unit, Unit] | None = Field(
        None, title="Mean (R, G, B)", description="Per-channel mean used when normalisation is 'given'."
    )
    std: tuple[Spread, Spread, Spread] | None = Field(
        None, title="Std (R, G, B)", description="Per-channel standard deviation used when normalisation is 'given'."
    )
    cache: bool = Field(
        True, title="Cache decoded data", description="Keep a decoded uint8 copy on disk so the next start is fast."
    )

    @field_validator("val_split")
    @classmethod
    def _count_is_whole(cls, v: float) -> float:
        if v >= 1 and v != int(v):
            raise ValueError("a validation split of 1 or more is a count of images and must be a whole number")
        return v

    @model_validator(mode="after")
    def _grey_takes_one_mean(self) -> "DataConfig":
        # The three fields are the form's (R, G, B); a grey set takes one figure, so all three must agree.
        if self.normalize == "given" and DATASETS[self.dataset]["channels"] == 1:
            for name in ("mean", "std"):
                values = getattr(self, name)
                if values is not None and len(set(values)) > 1:
                    raise ValueError(
                        f"data.{name}: {self.dataset} has one (grey) channel, so give one figure three times, "
                        f"e.g. {[values[0]] * 3}"
                    )
        return self


class AugmentConfig(Section):
    crop_padding: int = Field(
        0,
        ge=0,
        le=32,
        title="Random crop padding",
        description="Pad by this many pixels, then crop back at a random place (0: off).",
    )
    hflip: bool = Field(False, title="Horizontal flip", description="Flip half the training images left to right.")
    rotation: float = Field(
        0.0,
        ge=0.0,
        le=180.0,
        title="Rotation (degrees)",
        description="Rotate by a random angle up to this many degrees.",
    )
    color_jitter: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        title="Colour jitter",
        description="Random brightness, contrast and saturation change of up to this fraction.",
    )
    affine_translate: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        title="Affine translate",
        description="Random shift of up to this fraction of the image size.",
    )
    affine_scale: float = Field(
        0.0, ge=0.0, le=0.5, title="Affine scale", description="Random zoom by up to this fraction."
    )
    mixup_alpha: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        title="Mixup alpha",
        description="Mix pairs of images and labels with Beta(alpha, alpha) (0: off).",
    )
    label_smoothing: float = Field(
        0.0, ge=0.0, lt=1.0, title="Label smoothing", description="Cross-entropy label smoothing."
    )


class ModelConfig(Section):
    arch: str = Field(
        "simplecnn",
        title="Architecture",
        description="The network to train: a built-in, torchvision:NAME (any torchvision classifier), "
        "timm:NAME (needs the cnnlab[timm] extra), or path/to/file.py:Class / module:Class, your own "
        "nn.Module taking num_classes (and in_channels if it has that parameter). Your own file is "
        "imported, so its code runs: name only files you trust. The run keeps a copy of it.",
        json_schema_extra={**option_titles(ARCHS), "suggest": "architectures"},
    )
    kwargs: dict[str, Any] = Field(
        {},
        title="Model arguments",
        description="Keyword arguments for the model's constructor: your own class's, torchvision's or "
        "timm's builder (e.g. {image_size = 32} for torchvision's ViTs); not the built-ins'.",
    )
    small_input: bool = Field(
        False,
        title="Small-image stem",
        description="For 32x32 images: a ResNet-family model (torchvision's resnet*, resnext*, wide_resnet*, "
        "timm's ResNets, resnet34/50) gets a 3x3 stride-1 first conv, freshly initialised, and no max-pool, "
        "so layer1 sees 32x32 maps instead of 8x8. Other families have no such stem.",
    )
    init: Literal["default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"] = Field(
        "default",
        title="Initialisation",
        description="Weight initialisation of conv and linear layers; biases start at zero (default: PyTorch's).",
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, title="Dropout", description="Dropout before the fully connected layers."
    )
    conv_dropout: float = Field(
        0.2, ge=0.0, lt=1.0, title="Conv dropout", description="Dropout after each conv layer (Backbone only)."
    )
    backbone_channels: list[list[Annotated[int, Field(ge=1, le=4096)]]] = Field(
        [[3, 128, 256], [256, 512, 1028]],
        title="Backbone channels",
        description="Channels of each backbone's conv layers, input first (Backbone only).",
    )
    backbone_k: list[Annotated[int, Field(ge=1, le=16)]] = Field(
        [3, 3], title="Blocks per backbone (K)", description="Parallel conv blocks in each backbone (Backbone only)."
    )
    pretrained: bool = Field(
        False, title="ImageNet weights", description="Start from torchvision's ImageNet weights (ResNet-50 only)."
    )
    weights_path: str | None = Field(
        None,
        title="Weights file",
        description="A local weights file to start from instead of downloading (state dict).",
    )

    @model_validator(mode="after")
    def _backbone_shape(self) -> "ModelConfig":
        if len(self.backbone_channels) != len(self.backbone_k):
            raise ValueError("backbone_channels and backbone_k need one entry per backbone")
        for i, chans in enumerate(self.backbone_channels):
            if len(chans) < 2:
                raise ValueError(f"backbone_channels[{i}] needs an input and at least one output channel count")
            before = self.backbone_channels[i - 1][-1] if i else None
            if i and chans[0] != before:
                raise ValueError(f"backbone_channels[{i}] must start with {before}, the previous backbone's output")
        kind = arch_kind(self.arch)
        if self.pretrained and self.arch != "resnet50" and kind not in ZOO_LIBRARIES:
            raise ValueError("ImageNet weights are available for resnet50, torchvision:NAME and timm:NAME only")
        if self.kwargs and kind == "builtin":
            raise ValueError("model.kwargs: the built-in architectures take no constructor arguments")
        if self.small_input and kind == "builtin" and self.arch not in ("resnet34", "resnet50"):
            raise ValueError(f"model.small_input: {self.arch} is written for its input size already")
        return self

    @field_validator("arch")
    @classmethod
    def _arch_spelling(cls, arch: str) -> str:
        arch_kind(arch)
        return arch

    @property
    def stem(self) -> str:
        """The arch as a run folder's name takes it: torchvision-resnet18, models-Net."""
        where, _, name = self.arch.rpartition(":")
        base = Path(where).stem if where.endswith(".py") else where.rpartition(".")[2]
        return re.sub(r"[^A-Za-z0-9._-]", "-", f"{base}-{name}" if where else name).strip("-._")[:60] or "model"


class OptimConfig(Section):
    name: Literal["sgd", "adam", "adamw"] = Field("sgd", title="Optimizer", description="SGD, Adam or AdamW.")
    lr: float = Field(0.01, gt=0.0, le=10.0, title="Learning rate", description="Initial (base) learning rate.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, title="Momentum", description="SGD momentum.")
    nesterov: bool = Field(False, title="Nesterov", description="Nesterov momentum (SGD with momentum only).")
    beta1: float = Field(0.9, ge=0.0, lt=1.0, title="Beta 1", description="Adam/AdamW first-moment decay.")
    beta2: float = Field(0.999, ge=0.0, lt=1.0, title="Beta 2", description="Adam/AdamW second-moment decay.")
    weight_decay: float = Field(
        0.0, ge=0.0, le=1.0, title="Weight decay", description="L2 penalty (SGD, Adam) or decoupled decay (AdamW)."
    )
    grad_clip: float | None = Field(
        None, gt=0.0, le=1000.0, title="Gradient clip", description="Clip the gradient norm to this value (empty: off)."
    )

    @model_validator(mode="after")
    def _nesterov(self) -> "OptimConfig":
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs the sgd optimizer with momentum above 0")
        return self


class ScheduleConfig(Section):
    name: ScheduleName = Field("constant", title="Schedule", description="How the learning rate changes over training.")
    warmup_epochs: float = Field(
        0.0,
        ge=0.0,
        le=100.0,
        title="Warm-up epochs",
        description="Linear warm-up from a fraction of the lr, then the schedule (0: off).",
    )
    warmup_start: float = Field(
        0.1, gt=0.0, le=1.0, title="Warm-up start", description="Fraction of the lr the warm-up starts from."
    )
    step_size: int = Field(
        30,
        ge=1,
        le=10000,
        title="Step size (epochs)",
        description="step: multiply the lr by gamma every this many epochs.",
    )
    milestones: list[Annotated[int, Field(ge=1)]] = Field(
        [], title="Milestones (epochs)", description="multistep: epochs at which the lr is multiplied by gamma."
    )
    gamma: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        title="Gamma",
        description="Factor for step, multistep, exponential, and plateau's reduction.",
    )
    min_lr: float = Field(
        0.0,
        ge=0.0,
        le=10.0,
        title="Final / minimum lr",
        description="cosine and linear end here; plateau never goes below.",
    )
    power: float = Field(1.0, gt=0.0, le=10.0, title="Power", description="polynomial: decay exponent.")
    max_lr: float | None = Field(
        None, gt=0.0, le=10.0, title="Max lr", description="onecycle and cyclic: the peak learning rate."
    )
    cycle_epochs: float = Field(
        2.0, gt=0.0, le=1000.0, title="Cycle half-period (epochs)", description="cyclic: epochs from base to max lr."
    )
    pct_start: float = Field(
        0.3, gt=0.0, lt=1.0, title="One-cycle rise", description="onecycle: fraction of training spent rising."
    )
    patience: int = Field(
        10,
        ge=0,
        le=1000,
        title="Plateau patience",
        description="plateau: epochs without a better validation loss before reducing.",
    )

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("milestones must be strictly increasing")
        return v


class Phase(Section):
    epochs: int = Field(..., ge=1, le=10000, title="Epochs", description="Epochs in this phase.")
    train: Literal["head", "all"] = Field(
        "all", title="Trains", description="head: only the classifier head; all: every layer."
    )
    lr: float = Field(..., gt=0.0, le=10.0, title="Learning rate", description="Base learning rate of this phase.")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, le=10000, title="Epochs", description="Epochs to train.")
    batch_size: int = Field(128, ge=1, le=65536, title="Batch size", description="Images per training step.")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for Python, NumPy and torch.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", title="Device", description="auto: CUDA, then MPS, then the CPU."
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        title="Precision",
        description="auto: the fastest of fp32, bf16 and fp16 (with its scaler) where the device has them, "
        "measured on this run's model and batch at its start and kept per machine.",
    )
    channels_last: Literal["auto", "on", "off"] = Field(
        "auto",
        title="Channels last",
        description="Memory layout of images and conv weights (auto: on or off, whichever measures faster).",
    )
    compile: bool = Field(
        False, title="torch.compile", description="Compile the model first (slow start, faster steps on GPUs)."
    )
    devices: int = Field(
        1,
        ge=1,
        le=1024,
        title="Devices",
        description="GPUs one run trains on (processes on a CPU): above 1, torchrun starts a process per device "
        "and DistributedDataParallel keeps them in step; train.batch_size stays the whole batch, split between them.",
    )
    sync_bn: bool = Field(
        False,
        title="SyncBatchNorm",
        description="With several CUDA devices, BatchNorm statistics over the whole batch instead of each "
        "device's part (CUDA only; not available on a CPU).",
    )
    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        title="CPU threads",
        description="Threads of the CPU's compute pool (empty: this run's share of the cores, split evenly "
        "with the other cnnlab trainings running on the machine).",
    )
    early_stop: int | None = Field(
        None,
        ge=1,
        le=10000,
        title="Early-stop patience",
        description="Stop after this many epochs without a better validation accuracy (empty: off).",
    )
    checkpoint_minutes: float = Field(
        10,
        ge=0,
        le=1440,
        title="Checkpoint every (minutes)",
        description="While an epoch trains, save its exact position this often, so a kill loses at most "
        "this much (0: only at the end of each epoch and on a stop).",
    )
    phases: list[Phase] = Field(
        [],
        title="Fine-tuning phases",
        description="Phases in order, each with its epochs, what trains and its lr (report 004).",
    )
    tensorboard: bool = Field(
        False,
        title="TensorBoard events",
        description="Also write TensorBoard event files into the run's tensorboard/ folder as it trains "
        "(needs cnnlab[tensorboard]).",
    )


class Experiment(BaseModel):
    """One training run's complete recipe."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    data: DataConfig = Field(default_factory=DataConfig, title="Data")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, title="Augmentation")
    model: ModelConfig = Field(default_factory=ModelConfig, title="Model")
    optim: OptimConfig = Field(default_factory=OptimConfig, title="Optimizer")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, title="Schedule")
    train: TrainConfig = Field(default_factory=TrainConfig, title="Training")

    @model_validator(mode="after")
    def _cross_field(self) -> "Experiment":
        s, d, t = self.schedule, self.data, self.train
        if s.name in ("onecycle", "cyclic") and s.max_lr is None:
            raise ValueError(f"schedule.max_lr: the {s.name} schedule needs a max lr")
        if s.name == "cyclic" and s.max_lr is not None and s.max_lr <= self.optim.lr:
            raise ValueError("schedule.max_lr: the cyclic schedule's max lr must be above optim.lr")
        if s.name == "plateau" and d.val_split == 0:
            raise ValueError(
                "data.val_split: the plateau schedule watches the validation loss, "
                "so it needs a validation split above 0"
            )
        if s.name == "multistep":
            if not s.milestones:
                raise ValueError("schedule.milestones: the multistep schedule needs at least one milestone")
        if s.name in ("cosine", "linear", "plateau"):
            lrs = [p.lr for p in t.phases] or [self.optim.lr]
            if s.min_lr > min(lrs):
                where = "a phase's lr" if t.phases else "optim.lr"
                raise ValueError(
                    f"schedule.min_lr: {s.min_lr:g} is above {where} ({min(lrs):g}); the {s.name} schedule "
                    "would raise the learning rate instead of lowering it"
                )
        images = self.train_images()
        if d.val_split >= 1 and images is not None and d.val_split >= images:
            raise ValueError(
                f"data.val_split: {d.val_split:g} validation images leave none of the {images} training images "
                f"{d.dataset} has{' in data.train_subset' if d.train_subset else ''} to train on"
            )
        if t.early_stop is not None and d.val_split == 0:
            raise ValueError(
                "train.early_stop: early stopping watches validation accuracy, so it needs data.val_split above 0"
            )
        if d.normalize == "given" and (d.mean is None or d.std is None):
            raise ValueError("data.mean: normalisation 'given' needs both data.mean and data.std")
        if DATASETS[d.dataset]["classes"] is not None and d.classes is not None:
            total = DATASETS[d.dataset]["classes"]
            if d.classes > total:
                raise ValueError(f"data.classes: {d.dataset} has {total} classes, so at most {total}")
        if t.batch_size % t.devices:
            raise ValueError(
                f"train.batch_size: {t.batch_size} does not split evenly over {t.devices} devices; "
                f"take a multiple of {t.devices}"
            )
        if t.phases:
            total = sum(p.epochs for p in t.phases)
            if total != t.epochs:
                raise ValueError(f"train.epochs: the phases add up to {total} epochs, so train.epochs must be {total}")
        problem = input_size_problem(self.model.arch, self.input_size())
        if problem:
            raise ValueError(f"data.image_size: {problem}")
        return self

    def train_images(self) -> int | None:
        """Training images before the split (after data.classes and data.train_subset); None: unknown yet."""
        d = self.data
        facts = DATASETS[d.dataset]
        known = facts["train_images"]
        if known is not None and d.classes is not None:
            known = known * d.classes // facts["classes"]
        if d.train_subset is not None:
            return min(d.train_subset, known) if known is not None else d.train_subset
        return known

    def input_size(self) -> int | None:
        """Side of the images the model sees (None: a folder dataset of unknown size)."""
        return self.data.image_size or DATASETS[self.data.dataset]["size"]

    # --- TOML -----------------------------------------------------------------------------

    def to_toml(self) -> str:
        return tomli_w.dumps(self.model_dump(mode="json", exclude_none=True))

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_toml())

    @classmethod
    def load(cls, path: Path) -> "Experiment":
        """The experiment in a TOML file; ConfigError naming the file and the fields when it does not read."""
        try:
            doc = toml_files.read(path)
        except toml_files.TomlError as err:
            raise ConfigError([("", err.problem)], str(path)) from None
        return validate_experiment(doc, str(path))


def unused_fields(exp: Experiment) -> dict[str, str]:
    """Fields this experiment holds but never reads, each with why: the form dims them and
    `cnnlab run --set` warns, so an edit that changes nothing does not pass for one that does."""
    unused = {}
    if exp.train.phases:
        unused["optim.lr"] = "not used: the phases set their own lr"
    return unused


def validate_experiment(data: dict[str, Any], source: str | None = None) -> Experiment:
    """The experiment `data` holds; a ConfigError naming `source` and each field when it does not validate."""
    try:
        return Experiment.model_validate(data)
    except ValidationError as err:
        raise ConfigError(describe_errors(err, Experiment), source) from None
