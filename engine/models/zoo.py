"""Models from the ecosystem: `model.arch = "torchvision:NAME"` (any classifier of
torchvision.models) and `"timm:NAME"` (timm's create_model; the cnnlab[timm] extra).

Both take the data's image size and channel count and `model.kwargs` for their builder (a ViT's
`image_size = 32`, say). Pretrained weights follow the rule of engine/models/resnet.py: used when in
the library's cache, fetched when missing, and any failure to have them (offline, a broken file) is
WeightsUnavailable with what to do. A name the library does not know is a ConfigError naming
`model.arch` with the closest names it does. torchvision and timm are imported here only when such
a model is built: each takes seconds.
"""

from __future__ import annotations

import difflib
import os
from typing import Any
from urllib.parse import urlparse

from torch import nn

from engine.experiment.config import ARCHS, ModelConfig
from engine.experiment.errors import ConfigError
from engine.models.weights import WeightsUnavailable
from engine.models.wrapped import Wrapped, adapt_first_conv, find_head, replace_module, small_stem, wrap

TIMM_MISSING = "timm:NAME needs the timm package, which cnnlab installs as an extra: pip install 'cnnlab[timm]'"


def _unknown(library: str, name: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    hint = f"; close: {', '.join(f'{library}:{c}' for c in close)}" if close else ""
    return ConfigError([("model.arch", f"{library} has no classifier {name!r}{hint}")])


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def torchvision_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def timm_names() -> list[str]:
    """timm's architectures ([] without timm)."""
    try:
        import timm
    except ImportError:
        return []
    return list(timm.list_models())


def arch_names() -> list[str]:
    """Every name model.arch takes from a list: the built-ins, torchvision:NAME, timm:NAME (when timm is there)."""
    return [*ARCHS, *(f"torchvision:{n}" for n in torchvision_names()), *(f"timm:{n}" for n in timm_names())]


def _new_classifier(net: nn.Module, head: str, num_classes: int) -> None:
    """Swap the last Linear (or 1x1 conv, SqueezeNet's) in the head for one with num_classes outputs."""
    block = net.get_submodule(head)
    layers = [(n, m) for n, m in block.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    name, last = layers[-1]
    if isinstance(last, nn.Linear):
        new: nn.Module = nn.Linear(last.in_features, num_classes)
    else:
        new = nn.Conv2d(last.in_channels, num_classes, last.kernel_size)
    replace_module(block, name, new) if name else replace_module(net, head, new)


def torchvision_weights(name: str) -> Any:
    """torchvision's DEFAULT weights for `name`; ConfigError when it has none."""
    import torchvision.models as tvm

    try:
        return tvm.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise ConfigError([("model.pretrained", f"torchvision has no pretrained weights for {name}")]) from None


def torchvision_weights_file(weights: Any) -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(weights.url).path))


def torchvision_model(name: str, cfg: ModelConfig, num_classes: int, in_channels: int, pretrained: bool) -> Wrapped:
    import torchvision.models as tvm

    names = tvm.list_models(module=tvm)
    if name not in names:
        raise _unknown("torchvision", name, names)
    what = f"torchvision:{name}"
    try:
        if pretrained:
            weights = torchvision_weights(name)
            try:
                # no progress bar: it would tear a TUI
                net = tvm.get_model(name, weights=weights, progress=False, **cfg.kwargs)
            except TypeError:  # a model.kwargs key the builder does not take: handled below
                raise
            except Exception as err:  # offline (URLError), a broken cache file, a full disk
                path = torchvision_weights_file(weights)
                raise WeightsUnavailable(
                    f"{what} pretrained weights ({weights}) are not available: {_reason(err)}. torchvision "
                    f"looks for {os.path.basename(path)} in {os.path.dirname(path)} and downloads it from "
                    f"{weights.url} when missing. Put the file there, or set model.weights_path instead."
                ) from None
            head = find_head(net)
            if head is not None:
                _new_classifier(net, head, num_classes)
        else:
            net = tvm.get_model(name, num_classes=num_classes, **cfg.kwargs)
    except TypeError as err:  # a model.kwargs key the builder does not take
        raise ConfigError([("model.kwargs", f"{what}: {_reason(err)}")]) from None
    if in_channels != 3:
        adapt_first_conv(net, in_channels)
    if cfg.small_input:
        small_stem(net, what)
    return wrap(net, what)


def timm_model(name: str, cfg: ModelConfig, num_classes: int, in_channels: int, pretrained: bool) -> Wrapped:
    try:
        import timm
    except ImportError:
        raise ConfigError([("model.arch", TIMM_MISSING)]) from None
    if not timm.is_model(name):
        raise _unknown("timm", name, timm.list_models())
    what = f"timm:{name}"
    try:
        net = timm.create_model(
            name, pretrained=pretrained, num_classes=num_classes, in_chans=in_channels, **cfg.kwargs
        )
    except TypeError as err:
        raise ConfigError([("model.kwargs", f"{what}: {_reason(err)}")]) from None
    except Exception as err:  # offline: huggingface_hub's or urllib's errors, a missing cache entry
        if not pretrained:
            raise
        raise WeightsUnavailable(_timm_weights_words(what, err)) from None
    if cfg.small_input:
        small_stem(net, what)
    return wrap(net, what)


def _timm_weights_words(what: str, err: BaseException) -> str:
    return (
        f"{what} pretrained weights are not available: {_reason(err)}. timm keeps them in the Hugging Face "
        "cache (HF_HOME, ~/.cache/huggingface) and downloads them when missing; put them there, "
        "or set model.weights_path to a local weights file instead."
    )


def timm_weights_note(name: str) -> str:
    """Whether timm's pretrained weights for `name` are in the Hugging Face cache, in a sentence."""
    try:
        from timm.models import get_pretrained_cfg
    except ImportError:
        return TIMM_MISSING
    cfg = get_pretrained_cfg(name)
    hub = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub:
        return f"timm's pretrained weights for {name}: fetched by timm when the run starts"
    try:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(hub, filename)
            if isinstance(found, str):
                return f"timm's pretrained weights ({hub}) present at {found}"
    except ImportError:
        pass
    return f"timm's pretrained weights ({hub}) are not in the Hugging Face cache: the run fetches them from {hub}"


def torchvision_weights_note(name: str) -> str:
    weights = torchvision_weights(name)
    path = torchvision_weights_file(weights)
    if os.path.isfile(path):
        return f"torchvision's {weights} present at {path}"
    return f"torchvision's {weights} are not at {path}: the run fetches them from {weights.url}"
