"""While a run trains, what existed when it was set up (torch's modules, the model, the data, the
console's widgets) is kept out of Python's cyclic garbage collector.

A full collection walks every tracked object, ~390,000 once torch and the console are loaded: about
100 ms with the GIL held, every few seconds, during which training stood still (headless and in the
console alike). The run freezes the heap again at each epoch's start, after what that start built
(an optimizer for a new phase; the first one makes torch import its compiler, ~135,000 objects).
What the loop creates between two freezes is still collected; the freeze is lifted when the run
ends, so any cyclic garbage of the run (the model of a run the console has finished) is collected
then, as before.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def frozen_heap() -> Iterator[Callable[[], None]]:
    """Yields the function that freezes what exists now too (a splice of lists: cheap at any time)."""
    gc.collect()  # the set-up's garbage goes now, not into the frozen heap
    gc.freeze()
    try:
        yield gc.freeze
    finally:
        gc.unfreeze()
