"""MNIST, Fashion-MNIST, KMNIST, SVHN and STL-10 from the files torchvision downloads: every set
written in its real format and read back exactly (and as torchvision's own classes read it), grey
data through the cache, the download switch, and the paragraphs for missing and damaged files."""

import urllib.error

import numpy as np
import pytest
import torch

from engine.data import splits as data
from engine.data.datasets import mnist, stl, svhn
from engine.data.datasets.decoded import channel_stats
from engine.data.splits import DatasetMissing, DatasetUnusable, describe, load_splits
from engine.experiment.config import DATASETS, DataConfig
from tests.dataset_files import write_mnist, write_stl10, write_svhn

MNIST_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


def cfg(**kw) -> DataConfig:
    return DataConfig(**{"val_split": 0.0, "cache": False, **kw})


def write(dataset: str, root, **kw):
    if dataset in MNIST_FOLDERS:
        return write_mnist(root, MNIST_FOLDERS[dataset], **kw)
    return {"svhn": write_svhn, "stl10": write_stl10}[dataset](root, **kw)


def assert_exact(s, written, channels: int, size: int) -> None:
    for split, images, labels in (
        (s.train, written.train_images, written.train_labels),
        (s.test, written.test_images, written.test_labels),
    ):
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous()
        assert split.labels.dtype == torch.int64
        assert split.images.shape[1:] == (channels, size, size)
        assert torch.equal(split.images, torch.from_numpy(images))
        assert split.labels.tolist() == labels


# --- each set, exactly as written --------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "kmnist"])
@pytest.mark.parametrize("gz", [False, True])
def test_the_mnist_family_reads_plain_and_gzipped_idx_files(tmp_path, dataset, gz):
    written = write(dataset, tmp_path, n_train=60, n_test=20, gz=gz)
    s = load_splits(cfg(dataset=dataset, root=str(tmp_path)))
    assert_exact(s, written, 1, 28)
    facts = DATASETS[dataset]
    assert s.class_names == facts["class_names"] and len(s.class_names) == 10
    if facts["mean"] is not None:
        assert (s.mean, s.std) == (facts["mean"], facts["std"])
    else:  # KMNIST: measured over its training images
        assert (s.mean, s.std) == channel_stats(torch.from_numpy(written.train_images))
    assert describe(cfg(dataset=dataset)) == (10, 1, 28)


def test_mnist_names_and_fashion_names():
    assert DATASETS["mnist"]["class_names"] == [str(d) for d in range(10)]
    assert DATASETS["fashion-mnist"]["class_names"][0] == "T-shirt/top"
    assert DATASETS["fashion-mnist"]["class_names"][-1] == "Ankle boot"


def test_plain_idx_wins_over_gz_beside_it(tmp_path):
    # torchvision leaves both after a download; the plain file is read (no decompressing).
    written = write_mnist(tmp_path, gz=False)
    write_mnist(tmp_path, gz=True, seed=1)
    s = load_splits(cfg(dataset="mnist", root=str(tmp_path)))
    assert s.train.labels.tolist() == written.train_labels


def test_svhn_reads_the_mat_files_with_ten_as_zero(tmp_path):
    written = write_svhn(tmp_path, n_train=60, n_test=20)
    assert 0 in written.train_labels  # stored as 10 in the file
    s = load_splits(cfg(dataset="svhn", root=str(tmp_path)))
    assert_exact(s, written, 3, 32)
    assert s.class_names == [str(d) for d in range(10)]
    assert (s.mean, s.std) == (DATASETS["svhn"]["mean"], DATASETS["svhn"]["std"])


def test_stl10_reads_the_column_major_binary_and_its_class_names(tmp_path):
    names = [f"thing {i}" for i in range(10)]  # not the real ones: they must come from class_names.txt
    written = write_stl10(tmp_path, n_train=30, n_test=20, names=names)
    s = load_splits(cfg(dataset="stl10", root=str(tmp_path)))
    assert_exact(s, written, 3, 96)
    assert s.class_names == names
    assert bool((s.train.images[:, :, :4, :] == 255).all())  # the top rows, not the left columns


@pytest.mark.parametrize("dataset", ["mnist", "svhn", "stl10"])
def test_first_classes_and_resize(tmp_path, dataset):
    written = write(dataset, tmp_path)
    s = load_splits(cfg(dataset=dataset, root=str(tmp_path), classes=3, image_size=32 if dataset != "svhn" else 20))
    side = 32 if dataset != "svhn" else 20
    channels = 1 if dataset == "mnist" else 3
    assert s.train.images.shape[1:] == (channels, side, side) and s.train.images.dtype == torch.uint8
    assert s.train.labels.tolist() == [y for y in written.train_labels if y < 3]
    assert s.test.labels.tolist() == [y for y in written.test_labels if y < 3]
    assert len(s.class_names) == 3


def test_a_validation_split_is_drawn_from_the_training_images(tmp_path):
    write_mnist(tmp_path, n_train=60, n_test=20)
    s = load_splits(cfg(dataset="mnist", root=str(tmp_path), val_split=0.25))
    assert (len(s.train), len(s.val), len(s.test)) == (45, 15, 20)


# --- what torchvision's own classes read from the same files -------------------------------------------


def test_the_fixtures_read_the_same_through_torchvision(tmp_path, monkeypatch):
    import hashlib

    from torchvision.datasets import MNIST, STL10, SVHN

    write_mnist(tmp_path)
    ours = load_splits(cfg(dataset="mnist", root=str(tmp_path)))
    theirs = MNIST(str(tmp_path), train=True)
    assert torch.equal(ours.train.images[:, 0], theirs.data) and torch.equal(ours.train.labels, theirs.targets)

    write_svhn(tmp_path)
    md5 = hashlib.md5((tmp_path / "test_32x32.mat").read_bytes()).hexdigest()
    monkeypatch.setitem(SVHN.split_list, "test", [SVHN.split_list["test"][0], "test_32x32.mat", md5])
    theirs = SVHN(str(tmp_path), split="test")
    ours = load_splits(cfg(dataset="svhn", root=str(tmp_path)))
    assert np.array_equal(ours.test.images.numpy(), theirs.data)
    assert ours.test.labels.tolist() == theirs.labels.tolist()

    write_stl10(tmp_path)
    monkeypatch.setattr(STL10, "_check_integrity", lambda self: True)
    theirs = STL10(str(tmp_path), split="train")
    ours = load_splits(cfg(dataset="stl10", root=str(tmp_path)))
    assert np.array_equal(ours.train.images.numpy(), theirs.data)
    assert ours.train.labels.tolist() == theirs.labels.tolist() and ours.class_names == theirs.classes


# --- the decoded cache -------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["fashion-mnist", "svhn", "stl10"])
def test_a_second_load_comes_from_the_cache(tmp_path, monkeypatch, dataset):
    write(dataset, tmp_path)
    c = cfg(dataset=dataset, root=str(tmp_path), cache=True, val_split=0.2)
    first = load_splits(c)
    (entry,) = (tmp_path / ".cnnlab-cache").glob(f"{dataset}-*.pt")
    monkeypatch.setattr(mnist, "read_idx", lambda *a: pytest.fail("decoded again"))
    monkeypatch.setattr(svhn, "read_mat", lambda *a: pytest.fail("decoded again"))
    monkeypatch.setattr(stl, "read_part", lambda *a: pytest.fail("decoded again"))
    again = load_splits(c)
    for a, b in ((first.train, again.train), (first.val, again.val), (first.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert (first.class_names, first.mean, first.std) == (again.class_names, again.mean, again.std)
    assert entry.exists()


# --- download: only when allowed, through torchvision's classes ------------------------------------------


def test_download_goes_through_torchvision_only_when_allowed(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeMNIST:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_mnist(tmp_path / "data", gz=True)

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    root = tmp_path / "data"
    with pytest.raises(DatasetMissing):
        load_splits(cfg(dataset="mnist", root=str(root)))
    assert calls == []
    s = load_splits(cfg(dataset="mnist", root=str(root), download=True, cache=True))
    assert calls == [(str(root), True, True)] and len(s.train) == 60
    load_splits(cfg(dataset="mnist", root=str(root), download=True))
    assert len(calls) == 1  # there now: not fetched again


def test_a_failed_download_is_a_paragraph(tmp_path, monkeypatch):
    import torchvision.datasets

    class Offline:
        def __init__(self, *a, **kw):
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "SVHN", Offline)
    with pytest.raises(DatasetMissing) as err:
        load_splits(cfg(dataset="svhn", root=str(tmp_path / "d"), download=True))
    msg = str(err.value)
    assert "could not be downloaded" in msg and str(tmp_path / "d") in msg and "ufldl.stanford.edu" in msg
    assert "\n" not in msg and err.value.__cause__ is None


# --- missing and damaged files --------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, layout",
    [
        ("mnist", ["MNIST", "raw", "train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", ".gz"]),
        ("fashion-mnist", ["FashionMNIST", "raw", "train-labels-idx1-ubyte"]),
        ("kmnist", ["KMNIST", "raw", "t10k-images-idx3-ubyte"]),
        ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
        ("stl10", ["stl10_binary", "train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "class_names.txt"]),
    ],
)
def test_a_missing_set_is_a_paragraph_naming_the_path_and_the_layout(tmp_path, dataset, layout):
    where = tmp_path / "nowhere"
    with pytest.raises(DatasetMissing) as err:
        load_splits(cfg(dataset=dataset, root=str(where)))
    msg = str(err.value)
    assert str(where) in msg and "data.download=true" in msg and "--data-dir" in msg
    assert all(part in msg for part in layout), msg
    assert "\n" not in msg and "Traceback" not in msg
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    assert not where.exists()  # nothing made, nothing fetched


def test_an_incomplete_set_names_the_missing_file(tmp_path):
    written = write_mnist(tmp_path)
    written.paths[3].unlink()  # t10k-labels-idx1-ubyte
    with pytest.raises(DatasetMissing, match="incomplete .no t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte.gz"):
        load_splits(cfg(dataset="mnist", root=str(tmp_path)))
    write_stl10(tmp_path)
    (tmp_path / "stl10_binary" / "class_names.txt").unlink()
    with pytest.raises(DatasetMissing, match="incomplete .no class_names.txt"):
        load_splits(cfg(dataset="stl10", root=str(tmp_path)))


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


DAMAGE = {
    "idx cut short": ("mnist", 0, lambda p: _truncate(p, 4000), "header promises 60 x 28 x 28"),
    "idx not idx": ("mnist", 1, lambda p: p.write_bytes(b"<html>404 Not Found</html>"), "does not start as an idx"),
    "idx header cut": ("mnist", 1, lambda p: _truncate(p, 6), "header is cut short"),
    "gz cut short": ("mnist-gz", 0, lambda p: _truncate(p, 300), "not a whole gzip file"),
    "gz not gzip": ("mnist-gz", 2, lambda p: p.write_bytes(b"plain bytes"), "not a whole gzip file"),
    "labels count": ("mnist", 1, lambda p: p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2])), "holds 60 images but"),
    "mat cut short": ("svhn", 0, lambda p: _truncate(p, 1000), "does not read as a MATLAB file"),
    "mat empty": ("svhn", 1, lambda p: p.write_bytes(b""), "does not read as a MATLAB file"),
    "stl cut short": ("stl10", 0, lambda p: _truncate(p, 27648 * 3 + 100), "not a whole number of 96x96"),
    "stl labels short": ("stl10", 1, lambda p: _truncate(p, 5), "holds 30 images but"),
    "stl label zero": ("stl10", 3, lambda p: p.write_bytes(bytes(20)), "labels run 0..0, not 1..10"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_file_is_a_clear_message(tmp_path, damage):
    kind, index, spoil, words = DAMAGE[damage]
    dataset = kind.removesuffix("-gz")
    written = write(dataset, tmp_path, **({"gz": True} if kind == "mnist-gz" else {}))
    bad = written.paths[index]
    spoil(bad)
    with pytest.raises(DatasetUnusable) as err:
        load_splits(cfg(dataset=dataset, root=str(tmp_path), cache=True))
    msg = str(err.value)
    assert words in msg, msg
    assert err.value.__cause__ is None and "\n" not in msg
    if damage not in ("labels count", "stl labels short"):  # those name both files
        assert msg.startswith(str(bad)), msg
    assert not list(tmp_path.glob(".cnnlab-cache/*.pt"))  # nothing cached from a failed decode


def test_the_format_of_each_dataset_is_registered():
    assert set(data.FORMATS) | {"shapes"} == set(DATASETS)


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist", "kmnist", "svhn", "stl10"])
def test_more_classes_than_the_set_has_is_refused_before_loading(dataset):
    from engine.experiment.config import validate_experiment

    with pytest.raises(Exception, match=f"data.classes: {dataset} has 10 classes, so at most 10"):
        validate_experiment({"data": {"dataset": dataset, "classes": 11}, "model": {"arch": "resnet34"}})
