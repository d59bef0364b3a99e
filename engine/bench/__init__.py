"""How fast the engine trains, against two yardsticks and a ceiling, in one process (`cnnlab bench`).

For a preset (or a model and a batch size; `--models all`: every architecture at its preset) these
ways of training the same model on the same uint8 images are timed, taking turns, R times:

  pure     the model's forward + backward + optimizer step on float, normalised batches already in
           memory, in every safe precision and layout auto's probe weighs (engine.training.autotune.candidates:
           fp32, bf16 where native, fp16 on CUDA, channels_last on and off); the best of them is the
           yardstick, "pure compute, best way".
  engine   engine.training.trainer.run_experiment through its real path, on a folder dataset of the preset's
           image size and class count written to a temporary directory (decoded cache, uint8 data,
           BatchAugment with the preset's augmentation, auto's measured choice, metrics, events,
           status file). Images/s over the training steps after the warm-up, timed by the trainer's
           own BatchProgress events; the end of the epoch (metrics line, checkpoints) is timed apart
           and set against a full epoch of the preset's dataset.
  reports  the reports' way: a CIFAR-style dataset making one PIL image per item, through
           RandomCrop(size, padding=4), RandomHorizontalFlip, ToTensor and Normalize, in a DataLoader
           with 0 and with 2 worker processes, in fp32.

Every way uses the preset's optimizer, loss (label smoothing) and gradient clipping, so the ratios
measure what lies around the step. The goals (targets.goals): engine / best pure >= 0.95, engine /
reports >= 2; at a batch of 8 or less the engine's milliseconds a step within 10 % of pure compute's.
The ceiling is the model's FLOPs per training image against the device's measured matmul rate. A
memory line (the train split as uint8 against float32) and the decoded cache's speed-up (first
against second load of the folder dataset) close the report. `--together N` (together) runs N real
trainings at once, each a process, against one alone (goal >= 0.90 in total); `--devices N` (devices)
one run on 1 device and on N.

Torch is imported only when the bench runs, so `cnnlab presets` stays fast.

    targets   what to bench (a preset, a model, the report models), how long, and the goals
    images    the folder dataset of the preset's shape, and the decoded cache's timing
    measure   the pure compute and the engine's real run
    ceiling   FLOPs per image (FlopCounterMode) and the matmul rate: the physical ceiling
    reports   the reports' PIL-transform DataLoader pipeline
    runner    the bench: the ways taking turns for every target, medians, ratios, ceiling, small batch
    together  N trainings at once in processes of their own, against one alone
    devices   one run on 1 device and on N (torchrun)
    render    the table and the lines under it
    machine   the machine a bench ran on (the console's bench says the same)

The command line (`cnnlab bench`) lives in engine/cli/bench.py.
"""

from __future__ import annotations


class BenchError(Exception):
    """The bench cannot measure what was asked (an engine run that failed, a bad model name)."""
