"""cnnlab's training engine: config, data, models, optimisation, trainer, run folders, CLI.

Nothing under engine/ imports Textual; torch is imported only by the modules that train.
"""
