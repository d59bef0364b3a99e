"""Fetching a missing dataset with torchvision's own dataset class, only where data.download allows
it: the class downloads (and checks the MD5 of) the very files the format's reader then reads
itself, so what a download gives is exactly torchvision's layout. A network or checksum failure
is one paragraph naming the folder and the address to fetch the files from by hand."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Callable

from engine.data.datasets.errors import DatasetMissing, shown


def with_torchvision(title: str, root: Path, by_hand: str, fetch: Callable[[], object]) -> None:
    """Run `fetch` (which builds torchvision's dataset with download=True); DatasetMissing if it fails."""
    Path(root).mkdir(parents=True, exist_ok=True)
    try:
        fetch()
    except (OSError, RuntimeError, urllib.error.URLError) as err:
        # torchvision's MNIST lists every mirror it tried over several lines: one line here.
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DatasetMissing(
            f"{title} could not be downloaded into {shown(root)} ({reason}). Check the network, or fetch "
            f"{by_hand} yourself and put the files there."
        ) from None
