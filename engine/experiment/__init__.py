"""What an experiment is, before anything runs: every hyperparameter with its type, range and help
(config), what a config that does not validate says (errors), its dotted keys and `--set` (overrides),
what its schema says to a form (schema), config.toml as flat data (config_doc), TOML read as data
(toml_files), presets and their files, and the trials a sweep plans over an experiment (sweep_plan).
Imports nothing of cnnlab but engine.files, and neither torch nor torchvision: the console's form,
`cnnlab presets` and `cnnlab keys` stay instant.
"""
