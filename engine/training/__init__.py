"""One experiment trained into one run folder: the loop (trainer), one optimisation step (step),
optimisers and schedules (optim), `auto` precision and layout by measurement (autotune), the typed
events it reports (events), what may interrupt it (steering), status.json while it trains
(live_status), checkpoints and the exact place inside an epoch (checkpoint, position, resume_point),
training on past the planned epochs (extend), the test-set figures at the end (predict,
run_summary), and a dry run (dry_run). Imports everything below it: evaluation, models, data,
processes, compute, the run folder, the experiment.
"""
