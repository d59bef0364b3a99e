"""The one error of engine.inference: input a trained model cannot be put to use with."""

from __future__ import annotations


class InferenceError(Exception):
    """A run, checkpoint, image or export target that cannot be used; str(e) says what and what to do."""
