"""Loading every dataset format from its real on-disk layout into uint8 splits: classes, subsets,
seeded splits, normalisation, the decoded cache and the missing-dataset messages."""

import time

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import splits as data
from engine.data.datasets import cifar, folder, shapes, tiny_imagenet
from engine.data.splits import DatasetMissing, DatasetUnusable, Splits, describe, load_splits
from engine.experiment.config import DataConfig
from tests.dataset_files import (
    accept_cifar,
    class_colour,
    write_cifar10,
    write_cifar100,
    write_image_folder,
    write_tiny_imagenet,
)


def cfg(**kw) -> DataConfig:
    return DataConfig(**{"val_split": 0.0, **kw})


def assert_well_formed(s: Splits) -> None:
    for split in (s.train, s.val, s.test):
        if split is None:
            continue
        assert split.images.dtype == torch.uint8 and split.images.is_contiguous() and split.images.device.type == "cpu"
        assert split.labels.dtype == torch.int64 and split.images.shape[0] == split.labels.shape[0]
        assert split.images.shape[1] == 3
        if len(split.labels):
            assert 0 <= int(split.labels.min()) and int(split.labels.max()) < s.num_classes


def colour_label(images: torch.Tensor) -> list[int]:
    """The fixture class whose colour each image is closest to."""
    means = images.float().mean(dim=(2, 3))
    palette = torch.tensor([class_colour(i) for i in range(10)], dtype=torch.float32)
    return torch.cdist(means, palette).argmin(1).tolist()


# --- shapes ----------------------------------------------------------------------------------------


def test_shapes_is_ten_balanced_classes_of_32x32_with_a_test_set():
    s = load_splits(cfg(dataset="shapes", val_split=0.1))
    assert_well_formed(s)
    assert s.class_names == shapes.CLASS_NAMES and s.num_classes == 10
    assert (len(s.train), len(s.val), len(s.test)) == (5400, 600, 1000)
    assert s.train.images.shape[1:] == (3, 32, 32)
    counts = torch.bincount(s.train.labels, minlength=10)
    assert counts.min() > 450 and counts.max() < 650


def test_shapes_are_the_same_images_every_time():
    # Around the in-process memo: two real generations.
    first = shapes._generate.__wrapped__(shapes.GENERATION_SEED, 200)
    again = shapes._generate.__wrapped__(shapes.GENERATION_SEED, 200)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    # Not a flat colour: the shape and the noise make every image vary.
    assert first[0].float().std(dim=(1, 2, 3)).min() > 10


def test_shapes_first_classes_and_resize():
    s = load_splits(cfg(dataset="shapes", classes=3, image_size=48, train_subset=300))
    assert s.class_names == shapes.CLASS_NAMES[:3]
    assert set(s.train.labels.tolist()) == {0, 1, 2} and set(s.test.labels.tolist()) == {0, 1, 2}
    assert s.train.images.shape[1:] == (3, 48, 48) and len(s.train) == 300


# --- CIFAR -----------------------------------------------------------------------------------------


def test_cifar10_reads_the_python_batches_through_torchvision(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path, n_train=40, n_test=12)
    accept_cifar(monkeypatch, written)
    s = load_splits(cfg(dataset="cifar10", root=str(tmp_path), cache=False))
    assert_well_formed(s)
    assert s.class_names == written.class_names
    assert torch.equal(s.train.images, torch.from_numpy(written.train_images).permute(0, 3, 1, 2))
    assert s.train.labels.tolist() == written.train_labels
    assert torch.equal(s.test.images, torch.from_numpy(written.test_images).permute(0, 3, 1, 2))
    assert s.test.labels.tolist() == written.test_labels
    assert (s.mean, s.std) == (cifar.LAYOUT["cifar10"]["mean"], cifar.LAYOUT["cifar10"]["std"])


def test_cifar100_first_classes_and_resize(tmp_path, monkeypatch):
    written = write_cifar100(tmp_path, n_train=300, n_test=60)
    accept_cifar(monkeypatch, written)
    s = load_splits(cfg(dataset="cifar100", root=str(tmp_path), classes=20, image_size=40, cache=False))
    assert s.class_names == written.class_names[:20]
    assert len(s.train) == sum(y < 20 for y in written.train_labels)
    assert len(s.test) == sum(y < 20 for y in written.test_labels)
    assert s.train.images.shape[1:] == (3, 40, 40)
    # The colour of each class survives the antialiased resize.
    assert colour_label(s.train.images) == [y % 10 for y in s.train.labels.tolist()]


def test_missing_cifar_is_a_paragraph_naming_the_path_and_the_download_switch(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(DatasetMissing) as err:
        load_splits(cfg(dataset="cifar100", root=str(where)))
    msg = str(err.value)
    assert str(where) in msg and "cifar-100-python" in msg and "data.download=true" in msg
    assert "Traceback" not in msg and err.value.__cause__ is None and err.value.__suppress_context__


def test_corrupted_cifar_says_so(tmp_path):
    write_cifar10(tmp_path, n_train=10, n_test=5)  # checksums differ from the real dataset's
    with pytest.raises(DatasetMissing, match="corrupted"):
        load_splits(cfg(dataset="cifar10", root=str(tmp_path)))


def test_cached_cifar_does_not_go_back_to_torchvision(tmp_path, monkeypatch):
    written = write_cifar10(tmp_path, n_train=30, n_test=10)
    accept_cifar(monkeypatch, written)
    c = cfg(dataset="cifar10", root=str(tmp_path), val_split=5)
    first = load_splits(c)
    monkeypatch.setattr(cifar, "decode", lambda cfg: pytest.fail("decoded again"))
    again = load_splits(c)
    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.val.labels, again.val.labels)
    assert list((tmp_path / ".cnnlab-cache").glob("cifar10-*.pt"))


# --- Tiny ImageNet ---------------------------------------------------------------------------------


def test_tiny_imagenet_sorted_wnids_words_names_and_val_as_test(tmp_path):
    written = write_tiny_imagenet(tmp_path, classes=4, per_class=5, val_per_class=3)
    assert written.wnids != written.sorted_wnids()
    s = load_splits(cfg(dataset="tiny-imagenet", root=str(tmp_path), cache=False))
    assert_well_formed(s)
    assert s.class_names == [written.names[w] for w in written.sorted_wnids()]
    assert (len(s.train), len(s.test)) == (20, 12)
    assert s.train.images.shape[1:] == (3, 64, 64)
    # Label i holds the images of the i-th sorted wnid (the fixture colours them by that index).
    assert colour_label(s.train.images) == s.train.labels.tolist()
    # The fixture's first val image is a grayscale JPEG: read as RGB with three equal channels.
    gray = (s.test.images[:, 0] == s.test.images[:, 1]).flatten(1).all(1) & (
        s.test.images[:, 1] == s.test.images[:, 2]
    ).flatten(1).all(1)
    assert gray.sum() == 1
    assert colour_label(s.test.images[~gray]) == s.test.labels[~gray].tolist()
    assert (s.mean, s.std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_tiny_imagenet_first_k_with_report_002_split(tmp_path):
    write_tiny_imagenet(tmp_path, classes=4, per_class=10, val_per_class=2)
    s = load_splits(
        cfg(dataset="tiny-imagenet", root=str(tmp_path), classes=2, val_split=0.1, test_split=0.1, cache=False)
    )
    assert s.num_classes == 2
    # 0.8 / 0.1 / 0.1 of the first two classes' 20 training images; the val/ images are not used.
    assert (len(s.train), len(s.val), len(s.test)) == (16, 2, 2)
    assert colour_label(s.test.images) == s.test.labels.tolist()
    together = torch.cat([s.train.images, s.val.images, s.test.images]).flatten(1)
    assert len(torch.unique(together, dim=0)) == 20  # disjoint


def test_missing_tiny_imagenet_names_the_folder_and_the_url(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_splits(cfg(dataset="tiny-imagenet", root=str(tmp_path)))
    msg = str(err.value)
    assert (
        str(tmp_path / "tiny-imagenet-200") in msg and "tiny-imagenet-200.zip" in msg and "val_annotations.txt" in msg
    )


# --- image folder ----------------------------------------------------------------------------------


def test_folder_reads_sorted_classes_with_exact_pixels(tmp_path):
    written = write_image_folder(tmp_path, classes=("zebra", "ant", "moth"), per_class=4, size=12)
    s = load_splits(cfg(dataset="folder", root=str(tmp_path), cache=False))
    assert_well_formed(s)
    assert s.class_names == ["ant", "moth", "zebra"] and s.test is None and s.val is None
    expected = {
        img.tobytes(): written.classes.index(name)
        for name, items in written.images["train"].items()
        for _, img in items
    }
    got = {
        img.permute(1, 2, 0).numpy().tobytes(): int(y) for img, y in zip(s.train.images, s.train.labels, strict=True)
    }
    assert got == expected


def test_folder_uses_its_own_val_and_test_folders(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), per_class=6, val_per_class=2, test_per_class=3, size=8)
    s = load_splits(cfg(dataset="folder", root=str(tmp_path), val_split=0.5, cache=False))
    assert (len(s.train), len(s.val), len(s.test)) == (12, 4, 6)
    assert colour_label(s.val.images) == s.val.labels.tolist()
    # A test split carved from train replaces test/.
    s = load_splits(cfg(dataset="folder", root=str(tmp_path), test_split=0.25, cache=False))
    assert (len(s.train), len(s.test)) == (9, 3)


def test_folder_any_pil_format_converted_to_rgb_and_resized(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), per_class=2, size=20, ext="jpg")
    Image.new("L", (30, 10), 128).save(tmp_path / "train" / "a" / "gray.bmp")
    Image.new("RGBA", (8, 8), (1, 2, 3, 4)).save(tmp_path / "train" / "b" / "alpha.webp")
    (tmp_path / "train" / "a" / "notes.txt").write_text("not an image")
    s = load_splits(cfg(dataset="folder", root=str(tmp_path), image_size=16, cache=False))
    assert s.train.images.shape == (6, 3, 16, 16)
    assert describe(cfg(dataset="folder", root=str(tmp_path), image_size=16)) == (2, 3, 16)


def test_folder_of_mixed_sizes_names_the_odd_file(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), per_class=2, size=16)
    odd = tmp_path / "train" / "b" / "odd.png"
    Image.new("RGB", (20, 20)).save(odd)
    with pytest.raises(DatasetUnusable) as err:
        load_splits(cfg(dataset="folder", root=str(tmp_path), cache=False))
    assert str(odd) in str(err.value) and "data.image_size" in str(err.value)


def test_folder_val_class_unknown_to_train_is_an_error(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), per_class=2, size=8)
    write_image_folder(tmp_path / "elsewhere", classes=("c",), per_class=1, size=8)
    (tmp_path / "elsewhere" / "train").rename(tmp_path / "val")
    with pytest.raises(DatasetUnusable, match="c"):
        load_splits(cfg(dataset="folder", root=str(tmp_path), val_split=0.1, cache=False))


def test_describe_reads_folder_names_and_one_header_only(tmp_path, monkeypatch):
    write_image_folder(tmp_path, classes=("a", "b", "c"), per_class=2, size=24)
    monkeypatch.setattr(folder, "decode_files", lambda *a: pytest.fail("describe decoded images"))
    assert describe(cfg(dataset="folder", root=str(tmp_path))) == (3, 3, 24)
    assert describe(cfg(dataset="folder", root=str(tmp_path), classes=2, image_size=32)) == (2, 3, 32)
    assert describe(cfg(dataset="cifar100", root=str(tmp_path / "absent"), classes=10)) == (10, 3, 32)
    assert describe(cfg(dataset="tiny-imagenet", root=str(tmp_path / "absent"))) == (200, 3, 64)
    with pytest.raises(DatasetMissing) as err:
        describe(cfg(dataset="folder", root=str(tmp_path / "absent")))
    assert str(tmp_path / "absent" / "train") in str(err.value)
    with pytest.raises(DatasetUnusable, match="only 3"):
        describe(cfg(dataset="folder", root=str(tmp_path), classes=5))


# --- subsets and splits ----------------------------------------------------------------------------


def test_val_split_by_fraction_and_count_same_seed_same_split():
    a = load_splits(cfg(dataset="shapes", val_split=0.2, train_subset=500, split_seed=3))
    b = load_splits(cfg(dataset="shapes", val_split=0.2, train_subset=500, split_seed=3))
    c = load_splits(cfg(dataset="shapes", val_split=0.2, train_subset=500, split_seed=4))
    assert (len(a.train), len(a.val)) == (400, 100)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.val.labels, b.val.labels)
    assert not torch.equal(a.val.images, c.val.images)
    n = load_splits(cfg(dataset="shapes", val_split=150, train_subset=500))
    assert (len(n.train), len(n.val)) == (350, 150)


def test_split_is_torch_random_split_with_the_seed():
    s = load_splits(cfg(dataset="shapes", val_split=1000, split_seed=0))
    pool_x, _ = data.decode(cfg(dataset="shapes")).train
    # Report 001's listing: torch.manual_seed(seed), then random_split(full_dataset, [train, valid]).
    torch.manual_seed(0)
    train_idx, val_idx = torch.utils.data.random_split(range(6000), [5000, 1000])
    assert torch.equal(s.val.images, pool_x[sorted(val_idx.indices)])
    assert torch.equal(s.train.images, pool_x[sorted(train_idx.indices)])


def test_splits_are_disjoint_and_cover_the_subset():
    s = load_splits(cfg(dataset="shapes", train_subset=1000, val_split=0.1, test_split=0.1))
    assert (len(s.train), len(s.val), len(s.test)) == (800, 100, 100)
    together = torch.cat([s.train.images, s.val.images, s.test.images]).flatten(1)
    assert len(torch.unique(together, dim=0)) == 1000


def test_a_split_that_leaves_nothing_to_train_is_refused():
    with pytest.raises(DatasetUnusable, match="leaving none"):
        load_splits(cfg(dataset="shapes", train_subset=100, val_split=100))


# --- normalisation ---------------------------------------------------------------------------------


def test_normalisation_choices(tmp_path):
    written = write_image_folder(tmp_path, classes=("a", "b", "c"), per_class=5, size=8)
    pixels = np.stack([img for items in written.images["train"].values() for _, img in items]) / 255.0
    base = dict(dataset="folder", root=str(tmp_path), cache=False, val_split=0.4)
    s = load_splits(cfg(**base, normalize="dataset"))
    # 'dataset' on a folder: measured over all its training images, before the split.
    assert np.allclose(s.mean, pixels.mean(axis=(0, 1, 2)), atol=1e-4)
    assert np.allclose(s.std, pixels.std(axis=(0, 1, 2)), atol=1e-4)
    c = load_splits(cfg(**base, normalize="compute"))
    train = c.train.images.double() / 255
    assert np.allclose(c.mean, train.mean(dim=(0, 2, 3)).numpy(), atol=1e-4)
    assert np.allclose(c.std, train.std(dim=(0, 2, 3), correction=0).numpy(), atol=1e-4)
    g = load_splits(cfg(**base, normalize="given", mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6)))
    assert (g.mean, g.std) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    n = load_splits(cfg(**base, normalize="none"))
    assert (n.mean, n.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


# --- the decoded cache -----------------------------------------------------------------------------


def test_cache_second_load_is_equal_faster_and_decodes_nothing(tmp_path, monkeypatch):
    write_tiny_imagenet(tmp_path, classes=4, per_class=60, val_per_class=10)
    c = cfg(dataset="tiny-imagenet", root=str(tmp_path), val_split=0.1)
    t0 = time.perf_counter()
    first = load_splits(c)
    t1 = time.perf_counter()
    monkeypatch.setattr(tiny_imagenet, "decode_files", lambda *a: pytest.fail("decoded again"))
    again = load_splits(c)
    t2 = time.perf_counter()
    for a, b in ((first.train, again.train), (first.val, again.val), (first.test, again.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert first.class_names == again.class_names and (first.mean, first.std) == (again.mean, again.std)
    assert t2 - t1 < t1 - t0
    assert len(list((tmp_path / ".cnnlab-cache").glob("tiny-imagenet-*.pt"))) == 1


def test_cache_follows_changed_files_and_replaces_the_stale_entry(tmp_path):
    write_image_folder(tmp_path / "d", classes=("a", "b"), per_class=3, size=8)
    c = cfg(dataset="folder", root=str(tmp_path / "d"))
    cache_dir = tmp_path / "cache"
    first = load_splits(c, cache_dir=cache_dir)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(tmp_path / "d" / "train" / "a" / "new.png")
    again = load_splits(c, cache_dir=cache_dir)
    assert len(again.train) == len(first.train) + 1
    assert len(list(cache_dir.glob("*.pt"))) == 1  # the stale entry is gone
    # A different resize is a different entry beside it.
    load_splits(cfg(dataset="folder", root=str(tmp_path / "d"), image_size=10), cache_dir=cache_dir)
    assert len(list(cache_dir.glob("*.pt"))) == 2
    assert not list((tmp_path / "d").glob(".cnnlab-cache"))


def test_cache_off_writes_nothing_and_a_broken_entry_is_rebuilt(tmp_path):
    write_image_folder(tmp_path, classes=("a", "b"), per_class=2, size=8)
    load_splits(cfg(dataset="folder", root=str(tmp_path), cache=False))
    assert not (tmp_path / ".cnnlab-cache").exists()
    c = cfg(dataset="folder", root=str(tmp_path))
    first = load_splits(c)
    (entry,) = (tmp_path / ".cnnlab-cache").glob("*.pt")
    entry.write_bytes(b"truncated")
    again = load_splits(c)
    assert torch.equal(first.train.images, again.train.images)
    assert entry.stat().st_size > 100


def test_a_split_handed_out_whole_is_the_callers_to_change():
    whole = load_splits(cfg(dataset="shapes"))
    assert len(whole.train) == 6000
    whole.train.images.zero_()
    whole.test.images.zero_()
    again = load_splits(cfg(dataset="shapes"))
    assert again.train.images.float().mean() > 50 and again.test.images.float().mean() > 50


# --- folders that cannot train ------------------------------------------------------------------------


def test_a_folder_of_one_class_is_refused(tmp_path):
    write_image_folder(tmp_path, classes=("only",), per_class=3)
    with pytest.raises(DatasetUnusable, match="one class folder"):
        describe(cfg(dataset="folder", root=str(tmp_path)))
    with pytest.raises(DatasetUnusable, match="two classes or more"):
        load_splits(cfg(dataset="folder", root=str(tmp_path), cache=False))


def test_a_symlink_loop_in_a_folder_is_followed_once(tmp_path):
    written = write_image_folder(tmp_path, classes=("a", "b"), per_class=3)
    (tmp_path / "train" / "a" / "again").symlink_to(tmp_path / "train" / "a")
    (tmp_path / "train" / "b" / "deep").mkdir()
    (tmp_path / "train" / "b" / "deep" / "up").symlink_to(tmp_path / "train" / "b")
    (tmp_path / "train" / "b" / "nowhere").symlink_to(tmp_path / "absent")
    assert describe(cfg(dataset="folder", root=str(tmp_path))) == (2, 3, 16)
    splits = load_splits(cfg(dataset="folder", root=str(tmp_path), val_split=0, cache=False))
    assert len(splits.train) == sum(len(v) for v in written.images["train"].values())


@pytest.mark.parametrize("damage", ["random bytes", "truncated", "empty"])
def test_a_dry_run_finds_a_corrupt_image_before_the_run_does(tmp_path, damage):
    written = write_image_folder(tmp_path, classes=("a", "b"), per_class=3)
    bad = written.images["train"]["b"][1][0]
    data = bad.read_bytes()
    bad.write_bytes({"random bytes": bytes(range(200)), "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(DatasetUnusable) as err:
        describe(cfg(dataset="folder", root=str(tmp_path)))
    assert str(bad) in str(err.value)
    with pytest.raises(DatasetUnusable):  # the run fails on the same file
        load_splits(cfg(dataset="folder", root=str(tmp_path), cache=False))
