"""A trained run put to use: its model read back from a checkpoint, images of the user's own
classified with the very preprocessing the run's test set went through, and the model exported
to ONNX or TorchScript with that preprocessing written beside it.

    preprocessing        what a run's images went through before its model saw them (size, channels,
                         normalisation, class names), as the run's own data loading gives it
    images               image files and folders read into uint8 tensors of the run's size and channels
    trained              the run's model rebuilt and loaded from best.pt or last.pt, in eval mode
    predict              class probabilities of image files, top K per image
    agreement            whether an exported model gives the torch model's answers
    onnx_export          the model as ONNX (torch's exporter), run again with onnxruntime
    torchscript_export   the model as TorchScript, reloaded
    model_export         an export written whole or not at all, checked, its preprocessing beside it
    errors               InferenceError: what cannot be put to use, in one sentence

It sits above training (it loads checkpoints through engine.training.checkpoint and builds models
with engine.models, data through engine.data) and below the CLI and the console, which call it.
It never imports the CLI, sweeps, bench or insight.
"""
