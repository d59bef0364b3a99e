import math
import random

import pytest

from tui.thinning import finite_points, thin


def test_short_series_is_returned_whole():
    xs, ys = [1, 2, 3], [0.5, 0.2, 0.9]
    assert thin(xs, ys, 80) == ([1, 2, 3], [0.5, 0.2, 0.9])


def test_long_series_fits_the_width_and_keeps_ends_and_extremes():
    rng = random.Random(0)
    xs = list(range(10_000))
    ys = [math.sin(i / 300) + rng.gauss(0, 0.1) for i in xs]
    ys[4321] = 9.0  # a spike
    ys[777] = -9.0  # a dip
    tx, ty = thin(xs, ys, 80)
    assert len(tx) <= 80
    assert (tx[0], ty[0]) == (0, ys[0])
    assert (tx[-1], ty[-1]) == (9_999, ys[-1])
    assert 9.0 in ty and -9.0 in ty
    assert tx == sorted(tx)
    assert all(ys[x] == y for x, y in zip(tx, ty, strict=True))


def test_every_bucket_keeps_its_low_and_high():
    xs = list(range(1002))
    ys = [float(i % 10) for i in xs]  # a saw: 0..9 in every stretch of ten
    tx, ty = thin(xs, ys, 102)
    interior = ty[1:-1]
    assert interior.count(0.0) == 50 and interior.count(9.0) == 50


def test_monotone_series_stays_monotone():
    xs = [i / 7 for i in range(5000)]
    ys = [1 / (1 + x) for x in xs]
    tx, ty = thin(xs, ys, 60)
    assert ty == sorted(ty, reverse=True)
    assert tx[0] == 0 and tx[-1] == xs[-1]


def test_tiny_budgets_are_raised_to_a_drawable_minimum():
    tx, _ = thin(list(range(100)), [float(i) for i in range(100)], 1)
    assert 2 <= len(tx) <= 4 and tx[0] == 0 and tx[-1] == 99


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        thin([1, 2], [1.0], 10)


def test_finite_points_drop_missing_and_nan():
    assert finite_points([1, 2, 3, 4], [0.1, None, float("nan"), 0.4]) == ([1, 4], [0.1, 0.4])
