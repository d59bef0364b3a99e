"""Presets: every built-in recipe loads, validates and names its report; a broken file is a problem
naming the file and the field while the rest still load; the user's own presets are saved and listed."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import apply_overrides
from engine.experiment.preset_files import preset_cards
from engine.experiment.presets import UnknownPreset, get_preset, load_experiment_source, load_presets, save_user_preset
from engine.experiment.sweep_plan import plan_trials
from engine.files import safe_name
from engine.runfolder.folder import RunFolder

ROOT = Path(__file__).resolve().parents[2]
REPORTS = ROOT.parent / "shared" / "reports"
ISSUE_PRESETS = {
    "alexnet-cifar100-sgd",
    "alexnet-cifar100-adamw",
    "mobilenet-cifar100-lr",
    "mobilenet-cifar100-constant",
    "mobilenet-cifar100-cosine",
    "mobilenet-cifar100-wd",
    "mobilenet-cifar100-mixup",
    "alexnet-tinyimage10",
    "backbone-cifar10",
    "simplecnn-cifar100",
    "resnet34-cifar100",
    "resnet50-pretrained-cifar100",
    "shapes-demo",
}
BUILTIN = {p.name: p for p in load_presets()[0]}


def test_every_builtin_preset_loads_without_problems():
    presets, problems = load_presets()
    assert problems == []
    assert ISSUE_PRESETS <= {p.name for p in presets}
    for p in presets:
        assert safe_name(p.name) == p.name == p.source.stem
        assert isinstance(p.experiment, Experiment) and not p.user
        assert p.description
        if p.report:
            assert p.notes, f"{p.name}: a report's preset notes what the report left open"
            assert p.reference.epochs, f"{p.name}: reference numbers need the epoch they were measured at"
        for key, value in (p.reference.figures() if p.reference else {}).items():
            assert key in {"epochs", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"}
            if key.endswith("_acc"):
                assert 0 <= value <= 1, f"{p.name}: {key} is a fraction"


@pytest.mark.skipif(not REPORTS.is_dir(), reason="../shared/reports is not beside the repository")
@pytest.mark.parametrize("name", sorted(ISSUE_PRESETS - {"shapes-demo"}))
def test_each_preset_names_a_report_that_exists(name):
    assert (REPORTS / BUILTIN[name].report).is_file()


def test_the_recipes_say_what_the_reports_say():
    """Spot checks against PRESETS.md, the figures a reader would look up first."""
    sgd, adamw = BUILTIN["alexnet-cifar100-sgd"].experiment, BUILTIN["alexnet-cifar100-adamw"].experiment
    assert (sgd.train.epochs, sgd.train.batch_size, sgd.optim.lr, sgd.optim.weight_decay) == (300, 4, 0.01, 0.0005)
    assert sgd.schedule.milestones == [150, 200] and adamw.optim.name == "adamw" and sgd.model.init == "xavier_uniform"

    mix = BUILTIN["mobilenet-cifar100-mixup"]
    assert mix.reference.test_acc == 0.6069 and mix.reference.val_acc == 0.6003
    assert mix.experiment.augment.mixup_alpha == 0.2 and mix.experiment.data.val_split == 10000
    assert mix.experiment.data.mean == (0.4385, 0.4181, 0.3775)
    assert BUILTIN["mobilenet-cifar100-lr"].sweep.grid == {"optim.lr": [0.5, 0.05, 0.01]}
    assert BUILTIN["mobilenet-cifar100-wd"].sweep.grid == {"optim.weight_decay": [0.0005, 0.0001]}

    tiny = BUILTIN["alexnet-tinyimage10"]
    d = tiny.experiment.data
    assert (d.dataset, d.classes, d.image_size, d.test_split) == ("tiny-imagenet", 10, 64, 0.1)
    # 0.8 / 0.1 / 0.1: both splits are fractions of the same 5,000 training images (engine.data.splits)
    assert d.val_split == 0.1 and d.mean == (0.485, 0.456, 0.406)
    assert len(plan_trials(tiny.experiment, grid=tiny.sweep.grid)) == 12

    bb = BUILTIN["backbone-cifar10"].experiment
    assert bb.model.backbone_channels == [[3, 128, 256], [256, 512, 1028]] and bb.optim.grad_clip == 0.1
    assert (bb.schedule.name, bb.optim.name, bb.train.batch_size, bb.train.epochs) == ("plateau", "adamw", 256, 90)

    r50 = BUILTIN["resnet50-pretrained-cifar100"].experiment
    assert r50.model.pretrained and [(p.epochs, p.train, p.lr) for p in r50.train.phases] == [
        (10, "head", 1e-3),
        (100, "all", 1e-4),
    ]
    assert r50.augment.label_smoothing == 0.1 and r50.train.epochs == 110
    assert BUILTIN["shapes-demo"].experiment.data.dataset == "shapes" and BUILTIN["shapes-demo"].report == ""


@pytest.mark.parametrize("name", sorted(ISSUE_PRESETS))
def test_each_preset_builds_its_model_and_runs_a_forward_pass(name):
    """`cnnlab run PRESET --dry-run`, offline: a dry run builds ResNet-50 without its ImageNet download."""
    pytest.importorskip("engine.data.splits")
    from engine.training.dry_run import dry_run

    exp = BUILTIN[name].experiment
    info = dry_run(apply_overrides(exp, {"train.device": "cpu"}))
    size = exp.input_size()
    classes = {"cifar100": 100, "cifar10": 10, "shapes": 10, "tiny-imagenet": 10}[exp.data.dataset]
    assert info["input_shape"] == [2, 3, size, size] and info["output_shape"] == [2, classes]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


GOOD = 'name = "mine"\ndescription = "ok"\n[data]\ndataset = "shapes"\n[optim]\nlr = 0.1\n'


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("[optim]\nlearning_rate = 0.1\n", "optim.learning_rate", ["unknown key", "lr"]),
        ("[optim]\nlr = -1\n", "optim.lr", ["greater than 0"]),
        ('[schedule]\nname = "warmcos"\n', "schedule.name", ["cosine"]),
        ('colour = "red"\n', "colour", ["unknown key"]),
        ("[reference]\nval_acc = 60.03\n", "reference.val_acc", ["less than or equal to 1"]),
        ("[reference]\nvalacc = 0.6\n", "reference.valacc", ["unknown key", "val_acc"]),
        ('name = "../escape"\n', "name", ["not a safe name"]),
        ('[sweep]\ngrid = { "optim.lr" = [0.1, -1] }\n', "sweep: optim.lr", ["-1", "greater than 0"]),
        ('[sweep]\ngrid = { "optim.lrr" = [0.1] }\n', "sweep: optim.lrr", ["unknown key"]),
        ("[optim\nlr = 1\n", "", ["not valid TOML"]),
    ],
)
def test_a_bad_preset_file_is_a_problem_naming_file_and_field_and_the_rest_load(tmp_path, text, field, words):
    user = tmp_path / "presets"
    bad = write(user / "broken.toml", text)
    write(user / "mine.toml", GOOD)
    presets, problems = load_presets(user)
    names = {p.name for p in presets}
    assert ISSUE_PRESETS <= names and "mine" in names and "broken" not in names
    assert problems and all(pr.source == bad for pr in problems)
    message = " | ".join(pr.message for pr in problems)
    assert message.startswith(field) or f" {field}" in message, message
    for w in words:
        assert w in message, message
    assert "broken.toml" in str(problems[0])
    with pytest.raises(ConfigError) as err:
        get_preset("broken", user)  # asking for it says what is wrong, not "unknown"
    assert "broken.toml" in str(err.value)


def test_the_quick_listing_matches_the_validated_presets(tmp_path):
    """The picker's first frame lists engine.experiment.preset_files' cards; validation then drops bad files."""
    (tmp_path / "mine.toml").write_text('name = "mine"\n[data]\ndataset = "shapes"\n[model]\narch = "alexnet32"\n')
    (tmp_path / "bad.toml").write_text('name = "bad"\n[optim]\nlr = -1\n')
    (tmp_path / "garbled.toml").write_text("name = \n")
    cards = {c.name: c for c in preset_cards(tmp_path)}
    presets, problems = load_presets(tmp_path)
    assert set(cards) == {p.name for p in presets} | {"bad"}  # a file that does not parse is left out
    for p in presets:
        card = cards[p.name]
        assert (card.arch or p.arch, card.dataset or p.dataset, card.user, card.report) == (
            p.arch,
            p.dataset,
            p.user,
            p.report,
        )
        assert card.reference == p.reference and card.experiment is None
    assert cards["mine"].user and (cards["mine"].arch, cards["mine"].dataset) == ("alexnet32", "shapes")
    assert {pr.source.name for pr in problems} == {"bad.toml", "garbled.toml"}


def test_two_presets_with_one_name_are_a_problem(tmp_path):
    write(tmp_path / "a.toml", 'name = "shapes-demo"\n')
    presets, problems = load_presets(tmp_path)
    assert len([p for p in presets if p.name == "shapes-demo"]) == 1 and not [p for p in presets if p.user]
    assert problems and "already the name" in problems[0].message


def test_saved_user_preset_is_listed_as_the_users_and_keeps_the_report(tmp_path):
    user = tmp_path / "runs" / "presets"
    base = get_preset("mobilenet-cifar100-mixup")
    exp = apply_overrides(base.experiment, {"train.epochs": 30, "optim.lr": 0.1})
    path = save_user_preset("my-mixup", exp, description="shorter", based_on=base, user_dir=user)
    assert path == user / "my-mixup.toml"
    presets, problems = load_presets(user)
    assert problems == []
    mine = next(p for p in presets if p.name == "my-mixup")
    assert mine.user and mine.description == "shorter" and mine.based_on == "mobilenet-cifar100-mixup"
    assert mine.experiment == exp and mine.report == base.report and mine.reference == base.reference
    assert get_preset("my-mixup", user).user


@pytest.mark.parametrize("name", ["../evil", "a/b", "", ".hidden", "shapes-demo"])
def test_unsafe_or_builtin_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError):
        save_user_preset(name, Experiment(), user_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UnknownPreset) as err:
        get_preset("no-such")
    assert "shapes-demo" in str(err.value) and "alexnet-tinyimage10" in str(err.value)


def test_experiment_sources_preset_file_plain_toml_and_a_runs_config(tmp_path):
    exp, preset = load_experiment_source("shapes-demo")
    assert preset.name == "shapes-demo" and exp == preset.experiment

    pf = write(tmp_path / "p.toml", GOOD)
    exp, preset = load_experiment_source(str(pf))
    assert preset.name == "mine" and exp.optim.lr == 0.1

    plain = tmp_path / "plain.toml"
    Experiment().save(plain)
    exp, preset = load_experiment_source(str(plain))
    assert preset is None and exp == Experiment()

    folder = RunFolder.create(tmp_path / "runs", BUILTIN["backbone-cifar10"].experiment, "backbone-cifar10")
    exp, preset = load_experiment_source(str(folder.path / "config.toml"))
    assert preset.name == "backbone-cifar10" and exp == BUILTIN["backbone-cifar10"].experiment

    with pytest.raises(FileNotFoundError):
        load_experiment_source(str(tmp_path / "absent.toml"))
    bad = write(tmp_path / "bad.toml", "[optim]\nlr = 0\n")
    with pytest.raises(ConfigError) as err:
        load_experiment_source(str(bad))
    assert err.value.problems[0][0] == "optim.lr" and "bad.toml" in str(err.value)


def test_presets_are_read_from_the_installed_package_without_torch(tmp_path):
    """A copy of the packages elsewhere (as a non-editable install leaves them) finds its presets."""
    site = tmp_path / "site"
    for pkg in ("engine", "presets"):
        shutil.copytree(ROOT / pkg, site / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    code = (
        "import sys; from engine.experiment.presets import load_presets; ps, probs = load_presets(); "
        "import engine.sweeps.folder, engine.insight.show, engine.evaluation.evaluate; "
        "print(len(ps), len(probs), ps[0].source.parent.parent == __import__('pathlib').Path(sys.argv[1]), "
        "'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(site)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(len(BUILTIN)), "0", "True", "False"]


def test_tinyimage10_splits_its_first_ten_classes_08_01_01(tmp_path):
    """Report 002's data on a Tiny ImageNet fixture in the real layout: 10 of 12 classes, 0.8 / 0.1 / 0.1."""
    from engine.data.splits import load_splits
    from tests.dataset_files import write_tiny_imagenet

    written = write_tiny_imagenet(tmp_path / "data", classes=12, per_class=10, val_per_class=1)
    exp = apply_overrides(
        BUILTIN["alexnet-tinyimage10"].experiment, {"data.root": str(tmp_path / "data"), "data.cache": False}
    )
    splits = load_splits(exp.data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (80, 10, 10)
    assert splits.class_names == [written.names[w] for w in written.sorted_wnids()[:10]]
    assert splits.train.images.shape[1:] == (3, 64, 64) and splits.mean == (0.485, 0.456, 0.406)


# --- hostile preset files ------------------------------------------------------------------------------

HOSTILE_PRESET = """\ufeffname = "hostile"
description = "see [/docs] and [bold]"
report = "[/red]_x.txt"
[reference]
epochs = inf
test_acc = nan
val_acc = 0.5
[model]
arch = "[/model]"
[data]
dataset = "[/data]"
"""


def test_a_hostile_preset_file_is_a_problem_and_the_others_still_list(tmp_path, capsys):
    from engine.cli import main
    from engine.experiment.preset_files import preset_cards

    user = tmp_path / "runs" / "presets"
    user.mkdir(parents=True)
    (user / "hostile.toml").write_text(HOSTILE_PRESET, encoding="utf-8")
    (user / "binary.toml").write_bytes(bytes(range(256)))
    (user / "folder.toml").mkdir()
    card = next(c for c in preset_cards(user) if c.name == "hostile")
    assert card.reference.epochs is None and card.reference.test_acc is None and card.reference.val_acc == 0.5
    assert main(["presets", "--runs-dir", str(tmp_path / "runs")]) == 0
    out, err = capsys.readouterr()
    assert "shapes-demo" in out and "Traceback" not in err
    assert "hostile.toml" in err and "binary.toml" in err and "folder.toml" in err


async def test_the_picker_starts_over_a_hostile_preset_file(tmp_path):
    from textual.widgets import DataTable

    from tests.console import RecordingApp, wait_until

    user = tmp_path / "runs" / "presets"
    user.mkdir(parents=True)
    (user / "hostile.toml").write_text(HOSTILE_PRESET, encoding="utf-8")
    app = RecordingApp(tmp_path / "runs", user_presets_dir=user)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: table.row_count > 3 and app.screen.problems, what="presets validated")
        assert "hostile" not in [p.name for p in app.screen.shown]  # it does not validate: a problem
        assert any(p.source.name == "hostile.toml" for p in app.screen.problems)
        assert app.is_running
