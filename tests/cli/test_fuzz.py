"""Hostile input, generated: `--set` values, TOML documents, preset files, sweep folders and damaged
run-folder files (status, metrics, config, summary, checkpoints).

Whatever arrives, a command exits 0, 1 or 2 with a message (never a traceback, never an "internal
error", never a bare Python error text), and a damaged run never hides the good runs beside it.
Every failure the reliability test found is an `@example`, so each runs on every CI run. The number
of generated examples is bounded so CI stays quick (derandomized: the same cases each run); raise
CNNLAB_FUZZ_EXAMPLES to search longer, e.g. CNNLAB_FUZZ_EXAMPLES=2000 pytest tests/cli/test_fuzz.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import string
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.experiment.config import Experiment
from engine.experiment.errors import ConfigError
from engine.experiment.overrides import all_keys, apply_overrides, parse_value
from engine.runfolder.folder import RunFolder
from engine.runfolder.table import list_runs
from tests.tiny import tiny_experiment

EXAMPLES = int(os.environ.get("CNNLAB_FUZZ_EXAMPLES", "40"))
KEYS = [key for key, _ in all_keys()]
# What a user must never read: Python's own words for a bug, which mean an error escaped its message.
PYTHON_WORDS = (
    "Traceback",
    "internal error",
    "object has no attribute",
    "not subscriptable",
    "unhashable type",
    "unsupported operand",
    "invalid literal for int",
    "NoneType",
    "takes no keyword",
    "is not iterable",
    "MarkupError",
)


def fuzz(share: float = 1.0):
    return settings(
        max_examples=max(4, int(EXAMPLES * share)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, 1, 2), (argv, code, out, err)
    for words in PYTHON_WORDS:
        assert words not in out + err, (argv, out + err)
    return code, out + err


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["[/bold]", "[red]x", "running", "finished", "1e999", "\x00", "../../etc/passwd"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
value_texts = st.one_of(
    st.text(alphabet=string.printable, max_size=30),
    st.sampled_from(
        ["inf", "-inf", "nan", "1e999", "1e300", "true", "false", "18446744073709551616", "[[[1]]]", "{a=1}", '"x"', ""]
    ),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)

# --- --set values ---------------------------------------------------------------------------------


@fuzz()
@given(key=st.sampled_from(KEYS) | st.text(max_size=12), text=value_texts)
@example(key="data.val_split", text="inf")
@example(key="data.val_split", text="1e300")
@example(key="data.split_seed", text="18446744073709551616")
@example(key="schedule.min_lr", text="inf")
@example(key="schedule.min_lr", text="11")
@example(key="optim.lr", text="true")
@example(key="model.backbone_k", text="[" * 3000 + "]" * 3000)
def test_a_set_value_validates_or_names_its_field(key, text):
    try:
        exp = apply_overrides(Experiment(), {key: parse_value(text)})
    except ConfigError as err:
        assert err.problems and all(isinstance(loc, str) and msg for loc, msg in err.problems)
    except ValueError as err:  # parse_value: nested too deeply
        assert "nested too deeply" in str(err)
    else:
        Experiment.model_validate(exp.model_dump(mode="json"))  # what validates stays valid when written


@fuzz(0.25)
@given(key=st.sampled_from(KEYS), text=value_texts)
@example(key="data.val_split", text="inf")
@example(key="model.backbone_channels", text="[" * 3000 + "]" * 3000)
def test_run_dry_run_with_any_set_exits_cleanly(key, text, capsys, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run_cli(["run", "shapes-demo", "--dry-run", "--runs-dir", str(runs), "--set", f"{key}={text}"], capsys)


# --- TOML documents: experiments and presets ------------------------------------------------------

SECTION_NAMES = ["data", "model", "optim", "schedule", "train", "augment", "x", "run", "reference", "sweep"]
sections = st.dictionaries(
    st.sampled_from(SECTION_NAMES), st.dictionaries(st.text(max_size=10), json_values, max_size=5), max_size=4
)


def _toml(doc) -> str:
    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError):
        return str(doc)


toml_texts = st.one_of(
    sections.map(_toml),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["\ufeff[optim]\nlr = 0.05\n", "[model]\nbackbone_k = " + "[" * 3000 + "]" * 3000, "[data\n"]),
)


@fuzz(0.25)
@given(text=toml_texts)
@example(text="[model]\nbackbone_k = " + "[" * 3000 + "]" * 3000 + "\n")
@example(text="\ufeff[optim]\nlr = 0.05\n")
@example(text="[data]\n" + "".join(f"k{i} = 1\n" for i in range(20000)))
def test_any_toml_file_exits_cleanly(text, capsys, tmp_path_factory):
    folder = tmp_path_factory.mktemp("toml")
    path = folder / "exp.toml"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    run_cli(["run", str(path), "--dry-run", "--runs-dir", str(folder / "runs")], capsys)


@fuzz(0.25)
@given(text=toml_texts | st.sampled_from(['name = "mine"\ndescription = "see [/docs]"\n']))
@example(text='name = "mine"\ndescription = "see [/docs]"\n')
@example(text=b"\xff\xfe".decode("latin-1"))
def test_a_hostile_preset_file_leaves_the_others_listed(text, capsys, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    (runs / "presets").mkdir()
    (runs / "presets" / "mine.toml").write_text(text, encoding="utf-8", errors="surrogateescape")
    code, said = run_cli(["presets", "--runs-dir", str(runs)], capsys)
    assert code == 0 and "shapes-demo" in said
    run_cli(["run", "mine", "--dry-run", "--runs-dir", str(runs)], capsys)


# --- run-folder files -------------------------------------------------------------------------------


def finished_run(runs: Path, name: str) -> RunFolder:
    folder = RunFolder.create(runs, tiny_experiment(**{"train.epochs": 2}), preset="shapes-demo", name=name)
    for epoch in (1, 2):
        row = {"epoch": epoch, "train_loss": 1.0 / epoch, "train_acc": 0.5, "val_loss": 1.1}
        folder.append_metrics({**row, "val_acc": 0.4 + epoch / 10, "lr": 0.01, "seconds": 1.0, "images_per_sec": 1.0})
    confusion = [[3, 1], [0, 4]]
    folder.write_summary(
        {
            "best_val_acc": 0.6,
            "best_epoch": 2,
            "test_acc": 0.875,
            "epochs_done": 2,
            "class_names": ["a", "b"],
            "per_class_acc": [0.75, 1.0],
            "confusion": confusion,
            "examples": [{"png": "aGVsbG8=", "true": "a", "pred": "b", "correct": False}],
            "test_checkpoint": "best",
        }
    )
    folder.write_status("finished")
    return folder


FILES = ["status.json", "metrics.jsonl", "config.toml", "summary.json"]
contents = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.sampled_from(
        [
            b"",
            b"[]",
            b'{"state": "running", "pid": "x"}',
            b'{"epoch": 1e999}\n',
            b'{"state": 7}',
            b'{"epoch": 1, "val_acc": "high"}\n',
            b"\xef\xbb\xbf[run]\n",
            b"DIR",
        ]
    ),
)


MUTATED_KEYS = ["state", "pid", "host", "beat", "epoch", "val_acc", "confusion", "class_names", "progress"]


def _mutate(name: str, good: bytes, key: str, value) -> bytes:
    """The good file with one key's value replaced: damage cnnlab's own shape, not just noise."""
    if name == "config.toml":
        return f"[train]\nepochs = {json.dumps(value)}\n[run]\n{key} = 1\n".encode()
    if name == "metrics.jsonl":
        row = json.loads(good.splitlines()[0])
        return (json.dumps({**row, key: value}, allow_nan=True) + "\n").encode() + good
    doc = json.loads(good)
    doc[key if key in doc else next(iter(doc), key)] = value
    return json.dumps(doc, allow_nan=True).encode()


@fuzz()
@given(
    name=st.sampled_from(FILES),
    content=contents,
    cut=st.integers(min_value=0, max_value=400),
    mutate=st.none() | st.tuples(st.sampled_from(MUTATED_KEYS), json_values),
)
@pytest.mark.slow
@example(name="status.json", content=bytes(range(256)), cut=400, mutate=None)
@example(name="status.json", content=b"[1, 2]", cut=400, mutate=None)
@example(name="status.json", content=b'{"state": "running", "pid": "1234"}', cut=400, mutate=None)
@example(name="status.json", content=b"DIR", cut=400, mutate=None)
@example(name="metrics.jsonl", content=b'{"epoch": 1e999}\n', cut=400, mutate=None)
@example(name="summary.json", content=b"", cut=400, mutate=("confusion", [[1, 2]]))
@example(name="config.toml", content=b"[train\n", cut=400, mutate=None)
@example(name="metrics.jsonl", content=b"null", cut=4, mutate=None)  # found by this test: "holds a NoneType"
def test_a_damaged_run_never_hides_the_good_ones(name, content, cut, mutate, capsys, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    good = finished_run(runs, "good")
    bad = finished_run(runs, "bad")
    target = bad.path / name
    if mutate is not None:
        target.write_bytes(_mutate(name, target.read_bytes(), *mutate))
    elif content == b"DIR":
        target.unlink()
        target.mkdir()
    else:
        target.write_bytes(content[:cut])
    listed = {r.id: r for r in list_runs(runs)}
    assert good.id in listed and bad.id in listed
    assert listed[good.id].state == "finished" and listed[good.id].problems == []
    code, said = run_cli(["runs", "--runs-dir", str(runs)], capsys)
    assert code == 0 and good.id in said
    run_cli(["show", str(bad.path)], capsys)
    assert run_cli(["show", str(good.path)], capsys)[0] == 0


# --- sweep folders ----------------------------------------------------------------------------------

sweep_docs = st.fixed_dictionaries(
    {},
    optional={
        "sweep": json_values | st.fixed_dictionaries({"metric": json_values, "varied": json_values}),
        "trials": json_values | st.lists(st.fixed_dictionaries({"index": json_values, "overrides": json_values})),
        "experiment": json_values | st.just({"train": {"epochs": 2}}),
    },
)


@fuzz(0.5)
@given(doc=sweep_docs.map(_toml) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
@example(doc='sweep = "x"\n')
@example(doc="trials = [1, 2]\n")
@example(doc='[sweep]\nvaried = "lr"\n[[trials]]\nindex = 1\noverrides = 3\n')
def test_a_damaged_sweep_folder_exits_cleanly_and_hides_nothing(doc, capsys, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    good = finished_run(runs, "good")
    sweep = runs / "20250101-000000-sweep-x-0001"
    sweep.mkdir()
    (sweep / "sweep.toml").write_text(doc, encoding="utf-8", errors="surrogateescape")
    trial = finished_run(sweep, "trial-001")
    listed = {r.id for r in list_runs(runs)}
    assert good.id in listed and trial.id in listed
    run_cli(["show", str(sweep)], capsys)
    run_cli(["runs", "--runs-dir", str(runs)], capsys)


# --- checkpoints ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """A real run, 1 of 2 epochs done and stopped: last.pt and best.pt hold epoch 1."""
    from engine.events import EpochFinished, RunHandle
    from engine.training.trainer import run_experiment

    handle = RunHandle()

    def stop_after_one(event):
        if isinstance(event, EpochFinished):
            handle.stop()

    exp = tiny_experiment(**{"train.epochs": 2, "data.train_subset": 256, "data.test_split": 0.25})
    result = run_experiment(exp, runs_dir=tmp_path_factory.mktemp("runs"), listener=stop_after_one, handle=handle)
    assert result.state == "stopped"
    return result.folder.path


def _torch_bytes(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cnnlab-fuzz-exploit-ran",))


checkpoint_bytes = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(["cut", "exploit", "not-a-dict", "wrong-keys", "wrong-types"]),
)


@fuzz(0.2)
@given(which=st.sampled_from(["last.pt", "best.pt"]), damage=checkpoint_bytes, cut=st.integers(0, 10**6))
@example(which="last.pt", damage="cut", cut=1000)
@example(which="last.pt", damage="exploit", cut=0)
@example(which="best.pt", damage="wrong-types", cut=0)
@example(which="last.pt", damage="wrong-keys", cut=0)  # found by this test: KeyError 'epoch' in the resume
def test_a_damaged_checkpoint_is_refused_and_runs_nothing(which, damage, cut, stopped_run, capsys, tmp_path_factory):
    import pickle

    Path("/tmp/cnnlab-fuzz-exploit-ran").unlink(missing_ok=True)
    run = tmp_path_factory.mktemp("runs") / stopped_run.name
    shutil.copytree(stopped_run, run)
    target = run / "checkpoints" / which
    real = target.read_bytes()
    if damage == "cut":
        data = real[: cut % len(real)]
    elif damage == "exploit":
        data = pickle.dumps({"model": _Exploit()})
    elif damage == "not-a-dict":
        data = _torch_bytes([1, 2, 3])
    elif damage == "wrong-keys":
        data = _torch_bytes({"weights": 1})
    elif damage == "wrong-types":
        data = _torch_bytes({"model": 3, "optimizer": "x", "scheduler": [], "epoch": "1", "rng": None})
    else:
        data = damage
    target.write_bytes(data)
    command = ["resume", str(run)] if which == "last.pt" else ["show", str(run), "--checkpoint", "best"]
    code, said = run_cli(command, capsys)
    assert not Path("/tmp/cnnlab-fuzz-exploit-ran").exists()
    if data != real:
        assert code == 2 and which in said, said
