"""A model from the user's own code: `model.arch = "path/to/models.py:Net"` or `"package.module:Net"`.

The class is an nn.Module taking `num_classes` (and `in_channels` when it has a parameter of that
name) plus `model.kwargs`. Importing the file runs its code: only an arch of this kind imports
anything, and nothing in a preset is imported unless the user set such an arch.

A run keeps a copy of the file (`<run>/model/<file>.py`, and `<run>/model/source.json` with where
it came from and its sha256), made when the run starts; resume, predict and export build the run's
model from that copy (`for_run`), so a run still trains and shows after the user edits or deletes
their file, and `cnnlab show` says when the two now differ (`drift`).

Every fault of the user's code (a file that does not import, a missing class, a class that does not
take num_classes, a constructor or forward that raises) is one ConfigError naming `model.arch`, the
file and, where there is one, the line. No torch import at module level: `cnnlab show` reads the
copy's record without it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import shutil
import sys
import traceback
from pathlib import Path
from typing import Any

from engine.experiment.config import ModelConfig, arch_kind
from engine.experiment.errors import ConfigError
from engine.files import atomic_write_text

COPY_DIR = "model"
RECORD = "source.json"
USER_KINDS = ("file", "module")


def is_user_arch(arch: str) -> bool:
    """Whether `arch` names the user's own class (a file or a module), not a built-in or a library's model."""
    try:
        return arch_kind(arch) in USER_KINDS
    except ValueError:
        return False


def _fault(message: str) -> ConfigError:
    return ConfigError([("model.arch", message)])


def split_arch(arch: str) -> tuple[str, str]:
    """("path/to/models.py" or "package.module", "Class")."""
    where, _, name = arch.rpartition(":")
    return where, name


def source_file(arch: str) -> Path:
    """The file that holds the class: the path as given (relative to the working folder), or the
    module's file as Python would import it. ConfigError when there is none."""
    where, _ = split_arch(arch)
    if arch_kind(arch) == "file":
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise _fault(f"there is no model file at {path}")
        return path
    try:
        spec = importlib.util.find_spec(where)
    except (ImportError, ValueError) as err:  # a parent package that does not import
        raise _fault(f"module {where} cannot be found: {err}") from None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise _fault(f"there is no module {where} (a .py file) on Python's path")
    return Path(spec.origin).resolve()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the run's copy --------------------------------------------------------------------------


def keep_copy(run_dir: Path, cfg: ModelConfig) -> None:
    """Copy the user's file into the run folder, with where it came from and its sha256; nothing for
    any other arch. Called once, when the run starts."""
    if not is_user_arch(cfg.arch):
        return
    src = source_file(cfg.arch)
    folder = Path(run_dir) / COPY_DIR
    folder.mkdir(exist_ok=True)
    copy = folder / src.name
    tmp = folder / f".{src.name}.tmp"
    shutil.copyfile(src, tmp)
    tmp.replace(copy)
    record = {"arch": cfg.arch, "source": str(src), "copy": f"{COPY_DIR}/{src.name}", "sha256": sha256(copy)}
    atomic_write_text(folder / RECORD, json.dumps(record, indent=2) + "\n")


def copy_record(run_dir: Path) -> dict[str, Any] | None:
    """What keep_copy wrote for the run (None: the run's model is not the user's own)."""
    try:
        record = json.loads((Path(run_dir) / COPY_DIR / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("copy"), str) else None


def for_run(run_dir: Path, cfg: ModelConfig) -> ModelConfig:
    """The model config that builds the run's model: for the user's own class, its arch points at the
    run's copy of the file, so that an edit or a deletion of the user's file changes nothing; `cfg`
    unchanged for any other arch. ConfigError when the run should hold a copy and does not."""
    if not is_user_arch(cfg.arch):
        return cfg
    _, name = split_arch(cfg.arch)
    record = copy_record(run_dir)
    copy = Path(run_dir) / record["copy"] if record else None
    if copy is None or not copy.is_file() or copy.parent != Path(run_dir) / COPY_DIR:
        raise _fault(
            f"{cfg.arch}: the run's copy of the model file is missing from {Path(run_dir) / COPY_DIR} "
            "(it is made when the run starts)"
        )
    return cfg.model_copy(update={"arch": f"{copy.resolve()}:{name}"})


def drift(run_dir: Path) -> str | None:
    """A sentence when the user's file now differs from the run's copy or is gone; None when they
    are the same, or the run's model is not the user's own."""
    record = copy_record(run_dir)
    if record is None:
        return None
    source = Path(str(record.get("source", "")))
    if not source.is_file():
        return f"the model file {source} is gone; the run builds its model from its copy, {record['copy']}"
    if sha256(source) != record.get("sha256"):
        return (
            f"the model file {source} has changed since the run started; "
            f"the run builds its model from its copy, {record['copy']}"
        )
    return None


# --- importing and building ----------------------------------------------------------------------


def _line_in(err: BaseException, path: Path) -> str:
    """ ", line N" of the deepest frame in the user's file, or "" when it never ran there."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename) == path]
    return f", line {frames[-1].lineno}" if frames else ""


def _reason(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def import_module(arch: str) -> tuple[Any, Path]:
    """Import the module that holds the class: (module, its file). A file is loaded under a name of
    its own content's hash, so an edited file is a new module and the same file imports once."""
    path = source_file(arch)
    where, _ = split_arch(arch)
    try:
        if arch_kind(arch) == "module":
            return importlib.import_module(where), path
        name = f"cnnlab_user_model_{sha256(path)[:16]}"
        if name in sys.modules:
            return sys.modules[name], path
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise _fault(f"{path} cannot be loaded as a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module, path
    except SyntaxError as err:
        where_err = Path(err.filename or path)
        raise _fault(f"{where_err} does not import: line {err.lineno}: SyntaxError: {err.msg}") from None
    except ConfigError:
        raise
    except Exception as err:  # an ImportError, a NameError at the top level: the user's code to fix
        raise _fault(f"{path} does not import{_line_in(err, path)}: {_reason(err)}") from None


def find_class(arch: str) -> tuple[type, Path]:
    """The nn.Module class `arch` names; ConfigError when the file has no such class."""
    from torch import nn

    module, path = import_module(arch)
    _, name = split_arch(arch)
    cls = getattr(module, name, None)
    if cls is None:
        classes = [k for k, v in vars(module).items() if inspect.isclass(v) and issubclass(v, nn.Module)]
        close = difflib.get_close_matches(name, classes, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        found = f"it defines {', '.join(classes)}" if classes else "it defines no nn.Module class"
        raise _fault(f"{path} has no class {name}; {hint}{found}")
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise _fault(f"{name} in {path} is not a torch.nn.Module class")
    return cls, path


def build_user_model(cfg: ModelConfig, num_classes: int, in_channels: int) -> Any:
    """The user's class, constructed with num_classes, in_channels (when it takes it) and model.kwargs."""
    cls, path = find_class(cfg.arch)
    _, name = split_arch(cfg.arch)
    params = inspect.signature(cls).parameters
    if "num_classes" in cfg.kwargs or "in_channels" in cfg.kwargs:
        raise ConfigError([("model.kwargs", "num_classes and in_channels are set from the data, not model.kwargs")])
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if "num_classes" not in params and not takes_any:
        raise _fault(f"{name} in {path} does not take num_classes: its parameters are ({', '.join(params)})")
    args = {"num_classes": num_classes, **cfg.kwargs}
    if "in_channels" in params:
        args["in_channels"] = in_channels
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as err:
        raise _fault(f"{name}({', '.join(f'{k}=…' for k in args)}) in {path}: {err}") from None
    try:
        return cls(**args)
    except Exception as err:
        raise _fault(f"{name}(…) in {path} failed{_line_in(err, path)}: {_reason(err)}") from None
