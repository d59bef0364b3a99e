"""Exponential moving average of a curve, as TensorBoard's smoothing slider draws it: each point
is weight * the running average + (1 - weight) * the point, debiased so that the first points are
not pulled towards zero. A weight of 0 is the curve itself."""

from __future__ import annotations

from collections.abc import Sequence

# What the charts' smoothing key steps through: off, then TensorBoard's default 0.6, then stronger.
STRENGTHS = (0.0, 0.6, 0.9, 0.97)


def ema(ys: Sequence[float], weight: float) -> list[float]:
    if not 0 <= weight < 1:
        raise ValueError(f"the smoothing weight must be in [0, 1), not {weight}")
    if weight == 0:
        return list(ys)
    out, avg = [], 0.0
    for i, y in enumerate(ys):
        avg = weight * avg + (1 - weight) * y
        out.append(avg / (1 - weight ** (i + 1)))
    return out


def next_strength(weight: float) -> float:
    """The strength after `weight` in STRENGTHS, back to off after the last."""
    later = [s for s in STRENGTHS if s > weight]
    return later[0] if later else STRENGTHS[0]
