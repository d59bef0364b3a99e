"""Presets: named, validated experiments that replicate a report, with the report's own numbers.

A preset is a TOML file: top-level `name`, `description`, `report` (the report's file name),
`notes` (every choice the report left open), a `[reference]` table (the report's figures, accuracies
as fractions, and the `epochs` they were measured at), an optional `[sweep]` table (a grid or a
random search over some fields), and the experiment's sections ([data], [augment], [model], [optim],
[schedule], [train]) checked by engine.experiment.config.

Built-in presets ship inside the `presets` package (found through importlib.resources, so a
non-editable install works); the user's own live in `<runs>/presets/`. A file that does not read or
validate becomes a PresetProblem naming the file and the field; the other presets still load.

No torch here: `cnnlab presets` and the console's first screen stay fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.experiment import toml_files
from engine.experiment.config import Experiment, validate_experiment
from engine.experiment.errors import ConfigError, describe_errors
from engine.experiment.preset_files import REFERENCE_KEYS, Reference, preset_files
from engine.experiment.sweep_plan import METRICS, plan_trials
from engine.files import atomic_write_text, safe_name

SECTIONS = tuple(Experiment.model_fields)  # data, augment, model, optim, schedule, train


class RandomRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    low: float
    high: float
    log: bool = False


class SweepSpec(BaseModel):
    """A preset's `[sweep]` table: the study the report ran around this recipe."""

    model_config = ConfigDict(extra="forbid")

    grid: dict[str, list[Any]] = {}
    random: dict[str, RandomRange] = {}
    trials: int | None = Field(None, ge=1, le=10000)
    metric: Literal[METRICS] = "val_acc"  # type: ignore[valid-type]
    seed: int = Field(0, ge=0)

    @property
    def varied(self) -> list[str]:
        """The fields the sweep varies, grid first."""
        return [*self.grid, *self.random]

    def ranges(self) -> dict[str, dict[str, Any]]:
        """The random search as engine.experiment.sweep_plan.plan_trials takes it."""
        return {key: r.model_dump() for key, r in self.random.items()}


class PresetMeta(BaseModel):
    """Everything in a preset file besides the experiment sections."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    report: str = ""
    notes: list[str] = []
    based_on: str = ""
    reference: Reference | None = None
    sweep: SweepSpec | None = None

    @field_validator("name")
    @classmethod
    def _safe(cls, v: str) -> str:
        return safe_name(v)


@dataclass
class Preset:
    name: str
    description: str
    report: str
    notes: list[str]
    experiment: Experiment
    source: Path
    user: bool
    reference: Reference | None = None  # None: the file has no [reference] table
    sweep: SweepSpec | None = None
    based_on: str = ""

    # What the picker lists, as engine.experiment.preset_files.PresetCard has it before validation.
    @property
    def arch(self) -> str:
        return self.experiment.model.arch

    @property
    def dataset(self) -> str:
        return self.experiment.data.dataset

    @property
    def varied(self) -> list[str]:
        return self.sweep.varied if self.sweep is not None else []


@dataclass
class PresetProblem:
    source: Path
    message: str  # starts with the field it is about, e.g. "optim.lr: Input should be greater than 0"

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


class UnknownPreset(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown preset"


# --- reading ---------------------------------------------------------------------------------------


def parse_preset(text: str, source: Path, *, user: bool = False) -> Preset:
    """One preset file's text into a Preset; ConfigError (naming the fields) when it does not validate."""
    try:
        doc = toml_files.loads(text, source)
    except toml_files.TomlError as err:
        raise ConfigError([("", err.problem)], str(source)) from None
    return preset_from_doc(doc, source, user=user)


def preset_from_doc(doc: dict[str, Any], source: Path, *, user: bool = False) -> Preset:
    """A preset file's document into a Preset; ConfigError (naming the fields) when it does not validate."""
    doc = {"name": source.stem, **doc}
    meta_doc = {k: v for k, v in doc.items() if k not in SECTIONS}
    exp_doc = {k: v for k, v in doc.items() if k in SECTIONS}
    problems: list[tuple[str, str]] = []
    meta = exp = None
    try:
        meta = PresetMeta.model_validate(meta_doc)
    except ValidationError as err:
        problems += [_meta_problem(loc, msg) for loc, msg in describe_errors(err, PresetMeta)]
    try:
        exp = validate_experiment(exp_doc)
    except ConfigError as err:
        problems += err.problems
    if meta is not None and exp is not None and meta.sweep is not None:
        problems += _sweep_problems(meta.sweep, exp)
    if problems or meta is None or exp is None:
        raise ConfigError(problems, str(source))
    return Preset(
        name=meta.name,
        description=meta.description,
        report=meta.report,
        notes=list(meta.notes),
        experiment=exp,
        source=source,
        user=user,
        reference=meta.reference,
        sweep=meta.sweep,
        based_on=meta.based_on,
    )


def _meta_problem(loc: str, msg: str) -> tuple[str, str]:
    if msg.startswith("unknown key"):
        parent = loc.rsplit(".", 1)[0] if "." in loc else ""
        if parent == "reference":
            msg = "unknown key; known keys: " + ", ".join(REFERENCE_KEYS)
        elif parent == "sweep":
            msg = "unknown key; known keys: " + ", ".join(SweepSpec.model_fields)
        elif parent.startswith("sweep.random."):
            msg = "unknown key; a random range holds " + ", ".join(RandomRange.model_fields)
        elif not parent:
            held, sections = ", ".join(PresetMeta.model_fields), ", ".join(SECTIONS)
            msg = f"unknown key; a preset holds {held} and the sections {sections}"
    return loc, msg


def _sweep_problems(spec: SweepSpec, exp: Experiment) -> list[tuple[str, str]]:
    try:
        plan_trials(exp, grid=spec.grid, random=spec.ranges(), trials=spec.trials, seed=spec.seed)
    except ConfigError as err:
        return [(f"sweep: {loc}" if loc else "sweep", msg) for loc, msg in err.problems]
    return []


def load_presets(user_dir: Path | None = None) -> tuple[list[Preset], list[PresetProblem]]:
    """Built-in presets (by name), then the user's own (by name). A bad file is a problem; the rest still load."""
    presets: list[Preset] = []
    problems: list[PresetProblem] = []
    seen: dict[str, Path] = {}

    def add(text: str, source: Path, user: bool) -> None:
        try:
            p = parse_preset(text, source, user=user)
        except ConfigError as err:
            problems.extend(PresetProblem(source, f"{loc}: {msg}" if loc else msg) for loc, msg in err.problems)
            return
        if p.name in seen:
            why = f"name: {p.name!r} is already the name of {seen[p.name]}; rename one of them"
            problems.append(PresetProblem(source, why))
            return
        seen[p.name] = source
        presets.append(p)

    for f in preset_files(user_dir):
        if f.text is None:
            problems.append(PresetProblem(f.path, f"cannot read: {f.error}"))
        else:
            add(f.text, f.path, f.user)
    return presets, problems


def get_preset(name: str, user_dir: Path | None = None) -> Preset:
    presets, problems = load_presets(user_dir)
    for p in presets:
        if p.name == name:
            return p
    # A preset whose file is broken: say what is wrong with it rather than "unknown".
    broken = [pr for pr in problems if pr.source.stem == name]
    if broken:
        raise ConfigError([_split_problem(pr.message) for pr in broken], str(broken[0].source))
    known = ", ".join(p.name for p in presets)
    raise UnknownPreset(f"no preset named {name!r}; known presets: {known} (or give a path to a .toml file)")


def find_preset(name: str | None, user_dir: Path | None = None) -> Preset | None:
    """The preset a run came from, or None when it is gone or no longer validates.

    For views of a run (its reference numbers, its notes): a renamed or broken preset must not
    stop the run from opening.
    """
    if not name:
        return None
    try:
        return get_preset(name, user_dir)
    except (UnknownPreset, ConfigError):
        return None


def _split_problem(message: str) -> tuple[str, str]:
    loc, sep, msg = message.partition(": ")
    return (loc, msg) if sep and " " not in loc else ("", message)


def load_experiment_source(name_or_path: str, user_dir: Path | None = None) -> tuple[Experiment, Preset | None]:
    """A preset name, or a TOML file: a preset file, a plain experiment, or a run's config.toml."""
    looks_like_path = name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path
    if not looks_like_path:
        p = get_preset(name_or_path, user_dir)
        return p.experiment, p
    path = Path(name_or_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (give a preset name or a path to a .toml experiment)")
    try:
        doc = toml_files.read(path)
    except toml_files.TomlError as err:
        raise ConfigError([("", err.problem)], str(path)) from None
    if set(doc) & {"name", "description", "report", "notes", "reference", "sweep", "based_on"}:
        p = preset_from_doc(doc, path, user=False)
        return p.experiment, p
    run_meta = doc.pop("run", None)  # a run folder's config.toml: [run] says which preset it came from
    exp = validate_experiment(doc, str(path))
    preset = None
    if isinstance(run_meta, dict) and run_meta.get("preset"):
        try:
            preset = get_preset(str(run_meta["preset"]), user_dir)
        except (UnknownPreset, ConfigError):
            preset = None
    return exp, preset


# --- writing ---------------------------------------------------------------------------------------


def preset_toml(
    name: str,
    exp: Experiment,
    *,
    description: str = "",
    report: str = "",
    notes: list[str] | None = None,
    reference: Reference | None = None,
    based_on: str = "",
) -> str:
    doc: dict[str, Any] = {"name": name, "description": description, "report": report, "notes": list(notes or [])}
    if based_on:
        doc["based_on"] = based_on
    if reference is not None:
        doc["reference"] = {k: v for k, v in dataclasses.asdict(reference).items() if v is not None and v != ""}
    doc.update(exp.model_dump(mode="json", exclude_none=True))
    return tomli_w.dumps(doc)


def save_user_preset(
    name: str, exp: Experiment, *, description: str = "", based_on: Preset | None = None, user_dir: Path
) -> Path:
    """Write `<user_dir>/<name>.toml`. It keeps the original's report and reference numbers, so a run of
    the edited recipe is still shown beside the report it came from."""
    safe_name(name)
    builtin = {p.name for p in load_presets(None)[0]}
    if name in builtin:
        raise ValueError(f"{name!r} is a built-in preset; choose another name for yours")
    user_dir = Path(user_dir)
    user_dir.mkdir(parents=True, exist_ok=True)
    text = preset_toml(
        name,
        exp,
        description=description or (f"{based_on.description} (edited)" if based_on else "my preset"),
        report=based_on.report if based_on else "",
        notes=based_on.notes if based_on else [],
        reference=based_on.reference if based_on else None,
        based_on=based_on.name if based_on else "",
    )
    path = user_dir / f"{name}.toml"
    parse_preset(text, path, user=True)  # never write a file that would not load back
    atomic_write_text(path, text)
    return path
