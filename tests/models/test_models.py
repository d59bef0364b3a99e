"""The models: every architecture's output, the layer structures and sizes the reports give
(PRESETS.md), the initialisation schemes, and where starting weights come from (ImageNet while
offline, a local file)."""

import math
import urllib.error

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.experiment.config import ARCHS, ModelConfig
from engine.experiment.errors import ConfigError
from engine.models import BUILDERS, WeightsUnavailable, build_model, count_parameters

SIZE = {arch: info["input"] or 32 for arch, info in ARCHS.items()}
# The report's Backbone (18.7M parameters, 1028 channels) is checked layer by layer below; here a
# narrower one runs the same code for the bf16 backward pass, which is slow on a CPU.
NARROW = {"backbone": {"backbone_channels": [[3, 16, 32], [32, 64, 128]]}}


def test_every_arch_the_config_offers_has_a_builder():
    assert set(BUILDERS) == set(ARCHS)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_forward_backward_channels_last_and_bf16_autocast(arch):
    torch.manual_seed(0)
    classes = 100 if arch == "resnet50" else 7  # report 004's 100-class ResNet-50 head
    size = SIZE[arch]
    model = build_model(ModelConfig(arch=arch, **NARROW.get(arch, {})), classes, size)
    x = torch.randn(2, 3, size, size)

    out = model(x)
    assert out.shape == (2, classes)
    head = model.head  # the classifier a head-only fine-tuning phase trains
    assert isinstance(head, nn.Linear) and head.out_features == classes
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert head.weight.grad.abs().sum() > 0

    # The trainer's fast path: channels_last weights and images, bf16 autocast on the CPU.
    model.zero_grad()
    model = model.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, classes) and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    out.float().logsumexp(1).mean().backward()
    assert torch.isfinite(head.weight.grad).all() and head.weight.grad.abs().sum() > 0


def _record_shapes(modules, into: list):
    return [m.register_forward_hook(lambda _m, _i, out: into.append(tuple(out.shape[1:]))) for m in modules]


def test_backbone_layers_channels_and_spatial_sizes_are_report_003s():
    model = build_model(ModelConfig(arch="backbone"), 10, 32)  # the defaults are the report's channels and K
    channels, ks = [[3, 128, 256], [256, 512, 1028]], [3, 3]
    assert len(model.backbones) == 2
    layers = []
    for backbone, chans, k in zip(model.backbones, channels, ks, strict=True):
        assert len(backbone.blocks) == k
        assert (backbone.gate.in_features, backbone.gate.out_features) == (chans[0], k)
        assert isinstance(backbone.norm, nn.BatchNorm2d) and backbone.norm.num_features == chans[-1]
        for block in backbone.blocks:
            assert [(layer[0].in_channels, layer[0].out_channels) for layer in block] == list(
                zip(chans, chans[1:], strict=False)
            )
            for layer in block:
                assert [type(m) for m in layer] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d, nn.Dropout]
                assert layer[0].kernel_size == (3, 3) and layer[0].padding == (1, 1)
                assert layer[3].kernel_size == 2 and layer[4].p == 0.2
        layers += list(backbone.blocks[0])
    assert (model.head.in_features, model.head.out_features) == (1028, 10)

    per_layer, per_backbone = [], []
    _record_shapes(layers, per_layer)
    _record_shapes(model.backbones, per_backbone)
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 32, 32))
    assert per_layer == [(128, 16, 16), (256, 8, 8), (512, 4, 4), (1028, 2, 2)]  # 32→16→8→4→2
    assert per_backbone == [(256, 8, 8), (1028, 2, 2)]


def test_backbone_output_is_batchnorm_of_the_per_image_gated_sum():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="backbone", backbone_channels=[[3, 4, 6]], backbone_k=[2])
    backbone = build_model(cfg, 5, 32).eval().backbones[0]
    norm = backbone.norm
    with torch.no_grad():  # statistics other than 0/1, so the normalisation shows
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
        norm.weight.uniform_(0.5, 2), norm.bias.uniform_(-1, 1)
        x = torch.randn(3, 3, 32, 32) + torch.arange(3.0).view(3, 1, 1, 1)
        a = torch.sigmoid(x.mean(dim=(2, 3)) @ backbone.gate.weight.T + backbone.gate.bias)  # sigmoid(SAP(X) W)
        mixed = sum(a[:, k].view(-1, 1, 1, 1) * backbone.blocks[k](x) for k in range(2))
        expected = (mixed - norm.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            norm.running_var.view(1, -1, 1, 1) + norm.eps
        )
        expected = expected * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
        torch.testing.assert_close(backbone(x), expected)
    assert a.shape == (3, 2) and not torch.allclose(a[0], a[1])  # one weight per block, per image


def test_simplecnn_blocks_and_its_256x2x2_flatten():
    model = build_model(ModelConfig(arch="simplecnn", dropout=0.3), 100, 32)
    assert [block[0].out_channels for block in model.features] == [32, 64, 128, 256]
    for block in model.features:
        assert [type(m) for m in block] == [nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d, nn.ReLU]
        assert block[0].kernel_size == (3, 3) and block[0].padding == (1, 1)
    seen = []
    model.features.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape)))
    model.fc.register_forward_hook(lambda _m, inp, _o: seen.append(tuple(inp[0].shape)))
    model(torch.randn(2, 3, 32, 32))
    assert seen == [(2, 256, 2, 2), (2, 256 * 2 * 2)]
    assert (model.fc.out_features, model.head.in_features, model.head.out_features) == (512, 512, 100)
    assert model.dropout.p == 0.3


@pytest.mark.parametrize("arch,size", [("alexnet32", 32), ("alexnet64", 64)])
def test_alexnet_five_convs_three_fc_overlapping_pools_dropout_no_norm(arch, size):
    model = build_model(ModelConfig(arch=arch, dropout=0.5), 10, size)
    modules = list(model.modules())
    convs = [m for m in modules if isinstance(m, nn.Conv2d)]
    fcs = [m for m in modules if isinstance(m, nn.Linear)]
    pools = [m for m in modules if isinstance(m, nn.MaxPool2d)]
    assert [c.out_channels for c in convs] == [96, 256, 384, 384, 256]
    assert [(f.in_features, f.out_features) for f in fcs] == [(256 * 3 * 3, 4096), (4096, 4096), (4096, 10)]
    assert fcs[-1] is model.head
    assert len(pools) == 3 and all(p.kernel_size == 3 and p.stride == 2 for p in pools)  # overlapping
    assert sum(isinstance(m, nn.ReLU) for m in modules) == 7
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.LocalResponseNorm, nn.GroupNorm, nn.LayerNorm)) for m in modules)
    classifier = list(model.classifier)
    for fc in fcs[:2]:  # dropout right before FC1 and FC2, not before the head
        before = classifier[classifier.index(fc) - 1]
        assert isinstance(before, nn.Dropout) and before.p == 0.5
    assert sum(isinstance(m, nn.Dropout) for m in modules) == 2

    shapes = []
    _record_shapes([convs[0], model.features], shapes)
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    assert shapes == [(96, 32, 32), (256, 3, 3)]


def test_mobilenet_depthwise_separable_blocks_and_stride_plan():
    model = build_model(ModelConfig(arch="mobilenet"), 100, 32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    depthwise = [c for c in convs if c.groups == c.in_channels == c.out_channels > 1]
    pointwise = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(depthwise) == len(pointwise) == 13 and len(convs) == 27
    assert convs[0].stride == (1, 1) and convs[0].out_channels == 32  # the CIFAR adaptation
    shapes = []
    _record_shapes(model.features, shapes)
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, 32, 32))
    assert [(c, h) for c, h, _w in shapes] == [
        (32, 32),
        (64, 32),
        (128, 16),
        (128, 16),
        (256, 8),
        (256, 8),
        (512, 4),
        (512, 4),
        (512, 4),
        (512, 4),
        (512, 4),
        (512, 4),
        (1024, 2),
        (1024, 2),
    ]
    assert (model.head.in_features, model.head.out_features) == (1024, 100)


TV_RESNET34, TV_RESNET50 = 21_797_672, 25_557_032  # torchvision's own counts, with a 1000-class fc
PRESET_PARAMS = {  # (arch, classes, image size) of each preset → parameters
    ("simplecnn", 100, 32): 965_476,
    ("alexnet32", 100, 32): 30_351_844,
    ("alexnet64", 10, 64): 29_990_026,
    ("mobilenet", 100, 32): 3_309_476,
    ("backbone", 10, 32): 18_676_077,
    ("resnet34", 100, 32): TV_RESNET34 - (512 * 1000 + 1000) + (512 * 100 + 100),
    ("resnet50", 100, 32): TV_RESNET50 - (2048 * 1000 + 1000) + (2048 * 100 + 100),
}


def test_parameter_counts_of_the_preset_models():
    assert {arch for arch, _, _ in PRESET_PARAMS} == set(ARCHS)
    for (arch, classes, size), expected in PRESET_PARAMS.items():
        with torch.device("meta"):  # shapes only: no memory, no time
            model = build_model(ModelConfig(arch=arch), classes, size)
        assert count_parameters(model) == (expected, expected), arch
    # Report 004's phase 1: everything frozen but the 100-class head.
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.head.parameters():
        p.requires_grad_(True)
    assert count_parameters(model) == (PRESET_PARAMS[("resnet50", 100, 32)], 2048 * 100 + 100)


@pytest.mark.parametrize("scheme", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"])
def test_init_schemes_draw_weights_with_the_right_spread_and_zero_biases(scheme):
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="simplecnn", init=scheme), 100, 32)
    for layer in (model.fc, model.features[3][0]):  # Linear 1024→512, Conv 128→256 3x3
        w = layer.weight
        fan_in, fan_out = w[0].numel(), w.shape[0] * w[0, 0].numel()
        std = math.sqrt(2 / (fan_in + fan_out)) if scheme.startswith("xavier") else math.sqrt(2 / fan_in)
        assert w.std().item() == pytest.approx(std, rel=0.03)
        # Uniform draws stay inside ±sqrt(3)·std; half a million normal draws do not.
        assert (w.abs().max().item() <= math.sqrt(3) * std * 1.0001) == scheme.endswith("uniform")
    convs_and_fcs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(convs_and_fcs) == 6 and all(torch.all(m.bias == 0) for m in convs_and_fcs)


def test_default_init_is_pytorchs_and_xavier_reaches_every_backbone_layer():
    torch.manual_seed(0)
    default = build_model(ModelConfig(arch="simplecnn"), 10, 32)
    assert default.fc.bias.abs().sum() > 0 and default.fc.weight.abs().max() <= 1 / math.sqrt(1024)
    cfg = ModelConfig(arch="backbone", init="xavier_uniform", backbone_channels=[[3, 8], [8, 16]], backbone_k=[2, 2])
    layers = [m for m in build_model(cfg, 10, 32).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 2 * 2 + 2 + 1  # convs, gates, head
    assert all(torch.all(m.bias == 0) for m in layers)


def test_resnet50_imagenet_weights_offline_say_where_the_file_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    asked = []

    def offline(url, *args, **kwargs):
        asked.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    # torch.hub downloads whatever is not in its cache through this one function.
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as err:
        build_model(ModelConfig(arch="resnet50", pretrained=True), 100, 32)
    message = str(err.value)
    assert asked == ["https://download.pytorch.org/models/resnet50-11ad3fa6.pth"]  # IMAGENET1K_V2
    assert "resnet50-11ad3fa6.pth" in message and str(tmp_path / "torch-home" / "hub" / "checkpoints") in message
    assert "model.weights_path" in message and "name resolution" in message
    assert "Traceback" not in message and "\n" not in message


def test_imagenet_layers_keep_their_weights_and_only_the_new_head_is_initialised(monkeypatch):
    import torchvision

    import engine.models.resnet as resnet

    torch.manual_seed(0)
    pretrained = torchvision.models.resnet18()  # stands in for what torchvision returns with ImageNet weights
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    monkeypatch.setattr(resnet, "_imagenet_resnet50", lambda: pretrained)
    model = build_model(ModelConfig(arch="resnet50", pretrained=True, init="xavier_normal"), 100, 32)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items() if not k.startswith("fc."))
    assert model.head.out_features == 100 and torch.all(model.head.bias == 0)
    assert model.head.weight.std().item() == pytest.approx(math.sqrt(2 / (512 + 100)), rel=0.05)


def test_weights_path_takes_a_torchvision_state_dict_and_replaces_its_1000_class_head(tmp_path):
    import torchvision

    torch.manual_seed(1)
    theirs = torchvision.models.resnet34().state_dict()  # torchvision's layout: `fc` with 1000 outputs
    path = tmp_path / "resnet34-imagenet.pth"
    torch.save(theirs, path)
    model = build_model(ModelConfig(arch="resnet34", weights_path=str(path), init="xavier_uniform"), 100, 32)
    ours = model.state_dict()
    body = [k for k in theirs if not k.startswith("fc.")]
    assert body and all(torch.equal(ours[k], theirs[k]) for k in body)
    assert model.head.out_features == 100 and torch.all(model.head.bias == 0)  # new, and initialised
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_weights_path_loads_a_saved_model_or_a_cnnlab_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = build_model(ModelConfig(arch="mobilenet"), 10, 32).eval()
    torch.save(source.state_dict(), tmp_path / "model.pt")
    torch.save({"model": source.state_dict(), "epoch": 3, "best": 0.5}, tmp_path / "last.pt")
    x = torch.randn(2, 3, 32, 32)
    for name in ("model.pt", "last.pt"):
        torch.manual_seed(1)
        model = build_model(ModelConfig(arch="mobilenet", weights_path=str(tmp_path / name)), 10, 32).eval()
        torch.testing.assert_close(model(x), source(x))
    # Another class count: everything but the head comes from the file.
    model = build_model(ModelConfig(arch="mobilenet", weights_path=str(tmp_path / "model.pt")), 4, 32)
    assert model.head.out_features == 4
    assert torch.equal(model.features[5][3].weight, source.features[5][3].weight)


def test_weights_that_do_not_fit_say_what_is_missing_and_unexpected(tmp_path):
    path = tmp_path / "simplecnn.pt"
    torch.save(build_model(ModelConfig(arch="simplecnn"), 10, 32).state_dict(), path)
    with pytest.raises(WeightsUnavailable) as err:
        build_model(ModelConfig(arch="mobilenet", weights_path=str(path)), 10, 32)
    message = str(err.value)
    assert message.startswith(f"model.weights_path: {path} does not fit mobilenet: ")
    assert " missing (" in message and " unexpected (features.0.0.bias" in message and "of another shape" in message


def test_unreadable_weights_files_are_messages(tmp_path):
    cases = {
        "nothing.pt": None,
        "garbage.pt": b"not a pickle at all",
        "module.pt": nn.Linear(2, 2),
        "numbers.pt": {"lr": 0.1},
    }
    for name, content in cases.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        elif content is not None:
            torch.save(content, tmp_path / name)
    messages = {}
    for name in cases:
        with pytest.raises(WeightsUnavailable) as err:
            build_model(ModelConfig(arch="simplecnn", weights_path=str(tmp_path / name)), 10, 32)
        messages[name] = str(err.value)
    assert "there is no file at" in messages["nothing.pt"]
    # A pickled module is refused by weights_only=True like any other object.
    assert "weights_only=True" in messages["garbage.pt"] and "weights_only=True" in messages["module.pt"]
    assert "holds no state dict" in messages["numbers.pt"]


def test_images_that_do_not_suit_the_arch_are_config_errors():
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch="alexnet32"), 10, 64)
    assert err.value.problems[0][0] == "data.image_size" and "set data.image_size = 32" in err.value.problems[0][1]
    too_deep = ModelConfig(arch="backbone", backbone_channels=[[3, 4, 4, 4], [4, 4, 4, 4]], backbone_k=[1, 1])
    with pytest.raises(ConfigError) as err:
        build_model(too_deep, 10, 32)
    assert err.value.problems == [
        ("model.backbone_channels", "6 conv layers halve the image 6 times; 32 pixels allow at most 5")
    ]
    with pytest.raises(ConfigError) as err:
        build_model(ModelConfig(arch="backbone"), 10, 32, in_channels=1)
    assert err.value.problems[0][0] == "model.backbone_channels"
