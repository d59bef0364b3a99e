"""The model registry: every architecture of engine.experiment.config.ARCHS, built by name from a
ModelConfig, and the models from elsewhere `model.arch` can name: torchvision's and timm's
(engine/models/zoo.py) and the user's own class (engine/models/user_file.py).

Every model takes float images (B, C, H, W) and returns logits (B, num_classes), works in
channels_last and under autocast, and exposes its final classifier as `model.head`, so that a
fine-tuning phase can train the head alone (engine/models/wrapped.py finds it in the others).
torchvision is imported only for the ResNets and torchvision:NAME, timm only for timm:NAME.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from torch import nn

from engine.experiment.config import ZOO_LIBRARIES, ModelConfig, arch_kind, input_size_problem
from engine.experiment.errors import ConfigError
from engine.models import user_file
from engine.models.alexnet import AlexNet
from engine.models.backbone import BackboneNet
from engine.models.init import initialise
from engine.models.mobilenet import MobileNet
from engine.models.simplecnn import SimpleCNN
from engine.models.user_file import USER_KINDS, build_user_model
from engine.models.weights import WeightsUnavailable, load_weights

__all__ = ["BUILDERS", "WeightsUnavailable", "build_model", "count_parameters", "weights_note"]


def uses_imagenet(cfg: ModelConfig) -> bool:
    """Pretrained (ImageNet) weights are fetched only when asked for and no local file stands in for them."""
    return cfg.pretrained and not cfg.weights_path


def _backbone(cfg: ModelConfig, n: int, size: int, c: int) -> nn.Module:
    if cfg.backbone_channels[0][0] != c:
        raise ConfigError([("model.backbone_channels", f"must start with {c}, the images' channel count")])
    halvings = sum(len(chans) - 1 for chans in cfg.backbone_channels)
    if size >> halvings < 1:
        most = size.bit_length() - 1
        raise ConfigError(
            [
                (
                    "model.backbone_channels",
                    f"{halvings} conv layers halve the image {halvings} times; {size} pixels allow at most {most}",
                )
            ]
        )
    return BackboneNet(n, cfg.backbone_channels, cfg.backbone_k, cfg.conv_dropout, cfg.dropout)


def _resnet(depth: int) -> Callable[[ModelConfig, int, int, int], nn.Module]:
    def build(cfg: ModelConfig, n: int, size: int, c: int) -> nn.Module:
        from engine.models.resnet import resnet  # torchvision takes seconds to import: only when needed

        net = resnet(depth, n, c, cfg.dropout, imagenet=uses_imagenet(cfg))
        if cfg.small_input:
            from engine.models.wrapped import small_stem

            small_stem(net, cfg.arch)
        return net

    return build


# arch → builder(cfg, num_classes, image_size, in_channels)
BUILDERS: dict[str, Callable[[ModelConfig, int, int, int], nn.Module]] = {
    "simplecnn": lambda cfg, n, size, c: SimpleCNN(n, c, cfg.dropout),
    "alexnet32": lambda cfg, n, size, c: AlexNet(n, 32, c, cfg.dropout),
    "alexnet64": lambda cfg, n, size, c: AlexNet(n, 64, c, cfg.dropout),
    "mobilenet": lambda cfg, n, size, c: MobileNet(n, c, cfg.dropout),
    "backbone": _backbone,
    "resnet34": _resnet(34),
    "resnet50": _resnet(50),
}


def build_model(
    cfg: ModelConfig, num_classes: int, image_size: int, in_channels: int = 3, *, fetch: bool = True
) -> nn.Module:
    """The network `cfg.arch` for images of image_size x image_size pixels, initialised by cfg.init
    and started from cfg.weights_path or ImageNet's weights when asked. fetch=False builds the same
    network without ImageNet's weights, so nothing is downloaded (a dry run; see weights_note).

    Raises ConfigError when the images do not suit the architecture, WeightsUnavailable when the
    weights cannot be had or do not fit."""
    problem = input_size_problem(cfg.arch, image_size)
    if problem:
        raise ConfigError([("data.image_size", problem)])
    if not fetch and uses_imagenet(cfg):
        cfg = cfg.model_copy(update={"pretrained": False})
    kind = arch_kind(cfg.arch)
    if kind == "builtin":
        model = BUILDERS[cfg.arch](cfg, num_classes, image_size, in_channels)
    else:
        model = _elsewhere(kind, cfg, num_classes, image_size, in_channels)
    # Pretrained layers keep their weights: only the new head is initialised.
    initialise(model.head if uses_imagenet(cfg) else model, cfg.init)
    if cfg.weights_path:
        load_weights(model, cfg.weights_path, cfg.arch)
    return model


def _elsewhere(kind: str, cfg: ModelConfig, num_classes: int, image_size: int, in_channels: int) -> nn.Module:
    """A library's model or the user's own, wrapped so that `head` is its classifier, and probed with a
    forward of two blank images of the data's size: a model that does not fit is a ConfigError here."""
    from engine.models.wrapped import probe, wrap  # torch's nn only; zoo imports the library when named

    if kind in ZOO_LIBRARIES:
        from engine.models import zoo

        name = cfg.arch.partition(":")[2]
        build = zoo.torchvision_model if kind == "torchvision" else zoo.timm_model
        model = build(name, cfg, num_classes, in_channels, uses_imagenet(cfg))
        probe(model, cfg.arch, num_classes, in_channels, image_size)
        return model
    assert kind in USER_KINDS
    net = build_user_model(cfg, num_classes, in_channels)
    if cfg.small_input:
        from engine.models.wrapped import small_stem

        small_stem(net, cfg.arch)
    path = user_file.source_file(cfg.arch)
    model = wrap(net, f"{cfg.arch.rpartition(':')[2]} in {path}")
    probe(model, cfg.arch.rpartition(":")[2], num_classes, in_channels, image_size, f" in {path}")
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; shared parameters count once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def weights_note(cfg: ModelConfig) -> str:
    """Where the starting weights come from, in a sentence; "none" for a model trained from scratch."""
    if cfg.weights_path:
        return f"read from model.weights_path ({cfg.weights_path})"
    if not uses_imagenet(cfg):
        return "none"
    kind, name = arch_kind(cfg.arch), cfg.arch.partition(":")[2]
    if kind in ZOO_LIBRARIES:
        from engine.models import zoo

        return zoo.torchvision_weights_note(name) if kind == "torchvision" else zoo.timm_weights_note(name)
    from engine.models.resnet import IMAGENET_WEIGHTS, imagenet_weights_file

    path = imagenet_weights_file()
    if os.path.isfile(path):
        return f"ImageNet weights (torchvision IMAGENET1K_V2) present at {path}"
    return (
        f"ImageNet weights (torchvision IMAGENET1K_V2) are not at {path}: "
        f"the run fetches them from {IMAGENET_WEIGHTS.url}"
    )
