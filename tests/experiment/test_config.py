"""The config is the single source of truth: ranges, choices, cross-field rules, TOML round trip."""

import pytest

from engine.experiment.config import Experiment, validate_experiment
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import apply_overrides, parse_value


def problems(data):
    with pytest.raises(ConfigError) as err:
        validate_experiment(data)
    return dict(err.value.problems)


def test_defaults_validate_and_round_trip_through_toml(tmp_path):
    exp = apply_overrides(Experiment(), {"optim.lr": 0.05, "schedule.name": "multistep", "schedule.milestones": [3, 6]})
    exp.save(tmp_path / "e.toml")
    again = Experiment.load(tmp_path / "e.toml")
    assert again == exp
    assert again.schedule.milestones == [3, 6]


def test_range_errors_name_the_field():
    p = problems({"optim": {"lr": 0, "momentum": 1.0}})
    assert set(p) == {"optim.lr", "optim.momentum"}
    assert "greater than 0" in p["optim.lr"]
    assert "less than 1" in p["optim.momentum"]


def test_unknown_key_is_an_error_that_lists_the_known_ones():
    p = problems({"optim": {"learning_rate": 0.1}})
    assert "unknown key" in p["optim.learning_rate"]
    assert "lr" in p["optim.learning_rate"]


def test_choice_error_lists_the_choices():
    p = problems({"schedule": {"name": "warmcosine"}})
    assert "cosine" in p["schedule.name"] and "onecycle" in p["schedule.name"]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"schedule": {"name": "onecycle"}}, "schedule.max_lr"),
        ({"schedule": {"name": "plateau"}, "data": {"val_split": 0}}, "data.val_split"),
        ({"schedule": {"name": "multistep"}}, "schedule.milestones"),
        ({"train": {"epochs": 5, "phases": [{"epochs": 1, "train": "head", "lr": 0.1}]}}, "train.epochs"),
        ({"model": {"arch": "alexnet64"}}, "data.image_size"),
        ({"data": {"dataset": "cifar10", "classes": 11}}, "data.classes"),
        ({"data": {"val_split": 10.5}}, "data.val_split"),
    ],
)
def test_cross_field_rules_name_the_field(data, field):
    assert field in problems(data)


def test_override_rejects_unknown_key_and_parses_values():
    with pytest.raises(ConfigError) as err:
        apply_overrides(Experiment(), {"optim.nope": 1})
    assert "optim.nope" in str(err.value)
    assert parse_value("0.1") == 0.1 and parse_value("[1, 2]") == [1, 2] and parse_value("true") is True
    assert parse_value("cosine") == "cosine"


def test_the_registries_are_the_choices():
    from typing import get_args

    from engine.experiment.config import ARCHS, DATASETS, DataConfig, ModelConfig

    # model.arch is a string (a library's model or the user's file too); the built-ins are its titled options
    titles = ModelConfig.model_fields["arch"].json_schema_extra["option_titles"]
    assert list(titles) == list(ARCHS) and all(ModelConfig(arch=a).arch == a for a in ARCHS)
    assert get_args(DataConfig.model_fields["dataset"].annotation) == tuple(DATASETS)


def test_the_input_size_rule_has_one_wording():
    from engine.experiment.config import input_size_problem

    words = "alexnet64 takes 64x64 images but the data gives 32x32; set data.image_size = 64"
    assert input_size_problem("alexnet64", 32) == words
    assert input_size_problem("alexnet64", 64) is None and input_size_problem("resnet50", 32) is None
    assert input_size_problem("simplecnn", None) is None  # a folder dataset's size is known once it is read
    assert problems({"model": {"arch": "alexnet64"}})["data.image_size"] == input_size_problem("alexnet64", 32)


def test_phases_leave_optim_lr_unused():
    from engine.experiment.config import unused_fields

    phased = {"train": {"epochs": 3, "phases": [{"epochs": 1, "train": "head", "lr": 1e-3}, {"epochs": 2, "lr": 1e-4}]}}
    assert unused_fields(validate_experiment(phased)) == {"optim.lr": "not used: the phases set their own lr"}
    assert unused_fields(Experiment()) == {}


def test_cnnlab_run_warns_that_a_set_lr_is_unused_under_phases(capsys):
    from engine.cli import main

    phases = ["--set", "train.epochs=2", "--set", "train.phases=[{epochs = 2, lr = 0.001}]"]
    phases += ["--set", "train.device=cpu"]
    assert main(["run", "shapes-demo", *phases, "--set", "optim.lr=0.5", "--dry-run"]) == 0
    assert "warning: --set optim.lr: not used: the phases set their own lr" in capsys.readouterr().err
    assert main(["run", "shapes-demo", "--set", "optim.lr=0.5", "--set", "train.device=cpu", "--dry-run"]) == 0
    assert "not used" not in capsys.readouterr().err


# --- bad values refused when given, not an epoch in --------------------------------------------------


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("data.val_split", float("inf"), "finite number"),
        ("data.val_split", float("nan"), "finite number"),
        ("data.val_split", 1e300, "less than or equal to 100000000"),
        ("data.val_split", 6000, "leave none of the 6000 training images"),
        ("data.split_seed", 2**64, "less than or equal to 4294967295"),
        ("schedule.min_lr", float("inf"), "finite number"),
        ("schedule.min_lr", 11.0, "less than or equal to 10"),
        ("optim.lr", True, "a number, not true or false"),
        ("train.epochs", False, "a number, not true or false"),
        ("model.backbone_k", [True, 3], "a number, not true or false"),
        ("augment.rotation", float("-inf"), "finite number"),
    ],
)
def test_values_that_would_fail_at_run_time_are_refused_naming_the_field(key, value, words):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Experiment(), {key: value})
    found = dict(err.value.problems)
    assert key in found and words in found[key], found


def test_the_largest_split_seed_is_one_torch_takes():
    import torch

    top = Experiment.model_fields["data"].annotation.model_fields["split_seed"].metadata
    largest = next(m.le for m in top if hasattr(m, "le"))
    torch.Generator().manual_seed(largest)
    assert apply_overrides(Experiment(), {"data.split_seed": largest}).data.split_seed == largest


def test_a_min_lr_above_the_lr_is_refused_where_the_schedule_uses_it():
    with pytest.raises(ConfigError) as err:
        apply_overrides(Experiment(), {"schedule.name": "cosine", "optim.lr": 0.01, "schedule.min_lr": 0.1})
    assert "schedule.min_lr" in dict(err.value.problems)
    # The constant schedule never reads it.
    apply_overrides(Experiment(), {"schedule.name": "constant", "optim.lr": 0.01, "schedule.min_lr": 0.1})


def test_a_value_nested_too_deeply_is_a_message_not_a_recursion_error():
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_value("[" * 3000 + "]" * 3000)


def test_a_toml_file_with_a_bom_reads_and_a_deep_one_is_named(tmp_path):
    path = tmp_path / "e.toml"
    path.write_bytes(b"\xef\xbb\xbf[optim]\nlr = 0.05\n")
    assert Experiment.load(path).optim.lr == 0.05
    path.write_text("[model]\nbackbone_k = " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError) as err:
        Experiment.load(path)
    assert err.value.source == str(path) and "nested too deeply" in str(err.value)


def test_a_million_problems_are_summarised():
    err = ConfigError([(f"data.k{i}", "unknown key") for i in range(100_000)], "big.toml")
    assert len(str(err)) < 500 and "99990 more problems" in str(err)
