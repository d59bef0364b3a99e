"""The decoded cache: a dataset decoded once is saved as plain uint8 tensors, so the next start
reads one file instead of decoding thousands of images.

An entry is keyed by the dataset and the settings that change decoding (which classes, the
resize) and fingerprinted by every source file's name, size and modification time: touching the
data makes a new entry and replaces the stale one. Entries are written to a temporary name and
renamed, and read with `torch.load(weights_only=True)`: they hold tensors, strings and numbers only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import torch

from engine.data.datasets.decoded import Decoded

FORMAT_VERSION = 1  # bump when what a format decodes changes, so old entries are not trusted
log = logging.getLogger(__name__)


def fingerprint(root: Path, files: list[str]) -> str:
    """Names relative to the root (moving the whole data folder keeps the entry), sizes, mtimes."""
    prefix = os.path.join(str(root), "")
    h = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        name = f[len(prefix) :] if f.startswith(prefix) else f
        h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def settings_key(settings: dict) -> str:
    text = json.dumps({"version": FORMAT_VERSION, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def entry_path(cache_dir: Path, dataset: str, settings: dict, root: Path, files: list[str]) -> Path:
    return cache_dir / f"{dataset}-{settings_key(settings)}-{fingerprint(root, files)}.pt"


def load_or_decode(path: Path, decode: Callable[[], Decoded]) -> Decoded:
    """The entry at `path` if it reads; otherwise decode, save (best effort) and return."""
    if path.exists():
        try:
            return _from_state(torch.load(path, weights_only=True))
        except Exception as err:  # a truncated or foreign file: decode again and overwrite it
            log.warning("ignoring the unreadable cache entry %s (%s)", path, err)
    decoded = decode()
    try:
        _save(path, decoded)
    except OSError as err:  # a read-only data folder still trains, just without a cache
        log.warning("cannot write the decoded cache %s (%s)", path, err)
    return decoded


def _save(path: Path, decoded: Decoded) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(_to_state(decoded), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # Entries of the same dataset and settings with another fingerprint are stale copies.
    stem = path.name.rsplit("-", 1)[0]
    for old in path.parent.glob(f"{stem}-*.pt"):
        if old != path:
            old.unlink(missing_ok=True)


def _to_state(d: Decoded) -> dict:
    state: dict = {"class_names": list(d.class_names), "mean": list(d.mean), "std": list(d.std)}
    for name in ("train", "val", "test"):
        part = getattr(d, name)
        if part is not None:
            state[f"{name}_images"], state[f"{name}_labels"] = part[0].contiguous(), part[1].contiguous()
    return state


def _from_state(state: dict) -> Decoded:
    def part(name: str):
        if f"{name}_images" not in state:
            return None
        return state[f"{name}_images"], state[f"{name}_labels"]

    return Decoded(
        train=part("train"),
        val=part("val"),
        test=part("test"),
        class_names=list(state["class_names"]),
        mean=tuple(state["mean"]),
        std=tuple(state["std"]),
    )
