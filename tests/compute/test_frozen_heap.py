"""The training loop runs with the heap frozen out of the cyclic garbage collector (a full collection
of torch's ~390,000 objects held the GIL for ~100 ms), and lifts the freeze when the run ends, however
it ends, so nothing the run left in a cycle stays uncollected."""

from __future__ import annotations

import gc
import weakref

import pytest

from engine.compute.frozen_heap import frozen_heap
from engine.events import EpochFinished
from engine.training.trainer import run_experiment
from tests.tiny import tiny_experiment


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_run_trains_with_the_heap_frozen_and_lifts_the_freeze_at_its_end(tmp_path):
    frozen_at_epochs = []

    def listen(event):
        if isinstance(event, EpochFinished):
            frozen_at_epochs.append(gc.get_freeze_count())

    result = run_experiment(tiny_experiment(**{"train.epochs": 2}), runs_dir=tmp_path, listener=listen)
    assert result.state == "finished", result.message
    assert len(frozen_at_epochs) == 2 and min(frozen_at_epochs) > 10_000  # torch's modules among them
    assert gc.get_freeze_count() == 0


def test_what_the_loop_makes_is_collected_and_what_was_frozen_is_collected_after():
    before = Cycle()
    gone_before = weakref.ref(before)
    with frozen_heap() as freeze:
        made = Cycle()
        gone_made = weakref.ref(made)
        del made
        gc.collect()
        assert gone_made() is None  # the loop's own cyclic garbage still goes
        del before
        gc.collect()
        assert gone_before() is not None  # frozen: left alone while the run trains
        freeze()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone_before() is None


def test_the_freeze_is_lifted_when_the_loop_raises():
    with pytest.raises(RuntimeError), frozen_heap():
        assert gc.get_freeze_count() > 0
        raise RuntimeError("a failed run")
    assert gc.get_freeze_count() == 0
