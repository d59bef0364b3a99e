"""`auto` decided by measuring: the precision and memory layout that train this model fastest here.

At the start of a run whose train.precision or train.channels_last is auto, a few real training
steps of the run's own model (a copy), optimizer, loss and batch size are timed in every safe
candidate: fp32; bf16 where the device computes it natively (CUDA with bf16, a CPU with AVX512-BF16
or AMX); fp16 with its gradient scaler on CUDA; channels_last on and off. The loss stays in fp32 and
fp16 keeps its scaler, so no candidate changes what a run learns beyond autocast's own rounding.
Whatever the rule would have picked (engine.compute.device) stays unless another candidate is more than
MARGIN faster: two candidates a noise apart are no reason to leave it (`choose`).

The probe takes PROBE_BUDGET_S or so. It first times the rule's pick at two batch sizes, which tells a
step's fixed cost from its cost per image, then times every candidate at the largest batch that fits:
the run's own, or a power of two below it when the run's steps are too long (a Backbone at batch 256
on a CPU), and the record says so. The fixed cost matters: a ResNet-34 on a 2-core CPU steps in the
same 90 ms at batch 16 in all four candidates, and only at larger batches do they part (bf16 up to a
third faster than fp32 at 128). A candidate whose first step at that batch takes over SLOW_AT_FIRST
times the quickest one's is out of the race (reported at that step's speed), so a slow precision
costs the probe one step, not a share of its budget; so is one the budget has no time left for once
two are timed (steps of a second: the quickest are timed first). The choice is kept per machine in
`<cache>/autotune.json` (engine.compute.machine's cache folder), keyed by the CPU or GPU, the torch
version, the device, the model (architecture and settings), the batch, the input, the candidates and
the thread count, so the next run of the same shape starts at once. `cnnlab bench --forget` empties it;
CNNLAB_AUTOTUNE=again measures anew (keeping the new figures), CNNLAB_AUTOTUNE=off takes the rule.

The probe trains copies of the model on random batches from its own generator, inside fork_rng: the
run's weights and RNG streams, and so its results, are those it would have with the chosen settings
set by hand.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from engine.compute.device import Runtime, _cpu_has_fast_bf16
from engine.compute.machine import cache_dir, machine_name, write_json_atomically
from engine.experiment.config import Experiment
from engine.files import timestamp

PROBE_BUDGET_S = 2.5  # the probe's aim (the goal is under 3 s); a first step slow on its own can take it past this
MARGIN = 0.03  # candidates this close to the fastest are taken as equal
# The batch of the first sizing steps when the run's is larger, and the smallest a probe times: below
# it a step is all fixed costs and ranks the candidates otherwise than the run's batch would.
SIZING_BATCH = 16
SECOND_SIZE = 4  # the second sizing step's batch, in first ones (at most the run's; else twice the first)
# A first step this many times the fastest first step's time: that candidate is out. A first step at a
# small batch can take 1.8 times a later one (its kernels' set-up), so only a clear loser goes.
SLOW_AT_FIRST = 2.0
CACHE_FILE = "autotune.json"
ENV = "CNNLAB_AUTOTUNE"  # "off": the rule, no probe; "again": measure even when a choice is kept


@dataclass(frozen=True)
class Candidate:
    precision: str
    channels_last: bool

    @property
    def label(self) -> str:
        return self.precision + (", channels_last" if self.channels_last else "")


def candidates(exp: Experiment, rule: Runtime) -> list[Candidate]:
    """The safe candidates for this run's device and settings, the rule's pick first."""
    t, kind = exp.train, rule.device.type
    if t.precision != "auto":
        precisions = [t.precision]
    elif kind == "cuda":
        precisions = ["bf16", "fp16", "fp32"] if torch.cuda.is_bf16_supported() else ["fp16", "fp32"]
    elif kind == "cpu":
        precisions = ["fp32", "bf16"] if _cpu_has_fast_bf16() else ["fp32"]
    else:
        precisions = [rule.precision]  # MPS: fp32, as the rule says
    layouts = [True, False] if t.channels_last == "auto" and kind in ("cpu", "cuda") else [rule.channels_last]
    first = Candidate(rule.precision, rule.channels_last)
    rest = [Candidate(p, c) for p in precisions for c in layouts if Candidate(p, c) != first]
    return [first, *rest]


def cache_key(exp: Experiment, rule: Runtime, shape: tuple[int, ...], classes: int, cands: list[Candidate]) -> str:
    model = exp.model.model_dump(exclude={"pretrained", "weights_path"})  # the weights do not change the cost
    digest = hashlib.sha256(json.dumps(model, sort_keys=True).encode()).hexdigest()[:12]
    parts = [
        machine_name(rule.device),
        f"torch {torch.__version__}",
        rule.device.type,
        f"{exp.model.arch} {digest}",
        f"batch {exp.train.batch_size}",
        "x".join(map(str, shape)),
        f"{classes} classes",
        "/".join(c.label for c in cands),
        f"{torch.get_num_threads()} threads",  # a run sharing the cores can rank the candidates otherwise
    ]
    # oneDNN capped below the CPU's instructions (e.g. AVX2 only) runs other kernels: another machine.
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    if isa and rule.device.type == "cpu":
        parts.append(f"oneDNN {isa}")
    return " | ".join(parts)


# --- the choice kept per machine ------------------------------------------------------------------


def cache_path() -> Path:
    return cache_dir() / CACHE_FILE


def kept_choices() -> dict[str, Any]:
    """The kept choices, each a record; a damaged cache (or entry) is none: measured again, then replaced."""
    try:
        doc = json.loads(cache_path().read_text())
    except (OSError, ValueError, RecursionError):
        return {}
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, dict):
        return {}
    return {k: v for k, v in choices.items() if isinstance(v, dict)}


def keep(key: str, record: dict[str, Any]) -> None:
    choices = kept_choices()
    choices[key] = record
    try:
        write_json_atomically(cache_path(), {"version": 1, "choices": choices})
    except OSError:
        pass  # a read-only home: the run goes on, the next one measures again


def forget() -> int:
    """Empty the kept choices; how many there were."""
    n = len(kept_choices())
    cache_path().unlink(missing_ok=True)
    return n


# --- the probe ------------------------------------------------------------------------------------


class _Layout:
    """One copy of the model in one memory layout with its optimizer; every precision shares it
    (autocast changes the arithmetic, not the weights)."""

    def __init__(self, exp: Experiment, model: torch.nn.Module, device: torch.device, channels_last: bool):
        from engine.training.step import optimizer_for

        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = copy.deepcopy(model).to(device, memory_format=fmt)
        self.model.train()
        self.optimizer = optimizer_for(exp, self.model)
        self.format = fmt


class Probe:
    """Times one training step of each candidate: `probe.run()` gives img/s per candidate label."""

    def __init__(
        self,
        exp: Experiment,
        device: torch.device,
        model: torch.nn.Module,
        shape: tuple[int, ...],
        classes: int,
        cands: list[Candidate],
        budget_s: float | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.exp, self.device, self.model, self.shape, self.classes = exp, device, model, shape, classes
        self.cands, self.budget_s, self.clock = cands, budget_s or PROBE_BUDGET_S, clock
        self.warmup = 2 if device.type == "cuda" else 1
        self.batch = exp.train.batch_size
        self._layouts: dict[bool, _Layout] = {}
        self._steps: dict[Candidate, Any] = {}
        self._inputs: dict[tuple[int, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self.failed: dict[str, str] = {}
        self.out_at_first: dict[str, float] = {}  # img/s of the candidates out at their first step

    def _step_of(self, cand: Candidate):
        from engine.training.step import make_step

        if cand not in self._steps:
            if cand.channels_last not in self._layouts:
                self._layouts[cand.channels_last] = _Layout(self.exp, self.model, self.device, cand.channels_last)
            lay = self._layouts[cand.channels_last]
            rt = Runtime(self.device, cand.precision, cand.channels_last)
            # Scale 1 keeps fp16's first steps from overflowing: a skipped optimizer step would time short.
            self._steps[cand] = make_step(self.exp, lay.model, rt, optimizer=lay.optimizer, init_scale=1.0)
        return self._steps[cand]

    def _batch(self, b: int, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if (b, channels_last) not in self._inputs:
            gen = torch.Generator().manual_seed(b)
            x = torch.randn((b, *self.shape), generator=gen).to(self.device)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            y = torch.randint(0, self.classes, (b,), generator=gen).to(self.device)
            self._inputs[(b, channels_last)] = (x.contiguous(memory_format=fmt), y)
        return self._inputs[(b, channels_last)]

    def _time_step(self, cand: Candidate, b: int) -> float:
        step = self._step_of(cand)  # built before the clock starts
        x, y = self._batch(b, cand.channels_last)
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t0 = self.clock()
        step(x, y)
        sync()
        return self.clock() - t0

    @staticmethod
    def step_cost(sizes: dict[int, float]) -> Callable[[int], float]:
        """Seconds a step of b images costs, from the sizing steps ({batch: seconds}): a fixed part and a
        part per image from two sizes; from one, all of it per image (generous: its fixed costs scale too)."""
        (b0, t0), *rest = sorted(sizes.items())
        if not rest:
            return lambda b: t0 * b / b0
        b1, t1 = rest[-1]
        per_image = max((t1 - t0) / (b1 - b0), t1 / b1 / 10)  # a noisy pair never makes images free
        fixed = max(t0 - per_image * b0, 0.0)
        return lambda b: fixed + per_image * b

    def plan(self, sizes: dict[int, float], left_s: float) -> tuple[int, int]:
        """(batch, rounds) for the candidates: the largest batch (the run's, or a power of two below it,
        never below the first sizing batch) at which every candidate's first step and a timed step of the
        two quickest fit what is left of the budget at the sizing steps' cost (the rest are ranked by their
        first step where time runs out); two rounds where they fit at that batch. The batch comes first: a
        small one ranks a step's fixed costs, and at a large one a first step costs what a later one
        does (1.0 to 1.1 times, a ResNet-34 at batch 128 here). The rounds share what is left after the
        first steps, so a first step slower than planned shortens them (one step at least)."""
        cost, smallest = self.step_cost(sizes), min(sizes)

        def fits(b: int, rounds: int) -> bool:
            return self.steps_planned(rounds) * cost(b) <= left_s

        batches = [self.batch] + [b for b in (2**k for k in range(20)) if smallest <= b < self.batch][::-1]
        b = next((b for b in batches if fits(b, 1)), smallest)
        return b, 2 if fits(b, 2) else 1

    def steps_planned(self, rounds: int) -> int:
        """Steps the plan counts on: every candidate's warm-up, and the rounds of the two quickest."""
        n = len(self.cands)
        return n * self.warmup + min(n, 2) * rounds

    def _sizes(self, first: Candidate, t_start: float) -> dict[int, float]:
        """The sizing steps of the rule's pick: after its kernels' first call (not what a step costs), a
        step at the first sizing batch (two if quick: the faster counts), then one at SECOND_SIZE (else
        two) times it, where the run's batch is larger, the candidates could be timed above the first
        batch at all, and that step's generous estimate fits a third of what is left."""
        b0 = min(self.batch, SIZING_BATCH)
        cold = self._time_step(first, b0)
        steps = 2 if cold < self.budget_s / 40 else 1  # a step of tens of ms is timed twice: the faster counts
        t0 = min(self._time_step(first, b0) for _ in range(steps))
        sizes = {b0: t0}
        left = self.budget_s - (self.clock() - t_start)
        if self.batch > b0 and self.steps_planned(1) * t0 < left:
            for factor in (SECOND_SIZE, 2):
                b1 = min(self.batch, b0 * factor)
                if t0 * b1 / b0 <= left / 3:
                    sizes[b1] = self._time_step(first, b1)  # its first call at b1: a warm-up, so it overstates
                    break
        return sizes

    def run(self) -> dict[str, float]:
        """img/s of each candidate that could train, at the median of its timed steps: what a run
        sustains (the fastest single step ranked bf16 above fp32 for AlexNet at batch 4, where fp32
        sustains about 10 % more); a candidate out at its first step, at that step's speed."""
        first = self.cands[0]
        self._step_of(first)  # the first optimizer of a process imports torch._dynamo: the run's cost, not the probe's
        t_start = self.clock()
        sizes = self._sizes(first, t_start)
        self.batch_used, rounds = self.plan(sizes, self.budget_s - (self.clock() - t_start))
        first_steps: dict[Candidate, float] = {}
        for i, cand in enumerate(self.cands):
            try:
                if i == 0 and self.batch_used in sizes:  # its sizing step at this batch was its warm-up
                    first_steps[cand] = sizes[self.batch_used]
                    continue
                for _ in range(self.warmup):
                    first_steps[cand] = self._time_step(cand, self.batch_used)
            except (RuntimeError, torch.OutOfMemoryError) as err:  # e.g. a kernel missing in this precision
                self.failed[cand.label] = str(err).splitlines()[0][:200]
                self._release_memory()
        quickest = min(first_steps.values(), default=0.0)
        live = [c for c, s in first_steps.items() if s <= quickest * SLOW_AT_FIRST]
        times: dict[Candidate, list[float]] = {}  # the rounds' steps alone: the sizing's fastest would favour the first
        left = self.budget_s - (self.clock() - t_start)
        slice_s = max(left, 0.0) / max(rounds * len(live), 1)
        for _ in range(rounds):
            # The quickest so far first: where the budget runs out before every candidate is timed (steps of
            # a second), the contenders have had the steps, and the rest are ranked by what they have.
            order = sorted(live, key=lambda c: statistics.median(times[c]) if c in times else first_steps[c])
            for cand in order:
                expected = times[cand][-1] if cand in times else first_steps[cand]
                if len(times) >= 2 and self.clock() - t_start + expected > self.budget_s:
                    continue  # no time left for it: its first round's steps, or its first step, rank it
                t_cand = self.clock()
                while True:  # one step at least; no step that would end past the slice
                    step_s = self._time_step(cand, self.batch_used)
                    times.setdefault(cand, []).append(step_s)
                    if self.clock() - t_cand + step_s > slice_s:
                        break
        self.seconds = self.clock() - t_start
        self.out_at_first = {c.label: self.batch_used / s for c, s in first_steps.items() if c not in times and s > 0}
        typical = {c: statistics.median(ts) for c, ts in times.items()}
        rates = {c.label: self.batch_used / s for c, s in typical.items() if s > 0} | self.out_at_first
        return {c.label: rates[c.label] for c in self.cands if c.label in rates}

    def _release_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def close(self) -> None:
        self._steps.clear()
        self._layouts.clear()
        self._inputs.clear()
        self._release_memory()


def choose(measured: dict[str, float], cands: list[Candidate]) -> Candidate:
    """The fastest candidate; among those within MARGIN of it (a noise apart), the rule's pick (the
    first), else the one with the rule's layout, else with its precision: a small batch may rank two
    near-equal candidates either way, and the rule's layout is the safer bet at the run's batch."""
    rule = cands[0]
    if not measured:
        return rule
    fastest = max(measured.values())
    close = [c for c in cands if c.label in measured and measured[c.label] * (1 + MARGIN) >= fastest]

    def likeness(c: Candidate) -> tuple[int, int, float]:
        return (c.channels_last == rule.channels_last, c.precision == rule.precision, measured[c.label])

    return max(close, key=likeness)


def words(record: dict[str, Any]) -> str:
    """The line a run prints about its choice."""
    chosen = Candidate(record["precision"], record["channels_last"]).label
    if record.get("cached"):
        return f"auto: {chosen}, as measured before on this machine for this model and batch"
    figures = " · ".join(f"{label} {ips:,.0f}" for label, ips in record["measured"].items())
    at = f" at batch {record['batch']}" if record["batch"] != record["of_batch"] else ""
    out = record.get("out_at_first") or []
    after = f"; {', '.join(out)}: out after one step" if out else ""
    return f"auto: {chosen}, measured{at} in {record['seconds']:.1f} s (img/s: {figures}{after}); kept for the next run"


def settle(
    exp: Experiment, rule: Runtime, model: torch.nn.Module, shape: tuple[int, ...], classes: int
) -> tuple[Runtime, dict[str, Any] | None]:
    """The runtime the run trains in, and the record of how auto chose it (None: nothing was auto,
    or there was one candidate). `model` is the run's model, not yet moved: the probe trains copies."""
    if os.environ.get(ENV, "").lower() == "off":
        return rule, None
    cands = candidates(exp, rule)
    if len(cands) < 2:
        return rule, None
    key = cache_key(exp, rule, shape, classes, cands)
    kept = kept_choices().get(key)
    if kept is not None and os.environ.get(ENV, "").lower() != "again":
        chosen = Candidate(kept.get("precision"), bool(kept.get("channels_last")))
        if chosen in cands:
            return Runtime(rule.device, chosen.precision, chosen.channels_last), {**kept, "cached": True}
    probe = Probe(exp, rule.device, model, shape, classes, cands)
    devices = [rule.device] if rule.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            measured = probe.run()
    except (RuntimeError, torch.OutOfMemoryError) as err:  # the sizing step itself failed: the rule stands
        probe.failed[cands[0].label] = str(err).splitlines()[0][:200]
        measured, probe.batch_used, probe.seconds = {}, 0, 0.0
    finally:
        probe.close()
    chosen = choose(measured, cands)
    record = {
        "precision": chosen.precision,
        "channels_last": chosen.channels_last,
        "measured": {label: round(ips, 1) for label, ips in measured.items()},
        "failed": probe.failed,
        "out_at_first": sorted(probe.out_at_first),
        "batch": probe.batch_used,
        "of_batch": exp.train.batch_size,
        "seconds": round(probe.seconds, 2),
        "rule": cands[0].label,
        "threads": torch.get_num_threads(),
        "when": timestamp(),
    }
    if measured:
        keep(key, record)
    return Runtime(rule.device, chosen.precision, chosen.channels_last), {**record, "cached": False}
