"""TOML read as data, whatever the file holds: experiments, presets, run configs, sweeps.

Every TOML cnnlab reads goes through `loads` or `read`, so every one of them takes a UTF-8 byte
order mark (what some Windows editors write), refuses a file far larger than any experiment, and
words a syntax error, a nesting too deep for the parser or bytes that are not UTF-8 as one
TomlError naming the file, never a traceback. No pydantic, no torch: the runs reader uses it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

BOM = "\ufeff"
# An experiment or a preset is a few kilobytes: a file this large is the wrong file, and parsing and
# reporting on it (a million unknown keys) would take minutes.
MAX_BYTES = 1024 * 1024


class TomlError(ValueError):
    """A TOML file (or text) that does not read; str(e) names it and says what is wrong."""

    def __init__(self, problem: str, source: str | Path | None = None):
        self.problem, self.source = problem, str(source) if source else None
        super().__init__(f"{self.source}: {problem}" if self.source else problem)


def loads(text: str, source: str | Path | None = None, limit: int = MAX_BYTES) -> dict[str, Any]:
    """The document in `text`; TomlError when it is not valid TOML (or longer than `limit`)."""
    if text.startswith(BOM):
        text = text[len(BOM) :]
    if len(text) > limit:
        raise TomlError(f"is {len(text) / 1e6:.1f} MB, far larger than any experiment: is it the right file?", source)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise TomlError(f"not valid TOML: {err}", source) from None
    except RecursionError:
        raise TomlError("not valid TOML here: its lists or tables are nested too deeply", source) from None


def read(path: str | Path, limit: int = MAX_BYTES) -> dict[str, Any]:
    """The document in the file at `path`. A missing file raises FileNotFoundError; a folder, a file
    that cannot be read, too large, not UTF-8 or not TOML raises TomlError naming the path."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise TomlError("is a folder, not a TOML file", path)
        if size > limit:
            raise TomlError(f"is {size / 1e6:.1f} MB, far larger than any experiment: is it the right file?", path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as err:
        raise TomlError(f"cannot be read ({err.strerror or err})", path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TomlError(
            f"is not UTF-8 text (byte {err.start} is {data[err.start]:#04x}): not a TOML file", path
        ) from None
    return loads(text, path, limit)
