"""The test-set figures a person reads after a run (report 002's views): accuracy per class, the
confusion matrix, a handful of test images with their true and predicted labels, and a warning when
the model has collapsed to one class (report 002's Adam run "spitting out the same label for every image").

Pure numbers from predictions: the trainer predicts, this module counts. It takes torch tensors or
numpy arrays alike and imports no torch, so `cnnlab show` and the console can use it cheaply.
Everything returned is plain JSON (lists, ints, floats, strings) for summary.json.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

COLLAPSE_SHARE = 0.9  # one class taking this share of all predictions is a collapse
THUMB_MAX = 32  # prediction examples are stored at most this many pixels on a side


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a device
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _name(class_names: list[str], i: int) -> str:
    return class_names[i] if 0 <= i < len(class_names) else str(i)


def confusion_matrix(preds: Any, labels: Any, num_classes: int) -> list[list[int]]:
    """Row = true class, column = predicted class."""
    p, y = _np(preds).astype(np.int64).ravel(), _np(labels).astype(np.int64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} labels")
    if p.size and (min(p.min(), y.min()) < 0 or max(p.max(), y.max()) >= num_classes):
        raise ValueError(f"a class index outside 0..{num_classes - 1}")
    m = np.bincount(y * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
    return m.tolist()


def per_class_accuracy(confusion: list[list[int]]) -> list[float | None]:
    """Recall of each class; None for a class with no test images."""
    m = np.asarray(confusion, dtype=np.int64)
    totals = m.sum(axis=1)
    return [None if totals[i] == 0 else float(m[i, i] / totals[i]) for i in range(len(m))]


def accuracy(confusion: list[list[int]]) -> float | None:
    m = np.asarray(confusion, dtype=np.int64)
    total = int(m.sum())
    return float(np.trace(m) / total) if total else None


def collapse_warning(confusion: list[list[int]], class_names: list[str]) -> str | None:
    """A sentence when (nearly) every prediction is one class that the data does not justify; else None."""
    m = np.asarray(confusion, dtype=np.int64)
    total = int(m.sum())
    if total == 0 or len(m) < 2:
        return None
    predicted = m.sum(axis=0)
    top = int(predicted.argmax())
    share = predicted[top] / total
    true_share = m[top].sum() / total
    # A test set that is itself mostly one class would make this the right answer, not a collapse.
    if share < COLLAPSE_SHARE or true_share >= 0.5:
        return None
    name = _name(class_names, top)
    everything = (
        "every test image"
        if predicted[top] == total
        else f"{100 * share:.0f}% of the test images ({predicted[top]} of {total})"
    )
    return (
        f"The model predicts '{name}' for {everything}: it has collapsed to one class and learned nothing "
        f"(its accuracy, {100 * np.trace(m) / total:.1f}%, is what always guessing '{name}' gives). "
        "Report 002's Adam run failed this way; try a lower learning rate, weight decay, or SGD with momentum."
    )


def worst_classes(confusion: list[list[int]], class_names: list[str], n: int = 10) -> list[tuple[str, float]]:
    """The n classes with the lowest accuracy, worst first (classes without test images left out)."""
    acc = per_class_accuracy(confusion)
    ranked = sorted((a, i) for i, a in enumerate(acc) if a is not None)
    return [(_name(class_names, i), a) for a, i in ranked[:n]]


def confused_pairs(confusion: list[list[int]], class_names: list[str], n: int = 10) -> list[tuple[str, str, int]]:
    """The n most frequent mistakes as (true class, predicted class, count), most frequent first."""
    m = np.asarray(confusion, dtype=np.int64).copy()
    np.fill_diagonal(m, 0)
    order = np.argsort(-m, axis=None, kind="stable")[:n]
    out = []
    for flat in order:
        t, p = divmod(int(flat), m.shape[1])
        if m[t, p] == 0:
            break
        out.append((_name(class_names, t), _name(class_names, p), int(m[t, p])))
    return out


def thumbnail_png(image_chw: Any, max_side: int = THUMB_MAX) -> tuple[str, int, int]:
    """A uint8 (C, H, W) image as a base64 PNG no larger than max_side; returns (base64, width, height)."""
    from PIL import Image

    a = _np(image_chw)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    a = np.ascontiguousarray(a.transpose(1, 2, 0))
    img = Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a[:, :, :3], "RGB")
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii"), img.width, img.height


def prediction_examples(
    images_uint8: Any, labels: Any, preds: Any, class_names: list[str], n: int = 16, seed: int = 0
) -> list[dict[str, Any]]:
    """n test images drawn with `seed`, each {index, true, pred (class names), true_index, pred_index,
    correct, png (base64, at most 32 px), width, height}."""
    y, p = _np(labels).ravel(), _np(preds).ravel()
    count = min(n, len(y))
    if count == 0:
        return []
    picks = np.sort(np.random.default_rng(seed).choice(len(y), size=count, replace=False))
    out = []
    for i in picks:
        t, q = int(y[i]), int(p[i])
        png, w, h = thumbnail_png(images_uint8[int(i)])
        out.append(
            {
                "index": int(i),
                "true": _name(class_names, t),
                "pred": _name(class_names, q),
                "true_index": t,
                "pred_index": q,
                "correct": t == q,
                "png": png,
                "width": w,
                "height": h,
            }
        )
    return out


def summarise_test(
    preds: Any, labels: Any, class_names: list[str], images: Any, *, examples: int = 16, seed: int = 0
) -> dict[str, Any]:
    """The test part of summary.json: test_acc, per_class_acc, confusion, examples, collapse_warning."""
    num_classes = len(class_names)
    confusion = confusion_matrix(preds, labels, num_classes)
    return {
        "test_acc": accuracy(confusion),
        "test_images": int(_np(labels).size),
        "class_names": list(class_names),
        "per_class_acc": per_class_accuracy(confusion),
        "confusion": confusion,
        "collapse_warning": collapse_warning(confusion, class_names),
        "examples": prediction_examples(images, labels, preds, class_names, n=examples, seed=seed),
    }
