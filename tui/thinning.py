"""Thinning a long series to about a chart's width before plotting.

A plotext chart of a few hundred points costs tens of milliseconds to build, and a terminal chart
cannot show more points than it has columns anyway. Min/max buckets keep what a reader looks for
in a training curve: the first and last points and every spike and dip (each bucket keeps its
lowest and its highest point, so the series' extremes always survive), in x order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def thin(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most `max_points` (x, y) pairs of the series, keeping the first, the last and the extremes."""
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length ({len(xs)} and {len(ys)})")
    n = len(xs)
    max_points = max(int(max_points), 4)
    if n <= max_points:
        return list(xs), list(ys)
    # The first and last points stay; the interior is cut into buckets of two points each.
    buckets = (max_points - 2) // 2
    inner = n - 2
    keep = [0]
    for b in range(buckets):
        lo = 1 + (b * inner) // buckets
        hi = 1 + ((b + 1) * inner) // buckets
        if lo >= hi:
            continue
        i_min = min(range(lo, hi), key=ys.__getitem__)
        i_max = max(range(lo, hi), key=ys.__getitem__)
        keep.extend(sorted({i_min, i_max}))
    keep.append(n - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def finite_points(xs: Sequence[float], ys: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """The pairs whose y is a real number: a run without validation has None there, a diverged one NaN."""
    px, py = [], []
    for x, y in zip(xs, ys, strict=True):
        if y is not None and math.isfinite(y):
            px.append(x)
            py.append(y)
    return px, py
