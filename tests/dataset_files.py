"""Tiny datasets written in their real on-disk formats, for any test that needs one.

    write_cifar10(root, n_train=50, n_test=10)                 root/cifar-10-batches-py/ (python pickles)
    write_cifar100(root, n_train=50, n_test=10)                root/cifar-100-python/
    write_tiny_imagenet(root, classes=3, per_class=4)          root/tiny-imagenet-200/ (JPEGs, val annotations)
    write_image_folder(root, classes=("a", "b"), per_class=3)  root/train/<class>/*.png (+ val/, test/)
    write_mnist(root, folder="MNIST", n_train=60, n_test=20)    root/<folder>/raw/*-idx?-ubyte (or .gz)
    write_svhn(root, n_train=60, n_test=20)                    root/train_32x32.mat, test_32x32.mat
    write_stl10(root, n_train=30, n_test=20)                   root/stl10_binary/*.bin, class_names.txt

Each returns what it wrote (a dataclass), so a test can compare what it loads against it.
torchvision checks the MD5 of every CIFAR file against the real dataset's; `accept_cifar(monkeypatch,
written)` points those checks at the fixture's own checksums for the length of one test.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Clearly different colours, so a class survives JPEG and can be recognised from its pixels.
PALETTE = [
    (230, 40, 40),
    (40, 200, 40),
    (40, 60, 230),
    (230, 220, 40),
    (200, 40, 220),
    (40, 210, 220),
    (250, 140, 20),
    (120, 120, 120),
    (255, 255, 255),
    (10, 10, 10),
]


def class_colour(label: int) -> tuple[int, int, int]:
    return PALETTE[label % len(PALETTE)]


def _images(rng: np.random.Generator, labels: list[int], size: int) -> np.ndarray:
    """(N, size, size, 3) uint8: each image its class colour plus a little noise."""
    base = np.array([class_colour(y) for y in labels], dtype=np.int16)[:, None, None, :]
    noise = rng.integers(-12, 13, (len(labels), size, size, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- CIFAR ---------------------------------------------------------------------------------------


@dataclass
class CifarFiles:
    dataset: str  # "cifar10" or "cifar100"
    folder: Path
    train_images: np.ndarray  # (N, 32, 32, 3) uint8, in file order
    train_labels: list[int]
    test_images: np.ndarray
    test_labels: list[int]
    class_names: list[str]
    md5: dict[str, str] = field(default_factory=dict)  # file name -> checksum


def _cifar_batch(images: np.ndarray, labels: list[int], key: str, name: str) -> dict:
    # The python version stores each image as one row: the R plane, then G, then B, row-major.
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)
    return {
        "batch_label": name,
        key: list(labels),
        "data": data,
        "filenames": [f"img_{i}.png" for i in range(len(labels))],
    }


def _pickle(path: Path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root: Path, n_train: int = 50, n_test: int = 10, seed: int = 0) -> CifarFiles:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    train_labels = [int(v) for v in rng.integers(0, 10, n_train)]
    test_labels = [int(v) for v in rng.integers(0, 10, n_test)]
    train, test = _images(rng, train_labels, 32), _images(rng, test_labels, 32)
    out = CifarFiles("cifar10", folder, train, train_labels, test, test_labels, names)
    # Five training batches, as in the real archive (the last ones may be small).
    bounds = np.linspace(0, n_train, 6).astype(int)
    for i in range(5):
        lo, hi = bounds[i], bounds[i + 1]
        _pickle(
            folder / f"data_batch_{i + 1}",
            _cifar_batch(train[lo:hi], train_labels[lo:hi], "labels", f"training batch {i + 1} of 5"),
        )
    _pickle(folder / "test_batch", _cifar_batch(test, test_labels, "labels", "testing batch 1 of 1"))
    _pickle(folder / "batches.meta", {"label_names": names, "num_cases_per_batch": 10000, "num_vis": 3072})
    out.md5 = {p.name: _md5(p) for p in folder.iterdir()}
    return out


def write_cifar100(root: Path, n_train: int = 50, n_test: int = 10, seed: int = 0) -> CifarFiles:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"class_{i:02d}" for i in range(100)]
    train_labels = [int(v) for v in rng.integers(0, 100, n_train)]
    test_labels = [int(v) for v in rng.integers(0, 100, n_test)]
    train, test = _images(rng, train_labels, 32), _images(rng, test_labels, 32)
    for fname, images, labels in (("train", train, train_labels), ("test", test, test_labels)):
        batch = _cifar_batch(images, labels, "fine_labels", fname)
        batch["coarse_labels"] = [y // 5 for y in labels]
        _pickle(folder / fname, batch)
    _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": [f"super_{i}" for i in range(20)]})
    out = CifarFiles("cifar100", folder, train, train_labels, test, test_labels, names)
    out.md5 = {p.name: _md5(p) for p in folder.iterdir()}
    return out


def accept_cifar(monkeypatch, written: CifarFiles) -> None:
    """Make torchvision's integrity check accept the fixture (its MD5s are the real dataset's)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR10 if written.dataset == "cifar10" else CIFAR100
    monkeypatch.setattr(cls, "train_list", [[name, written.md5[name]] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, written.md5[name]] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": written.md5[cls.meta["filename"]]})


# --- Tiny ImageNet ---------------------------------------------------------------------------------


@dataclass
class TinyImagenetFiles:
    folder: Path  # root/tiny-imagenet-200
    wnids: list[str]  # in wnids.txt's (unsorted) order
    names: dict[str, str]  # wnid -> first name in words.txt
    train: dict[str, list[Path]]  # wnid -> its training images
    val: list[tuple[Path, str]]  # (image, wnid) from val_annotations.txt

    def sorted_wnids(self) -> list[str]:
        return sorted(self.wnids)


def write_tiny_imagenet(
    root: Path, classes: int = 3, per_class: int = 4, val_per_class: int = 2, size: int = 64, seed: int = 0
) -> TinyImagenetFiles:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "tiny-imagenet-200"
    # Real wnids are not listed in sorted order; the fixture's are not either.
    wnids = [f"n{1000000 + 7919 * i:08d}" for i in reversed(range(classes))]
    names = {w: f"thing {i}" for i, w in enumerate(wnids)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("".join(w + "\n" for w in wnids))
    # words.txt covers all of WordNet in the real archive: more lines than wnids, synonyms after commas.
    words = ["n09999999\tunused, spare"] + [f"{w}\t{names[w]}, synonym {i}" for i, w in enumerate(wnids)]
    (folder / "words.txt").write_text("\n".join(words) + "\n")
    colour_of = {w: i for i, w in enumerate(sorted(wnids))}  # colour = label in sorted order

    train: dict[str, list[Path]] = {}
    for w in wnids:
        d = folder / "train" / w / "images"
        d.mkdir(parents=True, exist_ok=True)
        imgs = _images(rng, [colour_of[w]] * per_class, size)
        train[w] = []
        for i, img in enumerate(imgs):
            p = d / f"{w}_{i}.JPEG"
            Image.fromarray(img).save(p, quality=95)
            train[w].append(p)
        (folder / "train" / w / f"{w}_boxes.txt").write_text(
            "".join(f"{w}_{i}.JPEG\t0\t0\t{size - 1}\t{size - 1}\n" for i in range(per_class))
        )

    vdir = folder / "val" / "images"
    vdir.mkdir(parents=True, exist_ok=True)
    val, lines, k = [], [], 0
    for w in wnids:
        for img in _images(rng, [colour_of[w]] * val_per_class, size):
            p = vdir / f"val_{k}.JPEG"
            # The real val set has a few grayscale JPEGs; so does the fixture.
            (Image.fromarray(img).convert("L") if k == 0 else Image.fromarray(img)).save(p, quality=95)
            val.append((p, w))
            lines.append(f"{p.name}\t{w}\t0\t0\t{size - 1}\t{size - 1}")
            k += 1
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    tdir = folder / "test" / "images"
    tdir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_images(rng, [0], size)[0]).save(tdir / "test_0.JPEG")  # unlabelled, as in the real set
    return TinyImagenetFiles(folder, wnids, names, train, val)


# --- image folder ------------------------------------------------------------------------------------


@dataclass
class ImageFolderFiles:
    root: Path
    classes: list[str]  # sorted, as the loader numbers them
    images: dict[str, dict[str, list[tuple[Path, np.ndarray]]]]  # split -> class -> [(file, HWC uint8 pixels)]


def write_image_folder(
    root: Path,
    classes=("cat", "dog"),
    per_class: int = 3,
    size: int | tuple[int, int] = 16,
    val_per_class: int = 0,
    test_per_class: int = 0,
    ext: str = "png",
    seed: int = 0,
) -> ImageFolderFiles:
    """root/train/<class>/<i>.png (+ val/, test/ when asked), lossless so pixels compare exactly.
    `size` is a side or (width, height)."""
    rng = np.random.default_rng(seed)
    w, h = (size, size) if isinstance(size, int) else size
    ordered = sorted(classes)
    out: dict[str, dict[str, list]] = {}
    for split, n in (("train", per_class), ("val", val_per_class), ("test", test_per_class)):
        if n == 0:
            continue
        out[split] = {}
        for name in classes:
            d = Path(root) / split / name
            d.mkdir(parents=True, exist_ok=True)
            label = ordered.index(name)
            base = np.array(class_colour(label), dtype=np.int16)
            imgs = np.clip(base + rng.integers(-12, 13, (n, h, w, 3)), 0, 255).astype(np.uint8)
            out[split][name] = []
            for i, img in enumerate(imgs):
                p = d / f"{name}_{i}.{ext}"
                Image.fromarray(img).save(p)
                out[split][name].append((p, img))
    return ImageFolderFiles(Path(root), ordered, out)


# --- torchvision's other sets: idx (the MNIST family), SVHN's .mat, STL-10's binary -------------------


@dataclass
class ArrayFiles:
    """What a set written from arrays holds, in file order: images (N, C, H, W) uint8 as the loader
    should hand them back, labels 0-based."""

    paths: list[Path]
    train_images: np.ndarray
    train_labels: list[int]
    test_images: np.ndarray
    test_labels: list[int]
    class_names: list[str]


def grey_images(rng: np.random.Generator, labels: list[int], size: int = 28) -> np.ndarray:
    """(N, 1, size, size) uint8: a grey level per class plus noise, and a bright stripe whose row is
    the class too, so that rows and columns are told apart."""
    n = len(labels)
    level = np.array([20 + 22 * y for y in labels], dtype=np.int16)[:, None, None, None]
    out = np.clip(level + rng.integers(-8, 9, (n, 1, size, size)), 0, 255).astype(np.uint8)
    for i, y in enumerate(labels):
        out[i, 0, 2 + 2 * y, :] = 255
    return out


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: 0, 0, 0x08, the number of dimensions, each as big-endian int32."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist(
    root: Path, folder: str = "MNIST", n_train: int = 60, n_test: int = 20, gz: bool = False, seed: int = 0
) -> ArrayFiles:
    """root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte, gzipped with gz (as downloaded)."""
    rng = np.random.default_rng(seed)
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    train_labels = [int(v) for v in rng.integers(0, 10, n_train)]
    test_labels = [int(v) for v in rng.integers(0, 10, n_test)]
    train, test = grey_images(rng, train_labels), grey_images(rng, test_labels)
    paths = []
    for prefix, images, labels in (("train", train, train_labels), ("t10k", test, test_labels)):
        for name, array in (
            (f"{prefix}-images-idx3-ubyte", images[:, 0]),  # idx: (N, 28, 28), no channel axis
            (f"{prefix}-labels-idx1-ubyte", np.array(labels, dtype=np.uint8)),
        ):
            data = idx_bytes(array)
            path = raw / (name + ".gz" if gz else name)
            path.write_bytes(gzip.compress(data) if gz else data)
            paths.append(path)
    return ArrayFiles(paths, train, train_labels, test, test_labels, [str(d) for d in range(10)])


def write_svhn(root: Path, n_train: int = 60, n_test: int = 20, seed: int = 0) -> ArrayFiles:
    """root/train_32x32.mat and test_32x32.mat: X uint8 (32, 32, 3, N), y (N, 1) with 10 for the digit 0."""
    import scipy.io

    rng = np.random.default_rng(seed)
    Path(root).mkdir(parents=True, exist_ok=True)
    train_labels = [int(v) for v in rng.integers(0, 10, n_train)]
    test_labels = [int(v) for v in rng.integers(0, 10, n_test)]
    train, test = _images(rng, train_labels, 32), _images(rng, test_labels, 32)  # (N, H, W, 3)
    paths = []
    for name, images, labels in (("train_32x32.mat", train, train_labels), ("test_32x32.mat", test, test_labels)):
        y = np.array([[10 if v == 0 else v] for v in labels], dtype=np.uint8)
        path = Path(root) / name
        scipy.io.savemat(path, {"X": images.transpose(1, 2, 3, 0), "y": y})
        paths.append(path)
    chw = (train.transpose(0, 3, 1, 2), test.transpose(0, 3, 1, 2))
    return ArrayFiles(paths, chw[0], train_labels, chw[1], test_labels, [str(d) for d in range(10)])


STL10_NAMES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def write_stl10(root: Path, n_train: int = 30, n_test: int = 20, names=STL10_NAMES, seed: int = 0) -> ArrayFiles:
    """root/stl10_binary/{train,test}_{X,y}.bin and class_names.txt: each image 3 planes of 96x96
    bytes stored column by column, labels 1..10 one byte each."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "stl10_binary"
    base.mkdir(parents=True, exist_ok=True)
    train_labels = [int(v) for v in rng.integers(0, 10, n_train)]
    test_labels = [int(v) for v in rng.integers(0, 10, n_test)]
    train, test = _images(rng, train_labels, 96), _images(rng, test_labels, 96)
    # A diagonal-free mark in the top rows, so that a transposed read would show.
    train[:, :4, :, :] = 255
    test[:, :4, :, :] = 255
    paths = []
    for part, images, labels in (("train", train, train_labels), ("test", test, test_labels)):
        xs, ys = base / f"{part}_X.bin", base / f"{part}_y.bin"
        xs.write_bytes(np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes())  # (N, C, W, H) on disk
        ys.write_bytes(bytes(v + 1 for v in labels))
        paths += [xs, ys]
    (base / "class_names.txt").write_text("".join(n + "\n" for n in names))
    paths.append(base / "class_names.txt")
    chw = (train.transpose(0, 3, 1, 2), test.transpose(0, 3, 1, 2))
    return ArrayFiles(paths, chw[0], train_labels, chw[1], test_labels, list(names))
