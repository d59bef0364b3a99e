"""Reading what runs did: the learning-rate range test (lr_find, its words and plot), seed groups,
a run's results drawn with rich (show, top_losses_view), how numbers and states read (formatting),
and runs exported to CSV, TensorBoard and W&B (export/). Imports sweeps, training and everything
below; nothing here trains a run for keeps.
"""
