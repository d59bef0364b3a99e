"""The built-in presets: one TOML file per recipe, shipped as package data (read by engine.experiment.presets)."""
