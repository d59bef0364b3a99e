"""Models beyond the built-ins: model.arch's spelling (torch-free), torchvision's and timm's models
with their classifier as `head`, the small-image stem, the user's own file (each fault one message
naming the file), the run's copy of that file, and the FLOP count the dry run prints."""

from __future__ import annotations

import textwrap
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.experiment.config import ModelConfig
from engine.experiment.errors import ConfigError
from engine.models import build_model, user_file
from engine.models.flops import forward_flops

GOOD = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, num_classes, in_channels=3, width=8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x))
"""


def model_file(tmp_path: Path, text: str = GOOD, name: str = "models.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "arch, words",
    [
        ("torchvision:", "torchvision: needs a model name after the colon"),
        ("timm:", "timm: needs a model name"),
        ("resnt50", "did you mean resnet50"),
        ("models.py:", "needs a class name after the colon"),
        (":Net", "names no file or module"),
        ("my models:Net", "neither a .py file nor a module name"),
    ],
)
def test_arch_spelling_is_checked_without_importing_anything(arch, words):
    with pytest.raises(ValueError) as err:
        ModelConfig(arch=arch)
    assert words in str(err.value) and "arch" in str(err.value)


def test_pretrained_kwargs_and_small_input_are_refused_where_they_mean_nothing():
    with pytest.raises(ValueError, match="resnet50, torchvision:NAME and timm:NAME only"):
        ModelConfig(arch="simplecnn", pretrained=True)
    with pytest.raises(ValueError, match="built-in architectures take no constructor arguments"):
        ModelConfig(arch="simplecnn", kwargs={"width": 3})
    with pytest.raises(ValueError, match="small_input: mobilenet is written for its input size"):
        ModelConfig(arch="mobilenet", small_input=True)
    assert ModelConfig(arch="torchvision:resnet18", pretrained=True, kwargs={"zero_init_residual": True})


@pytest.mark.parametrize("arch", ["torchvision:resnet18", "torchvision:mobilenet_v3_small", "timm:resnet10t"])
def test_zoo_models_give_logits_expose_their_head_and_train_in_channels_last_bf16(arch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch=arch), 7, 32)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 7)
    head_out = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert head_out.out_features == 7
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    assert head_out.weight.grad.abs().sum() > 0
    model = model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 7) and out.dtype == torch.bfloat16


def test_unknown_library_names_are_one_message_with_close_matches():
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch="torchvision:resnet181"), 10, 32)
    assert err.value.problems[0][0] == "model.arch" and "torchvision:resnet18" in str(err.value)
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch="timm:resnet1888"), 10, 32)
    assert "timm:resnet18" in str(err.value)


def test_the_timm_extra_is_named_when_timm_is_absent(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_timm(name, *args, **kwargs):
        if name == "timm" or name.startswith("timm."):
            raise ImportError("No module named 'timm'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_timm)
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch="timm:resnet18"), 10, 32)
    assert "pip install 'cnnlab[timm]'" in str(err.value) and "\n" not in str(err.value)


def test_pretrained_weights_offline_are_refused_with_where_to_put_them(monkeypatch, tmp_path):
    from engine.models import WeightsUnavailable

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)  # what torchvision downloads through
    with pytest.raises(WeightsUnavailable) as err:
        build_model(ModelConfig(arch="torchvision:resnet18", pretrained=True), 10, 32)
    assert "network is unreachable" in str(err.value) and str(tmp_path) in str(err.value)


def test_the_small_image_stem_keeps_32_pixels_into_layer1():
    plain = build_model(ModelConfig(arch="torchvision:resnet18"), 10, 32)
    small = build_model(ModelConfig(arch="torchvision:resnet18", small_input=True), 10, 32)
    assert small.net.conv1.kernel_size == (3, 3) and small.net.conv1.stride == (1, 1)
    assert isinstance(small.net.maxpool, torch.nn.Identity)
    seen = {}
    for name, m in (("plain", plain), ("small", small)):
        m.net.layer1.register_forward_hook(lambda _m, _i, out, name=name: seen.update({name: out.shape[-1]}))
        m.eval()(torch.zeros(1, 3, 32, 32))
    assert seen == {"plain": 8, "small": 32}
    assert forward_flops(small, (3, 32, 32)) > 10 * forward_flops(plain, (3, 32, 32))
    with pytest.raises(ConfigError, match="model.small_input: torchvision:mobilenet_v3_small has no ResNet stem"):
        build_model(ModelConfig(arch="torchvision:mobilenet_v3_small", small_input=True), 10, 32)


def test_one_channel_images_go_into_a_zoo_model():
    model = build_model(ModelConfig(arch="torchvision:resnet18"), 10, 28, in_channels=1)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_a_users_file_builds_with_kwargs_and_in_channels(tmp_path):
    path = model_file(tmp_path)
    model = build_model(ModelConfig(arch=f"{path}:Net", kwargs={"width": 5}), 4, 16, in_channels=1)
    assert model(torch.zeros(3, 1, 16, 16)).shape == (3, 4)
    assert model.head.in_features == 5 and model.head is model.net.classifier


BAD_FILES = {
    "syntax": ("def broken(:\n", "does not import: line 1: SyntaxError"),
    "import": ("import numpy\nimport no_such_module_here\n", "does not import, line 2: ModuleNotFoundError"),
    "top-level raise": ("x = 1\nraise RuntimeError('boom')\n", "does not import, line 2: RuntimeError: boom"),
    "no class": (GOOD.replace("class Net", "class Nett"), "has no class Net; did you mean Nett?"),
    "not a module": ("class Net:\n    def __init__(self, num_classes): pass\n", "is not a torch.nn.Module class"),
    "no num_classes": (
        GOOD.replace("num_classes, in_channels=3", "classes, in_channels=3"),
        "does not take num_classes",
    ),
    "constructor raises": (
        GOOD.replace("super().__init__()", "super().__init__()\n        raise ValueError('bad width')"),
        "failed, line 9: ValueError: bad width",
    ),
    "wrong output": (
        GOOD.replace("return self.classifier(self.body(x))", "return self.body(x)"),
        "not (batch, classes)",
    ),
    "forward raises": (GOOD.replace("return self.classifier", "return 1 / 0 + self.classifier"), "ZeroDivisionError"),
}


@pytest.mark.parametrize("fault", list(BAD_FILES))
def test_each_fault_of_a_users_file_is_one_message_naming_the_file(tmp_path, fault):
    text, words = BAD_FILES[fault]
    path = model_file(tmp_path, text, name=f"bad_{fault.replace(' ', '_').replace('-', '_')}.py")
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch=f"{path}:Net"), 10, 32)
    (problem,) = err.value.problems
    assert problem[0] == "model.arch" and str(path) in problem[1] and words in problem[1], problem
    assert "\n" not in problem[1]


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="there is no model file at"):
        build_model(ModelConfig(arch=f"{tmp_path / 'gone.py'}:Net"), 10, 32)


def test_the_runs_copy_stands_in_for_the_file_after_it_changes_or_goes(tmp_path):
    path = model_file(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    cfg = ModelConfig(arch=f"{path}:Net")
    assert user_file.for_run(run, ModelConfig()) == ModelConfig()  # a built-in: unchanged
    with pytest.raises(ConfigError, match="the run's copy of the model file is missing"):
        user_file.for_run(run, cfg)
    user_file.keep_copy(run, cfg)
    assert (run / "model" / "models.py").read_text() == path.read_text()
    assert user_file.drift(run) is None
    path.write_text(GOOD.replace("class Net", "class Other"))  # the user edits the file
    assert "has changed since the run started" in user_file.drift(run)
    rebuilt = build_model(user_file.for_run(run, cfg), 10, 32)  # the copy still has Net
    assert rebuilt(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    path.unlink()
    assert "is gone" in user_file.drift(run)
    assert user_file.for_run(run, cfg).arch == f"{(run / 'model' / 'models.py').resolve()}:Net"


def test_a_module_class_is_found_on_the_path(tmp_path, monkeypatch):
    model_file(tmp_path, name="my_nets.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model(ModelConfig(arch="my_nets:Net"), 3, 8)
    assert model(torch.zeros(2, 3, 8, 8)).shape == (2, 3)
