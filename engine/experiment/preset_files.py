"""Preset files: where they are, the one walk over them, and a quick look before validation.

Validating a preset needs pydantic and the Experiment model, which take a few hundred milliseconds
to import on a small machine. The console's first screen lists the presets from this quick look
(plain TOML, no pydantic) and validates them right after, on a thread (engine.experiment.presets); a file that
does not validate then leaves the list with a message naming its field. Both read the files through
`preset_files`, so they see the same files in the same order.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Le

from engine.experiment import toml_files

Fraction = Annotated[float, Ge(0.0), Le(1.0)]
Loss = Annotated[float, Ge(0.0)]
FIGURES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


@dataclass(frozen=True)
class Reference:
    """A preset's `[reference]` table: the report's figures for the recipe (accuracies as fractions,
    0.6069 not 60.69) and the `epochs` they were measured at. engine.experiment.presets validates it (pydantic
    reads these annotations); the quick look builds it from the numbers it finds."""

    __pydantic_config__ = {"extra": "forbid"}  # a misspelt figure is an error naming it

    epochs: Annotated[int, Ge(1)] | None = None
    train_loss: Loss | None = None
    train_acc: Fraction | None = None
    val_loss: Loss | None = None
    val_acc: Fraction | None = None
    test_loss: Loss | None = None
    test_acc: Fraction | None = None
    note: str = ""

    def figures(self) -> dict[str, float]:
        """The figures the report gives, by metric name ("val_acc": 0.6003), in FIGURES order."""
        return {k: getattr(self, k) for k in FIGURES if getattr(self, k) is not None}


REFERENCE_KEYS = tuple(f.name for f in dataclasses.fields(Reference))


@dataclass(frozen=True)
class PresetFile:
    """One preset file as read from disk: its text, or why it does not read."""

    path: Path
    user: bool
    text: str | None
    error: str = ""


def builtin_sources() -> list[tuple[str, str]]:
    """(file name, text) of every built-in preset, from the installed `presets` package."""
    out = []
    for entry in resources.files("presets").iterdir():
        if entry.name.endswith(".toml") and entry.is_file():
            out.append((entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def builtin_path(filename: str) -> Path:
    return Path(str(resources.files("presets").joinpath(filename)))


def user_files(user_dir: Path | None) -> list[Path]:
    """The user's own preset files, by name."""
    if user_dir is None or not Path(user_dir).is_dir():
        return []
    return sorted(Path(user_dir).glob("*.toml"))


def preset_files(user_dir: Path | None = None) -> list[PresetFile]:
    """Every preset file: the built-in ones by file name, then the user's own by name."""
    files = [PresetFile(builtin_path(name), False, text) for name, text in builtin_sources()]
    for path in user_files(user_dir):
        try:
            if path.stat().st_size > toml_files.MAX_BYTES:
                raise ValueError(f"{path.stat().st_size / 1e6:.1f} MB, far larger than any preset")
            files.append(PresetFile(path, True, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            files.append(PresetFile(path, True, None, "not UTF-8 text: not a TOML file"))
        except (OSError, ValueError) as err:
            files.append(PresetFile(path, True, None, str(err)))
    return files


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class PresetCard:
    """What the picker shows of a preset before it is validated; `experiment` is None until then."""

    name: str
    description: str
    report: str
    notes: list[str]
    reference: Reference | None
    source: Path
    user: bool
    arch: str
    dataset: str
    varied: list[str] = field(default_factory=list)  # the fields its [sweep] varies
    experiment: None = field(default=None, repr=False)


def _card(text: str, source: Path, user: bool) -> PresetCard | None:
    try:
        doc = toml_files.loads(text, source)
    except toml_files.TomlError:
        return None  # validation reports it, naming the file

    def table(key: str, within: dict[str, Any] = doc) -> dict[str, Any]:
        value = within.get(key)
        return value if isinstance(value, dict) else {}

    reference = None
    if "reference" in doc:
        numbers = {k: v for k, v in table("reference").items() if k in FIGURES and _finite(v)}
        epochs = table("reference").get("epochs")
        if type(epochs) is int and epochs >= 1:  # inf or true would reach int() in the picker
            numbers["epochs"] = epochs
        note = table("reference").get("note")
        reference = Reference(**numbers, note=note if isinstance(note, str) else "")
    notes = doc.get("notes")
    sweep = table("sweep")
    return PresetCard(
        name=str(doc.get("name", source.stem)),
        description=str(doc.get("description", "")),
        report=str(doc.get("report", "")),
        notes=[str(n) for n in notes] if isinstance(notes, list) else [],
        reference=reference,
        source=source,
        user=user,
        arch=str(table("model").get("arch", "")),
        dataset=str(table("data").get("dataset", "")),
        varied=[*table("grid", sweep), *table("random", sweep)],
    )


def preset_cards(user_dir: Path | None = None) -> list[PresetCard]:
    """Built-in presets, then the user's own, as cards; unreadable files and repeated names are left
    to the validation, which reports them."""
    cards: dict[str, PresetCard] = {}
    for f in preset_files(user_dir):
        card = _card(f.text, f.path, f.user) if f.text is not None else None
        if card is not None:
            cards.setdefault(card.name, card)
    return list(cards.values())
