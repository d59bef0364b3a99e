"""Preset files: where they are, and a quick look at them before they are validated.

Validating a preset needs pydantic and the Experiment model, which take a few hundred milliseconds
to import on a small machine. The console's first screen lists the presets from this quick look
(plain TOML, no pydantic) and validates them right after, on a thread (engine.presets); a file that
does not validate then leaves the list with a message naming its field.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any


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


@dataclass
class PresetCard:
    """What the picker shows of a preset before it is validated; `experiment` is None until then."""

    name: str
    description: str
    report: str
    notes: list[str]
    reference: dict[str, Any]
    source: Path
    user: bool
    arch: str
    dataset: str
    sweep: dict | None = None
    experiment: None = field(default=None, repr=False)


def _card(text: str, source: Path, user: bool) -> PresetCard | None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None  # validation reports it, naming the file

    def table(key: str) -> dict[str, Any]:
        value = doc.get(key)
        return value if isinstance(value, dict) else {}

    reference = {k: v for k, v in table("reference").items() if k != "note" and isinstance(v, (int, float))}
    notes = doc.get("notes")
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
        sweep=table("sweep") or None,
    )


def preset_cards(user_dir: Path | None = None) -> list[PresetCard]:
    """Built-in presets, then the user's own, as cards; unreadable files and repeated names are left
    to the validation, which reports them."""
    cards: list[PresetCard] = []
    seen: set[str] = set()

    def add(card: PresetCard | None) -> None:
        if card is not None and card.name not in seen:
            seen.add(card.name)
            cards.append(card)

    for filename, text in builtin_sources():
        add(_card(text, builtin_path(filename), user=False))
    for path in user_files(user_dir):
        try:
            add(_card(path.read_text(encoding="utf-8"), path, user=True))
        except (OSError, UnicodeDecodeError):
            continue
    return cards
