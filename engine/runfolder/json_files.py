"""What each JSON file of a run folder may hold, and reading it whatever is on disk.

A run folder can be damaged by a full disk, a copy cut short, an editor or a person: a status.json
of random bytes, a JSON list, a pid that is a string, a metrics line with `"epoch": 1e999`, a folder
where a file should be. Every view reads the files through here and gets plain values of the types
it expects, with each problem as one line naming the file and what is wrong, so that one damaged
run is a row marked damaged and never an exception in the views beside it.

No torch, no pydantic: `cnnlab runs` and the console list runs fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

from engine.files import newer_format

STATES = ("created", "running", "finished", "stopped", "failed", "diverged", "pruned")  # pruned: a sweep's pruner
MAX_JSON_BYTES = 64 * 1024 * 1024  # a summary with its example images is a few hundred KB


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_count(v: Any, low: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def read_json(path: Path) -> tuple[Any, str | None]:
    """(the document, None), (None, None) when the file is missing, or (None, what is wrong)."""
    try:
        if path.is_dir():
            return None, f"{path.name} is a folder, not a file"
        if path.stat().st_size > MAX_JSON_BYTES:
            return None, f"{path.name} is {path.stat().st_size / 1e6:.0f} MB: not a file cnnlab wrote"
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"{path.name} cannot be read ({err.strerror or err})"
    try:
        return json.loads(data.decode("utf-8")), None
    except UnicodeDecodeError:
        return None, f"{path.name} is not text (damaged or not written by cnnlab)"
    except (ValueError, RecursionError) as err:
        return None, f"{path.name} is not valid JSON ({str(err).split(':')[0]})"


def _clean(doc: dict[str, Any], checks: dict[str, Callable[[Any], bool]], what: str) -> tuple[dict, list[str]]:
    """The document with every known key of the wrong type left out; unknown keys are kept."""
    out, problems = {}, []
    for key, value in doc.items():
        check = checks.get(key)
        if check is not None and not check(value):
            problems.append(f"{what}: {key} is {_shown(value)}, not what cnnlab writes there")
            continue
        out[key] = value
    return out, problems


def _kind(value: Any) -> str:
    """A JSON value's kind in JSON's words, not Python's."""
    for kind, words in ((bool, "true or false"), (dict, "an object"), (list, "a list"), (str, "text")):
        if isinstance(value, kind):
            return words
    return "null" if value is None else "a number"


def _shown(value: Any) -> str:
    text = json.dumps(value, allow_nan=True, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- status.json ------------------------------------------------------------------------------------


def _checkpoint_marks(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(m, dict) and is_count(m.get("epoch")) and is_count(m.get("mtime_ns")) for m in v.values()
    )


def _progress(v: Any) -> bool:
    return isinstance(v, dict) and all(is_number(x) for x in v.values())


STATUS_CHECKS: dict[str, Callable[[Any], bool]] = {
    "state": lambda v: v in STATES,
    "message": _text,
    "pid": lambda v: is_count(v, 1),
    "host": _text,
    "beat": is_number,
    "created": _text,
    "started": _text,
    "updated": _text,
    "ended": _text,
    "progress": _progress,
    "checkpoints": _checkpoint_marks,
    "device": _text,
    "precision": _text,
    "channels_last": lambda v: isinstance(v, bool),
    "params": is_count,
    "format": is_count,
}


def read_status(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """status.json's keys of the right types (None when the file is missing or unreadable), and its problems."""
    doc, problem = read_json(path)
    if problem:
        return None, [problem]
    if doc is None:
        return None, []
    if not isinstance(doc, dict):
        return None, [f"status.json holds {_kind(doc)}, not the run's status"]
    newer = newer_format(doc.get("format"), "status.json")
    if newer:  # its keys may mean what this cnnlab does not know: unread, not guessed at
        return None, [newer]
    status, problems = _clean(doc, STATUS_CHECKS, "status.json")
    if "state" not in status and "state" not in doc:
        problems.append("status.json has no state")
    return status, problems


# --- metrics.jsonl ----------------------------------------------------------------------------------

METRIC_NUMBERS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_sec")
MAX_EPOCH = 1_000_000


def newer_status(path: Path) -> str | None:
    """The one line saying status.json was written by a newer cnnlab; None when this one reads it
    (or it is missing or damaged: read_status says that)."""
    doc, problem = read_json(path)
    if problem or not isinstance(doc, dict):
        return None
    return newer_format(doc.get("format"), "status.json")


def clean_metric_row(row: Any, where: str) -> tuple[dict[str, Any] | None, list[str]]:
    """One epoch's line with its figures checked: a bad figure is left out (None), a line without a
    usable epoch number is dropped."""
    if not isinstance(row, dict):
        return None, [f"{where} holds {_kind(row)}, not an epoch's figures"]
    epoch = row.get("epoch")
    if not is_count(epoch, 1) or epoch > MAX_EPOCH:
        return None, [f"{where}: epoch is {_shown(epoch)}, not an epoch number"]
    out, problems = dict(row), []
    for key in METRIC_NUMBERS:
        if key in out and out[key] is not None and not is_number(out[key]):
            problems.append(f"{where}: {key} is {_shown(out[key])}, not a number")
            out[key] = None
    if out.get("phase") is not None and not is_count(out["phase"]):
        problems.append(f"{where}: phase is {_shown(out['phase'])}, not a phase number")
        out["phase"] = None
    return out, problems


def read_metrics(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Finished epochs in epoch order, one per epoch (a resume may have re-written a tail: the last
    wins), and the problems. A last line cut by a kill is not a problem: the resume drops it."""
    try:
        if path.is_dir():
            return [], ["metrics.jsonl is a folder, not a file"]
        data = path.read_bytes()
    except FileNotFoundError:
        return [], []
    except OSError as err:
        return [], [f"metrics.jsonl cannot be read ({err.strerror or err})"]
    lines = data.split(b"\n")
    by_epoch: dict[int, dict[str, Any]] = {}
    problems: list[str] = []
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        where = f"metrics.jsonl line {n}"
        try:
            row = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            if n < len(lines) - 1 or data.endswith(b"\n"):  # a line cut by a kill is the last, unterminated
                problems.append(f"{where} is not valid JSON")
            continue
        clean, found = clean_metric_row(row, where)
        problems += found
        if clean is not None:
            by_epoch[clean["epoch"]] = clean
    if len(problems) > 5:
        problems = problems[:5] + [f"metrics.jsonl: and {len(problems) - 5} more damaged lines"]
    return [by_epoch[e] for e in sorted(by_epoch)], problems


# --- summary.json -----------------------------------------------------------------------------------


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(x is None or is_number(x) for x in v)


def _matrix(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(r, list) and len(r) == len(v) and all(is_count(n) and n < 2**53 for n in r) for r in v
    )


def _examples(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(e, dict) and isinstance(e.get("png"), str) and all(_text(e.get(k, "")) for k in ("true", "pred"))
        for e in v
    )


SUMMARY_CHECKS: dict[str, Callable[[Any], bool]] = {
    "best_val_acc": _optional(is_number),
    "best_epoch": _optional(is_count),
    "test_acc": _optional(is_number),
    "test_loss": _optional(is_number),
    "seconds": _optional(is_number),
    "epochs_done": _optional(is_count),
    "checkpoint_epoch": _optional(is_count),
    "class_names": lambda v: isinstance(v, list) and all(_text(x) for x in v),
    "per_class_acc": _numbers,
    "confusion": _matrix,
    "examples": _examples,
    "final": lambda v: isinstance(v, dict) and all(x is None or is_number(x) for x in v.values()),
    "test_checkpoint": _optional(_text),
    "collapse_warning": _optional(_text),
}


def read_summary(path: Path) -> tuple[dict[str, Any], list[str]]:
    """summary.json's figures of the right types ({} when missing or unreadable), and its problems."""
    doc, problem = read_json(path)
    if problem:
        return {}, [problem]
    if doc is None:
        return {}, []
    if not isinstance(doc, dict):
        return {}, [f"summary.json holds {_kind(doc)}, not the run's figures"]
    summary, problems = _clean(doc, SUMMARY_CHECKS, "summary.json")
    n = len(summary.get("confusion") or [])
    for key in ("class_names", "per_class_acc"):
        if n and key in summary and len(summary[key]) != n:
            problems.append(f"summary.json: {key} has {len(summary[key])} entries for {n} classes")
            del summary[key]
    return summary, problems


def _floats(v: Any) -> bool:
    return isinstance(v, list) and 0 < len(v) <= 4 and all(is_number(x) for x in v)


def _names(v: Any) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(isinstance(x, str) for x in v)


PREPROCESSING_CHECKS: dict[str, Callable[[Any], bool]] = {
    "size": lambda v: is_count(v, 1),
    "channels": lambda v: is_count(v, 1),
    "mean": _floats,
    "std": _floats,
    "class_names": _names,
}


def read_preprocessing(path: Path) -> dict[str, Any] | None:
    """preprocessing.json when every figure in it is of the right type; None when missing or damaged
    (the caller then works it out from the run's data, or says why it cannot)."""
    doc, problem = read_json(path)
    if problem or not isinstance(doc, dict):
        return None
    clean, problems = _clean(doc, PREPROCESSING_CHECKS, "preprocessing.json")
    if problems or set(clean) != set(PREPROCESSING_CHECKS):
        return None
    return clean
