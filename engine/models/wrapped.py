"""A network cnnlab did not write (torchvision's, timm's, the user's own), held so that it behaves
like the built-ins: its final classifier reachable as `model.head` (a fine-tuning phase trains the
head alone; pretrained weights keep everything else), logits (B, classes) out of forward.

The head is found, not renamed: `head`, `fc`, `classifier` or `heads` (torchvision's names), timm's
`get_classifier()`, else the last Linear layer. The network's own parameter names stay, under
`net.`. A probe (one forward of two blank images) checks the output before anything trains, so a
model that does not fit the data is one message at the dry run or the start, not a crash an epoch in.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.experiment.errors import ConfigError

HEAD_NAMES = ("head", "fc", "classifier", "heads")


def find_head(net: nn.Module) -> str | None:
    """The dotted name of `net`'s final classifier within it, or None when it has none to find."""
    for name in HEAD_NAMES:
        if isinstance(getattr(net, name, None), nn.Module):
            return name
    get = getattr(net, "get_classifier", None)
    if callable(get):
        head = get()
        for name, m in net.named_modules():
            if m is head and name:
                return name
    linears = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


class Wrapped(nn.Module):
    """`net` as a cnnlab model: forward gives the logits, `head` is its classifier (`head_name` in `net`)."""

    def __init__(self, net: nn.Module, head_name: str) -> None:
        super().__init__()
        self.net = net
        self.head_name = head_name

    @property
    def head(self) -> nn.Module:  # type: ignore[override]
        return self.net.get_submodule(self.head_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        # torchvision's Inception and GoogLeNet return (logits, aux logits) while training.
        return out if isinstance(out, torch.Tensor) else out[0]


def wrap(net: nn.Module, what: str) -> Wrapped:
    head = find_head(net)
    if head is None:
        raise ConfigError(
            [("model.arch", f"{what} has no final classifier to find: name it head, fc or classifier (a Linear layer)")]
        )
    return Wrapped(net, head)


def replace_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, attr, new)


def adapt_first_conv(net: nn.Module, in_channels: int) -> None:
    """Let a network written for 3-channel images take `in_channels`: its first conv gets that many
    input channels; pretrained weights are averaged over the three colours and repeated."""
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.in_channels == in_channels:
                return
            conv = nn.Conv2d(
                in_channels,
                m.out_channels,
                m.kernel_size,
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                groups=1 if m.groups == m.in_channels else m.groups,
                bias=m.bias is not None,
            )
            with torch.no_grad():
                conv.weight.copy_(m.weight.mean(1, keepdim=True).expand_as(conv.weight))
                if m.bias is not None:
                    conv.bias.copy_(m.bias)
            replace_module(net, name, conv)
            return


def small_stem(net: nn.Module, what: str) -> None:
    """The CIFAR stem for a ResNet-family network: conv1 3x3 stride 1 (freshly initialised, as
    torchvision initialises it) and no max-pool, so 32 pixels reach layer1 whole instead of as 8x8."""
    conv = getattr(net, "conv1", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(getattr(net, "maxpool", None), nn.Module):
        raise ConfigError(
            [("model.small_input", f"{what} has no ResNet stem (a conv1 layer and a maxpool) to make small")]
        )
    new = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=conv.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    net.conv1 = new
    net.maxpool = nn.Identity()


def probe(model: nn.Module, what: str, num_classes: int, in_channels: int, size: int, where: str = "") -> None:
    """One forward of two blank images (eval mode, no gradients): ConfigError naming model.arch when
    the model fails on the data's images or does not give (batch, classes)."""
    was_training = model.training
    model.eval()
    shape = (2, in_channels, size, size)
    try:
        with torch.no_grad():
            out = model(torch.zeros(shape))
    except Exception as err:
        text = str(err).strip().splitlines()
        reason = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
        raise ConfigError([("model.arch", f"{what}{where} fails on images of {shape}: {reason}")]) from None
    finally:
        model.train(was_training)
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != (2, num_classes):
        raise ConfigError(
            [
                (
                    "model.arch",
                    f"{what}{where} gives {got} for a batch of 2, not (batch, classes) = (2, {num_classes})",
                )
            ]
        )
