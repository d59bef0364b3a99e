"""`cnnlab bench` and `cnnlab bench --ui` on tiny settings: they run end to end and report what
they promise. Nothing here is timed; the figures only have to be there and be positive."""

from __future__ import annotations

import io
import json

import pytest
import torch
from PIL import Image
from rich.console import Console

from engine.bench import BenchError
from engine.bench import images as bench_images
from engine.bench import render as bench_render
from engine.bench import reports as bench_reports
from engine.bench import runner as bench_runner
from engine.bench import targets as bench_targets
from engine.cli import main as cli_main
from engine.experiment.config import Experiment
from engine.experiment.overrides import apply_overrides
from engine.experiment.presets import get_preset
from tui import bench as ui_bench


def _positive(stats: dict) -> bool:
    return stats["median"] > 0 and all(v > 0 for v in stats["runs"])


@pytest.mark.slow
def test_engine_bench_end_to_end(capsys):
    code = cli_main(["bench", "--models", "simplecnn", "--steps", "2", "--repeats", "1", "--warmup", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"machine", "goals", "models", "memory", "cache"}
    (row,) = result["models"]
    assert row["model"] == "simplecnn" and row["preset"] == "simplecnn-cifar100"
    assert row["batch"] == 128 and row["classes"] == 100 and row["image_size"] == 32
    for way in ("pure", "engine", "reports_w0", "reports_w2"):
        assert _positive(row[way]), way
        assert len(row[way]["runs"]) == 1
    assert row["reports_best_workers"] in (0, 2)
    assert row["engine_vs_pure"] > 0 and row["engine_vs_reports"] > 0
    # The engine (auto unmeasured in tests: the rule) ran a way the bench's pure compute timed.
    assert row["engine_way"] == row["rule"] and row["engine_way"] in row["pure_ways"]
    assert row["pure"] == row["pure_ways"][row["pure_best"]]
    assert row["epoch_end_s"] >= 0 and 0 <= row["epoch_end_share"] < 1
    (mem,) = result["memory"]
    assert mem["dataset"] == "cifar100" and mem["train_images"] == 45000
    assert mem["float32_bytes"] == 4 * mem["uint8_bytes"] == 4 * 45000 * 3 * 32 * 32
    cache = result["cache"]
    assert cache["images"] >= bench_images.CACHE_MIN_IMAGES and cache["held_dtype"] == "uint8"
    assert cache["first_s"] > 0 and cache["second_s"] > 0 and cache["speedup"] > 0

    # The table renders from the same result, with both ratios and the cache line.
    out = io.StringIO()
    Console(file=out, width=80).print(bench_render.render(result))
    text = out.getvalue()
    assert "simplecnn" in text and "eng/pure" in text and "eng/rep" in text and "decoded cache" in text


def test_reports_pipeline_makes_pil_images_through_torchvision_transforms():
    from torchvision import transforms

    images = torch.full((6, 3, 32, 32), 255, dtype=torch.uint8)
    labels = torch.arange(6)
    seen = []
    ds = bench_reports.PILImages(images, labels, lambda img: seen.append(img) or "x")
    assert len(ds) == 6 and ds[3] == ("x", 3)
    assert isinstance(seen[0], Image.Image) and seen[0].size == (32, 32) and seen[0].mode == "RGB"

    t = bench_reports.reports_transform(32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    kinds = [type(s) for s in t.transforms]
    assert kinds == [transforms.RandomCrop, transforms.RandomHorizontalFlip, transforms.ToTensor, transforms.Normalize]
    assert t.transforms[0].padding == 4
    # White images padded by 4 and cropped at random: some crops show the black padding.
    torch.manual_seed(0)
    outs = [bench_reports.PILImages(images, labels, t)[i][0] for i in range(6)]
    assert all(o.dtype == torch.float32 and o.shape == (3, 32, 32) for o in outs)
    assert any((o == 0).any() for o in outs) and all(o.max() == 1.0 for o in outs)

    # The bench's reports' way is built on exactly that dataset and transform.
    exp = get_preset("simplecnn-cifar100").experiment
    pipe = bench_reports.ReportsPipeline(exp, torch.device("cpu"), images, labels, (0.5,) * 3, (0.25,) * 3, 10)
    assert isinstance(pipe.dataset, bench_reports.PILImages)
    assert [type(s) for s in pipe.dataset.transform.transforms] == kinds
    assert pipe.rt.precision == "fp32" and not pipe.rt.channels_last
    assert pipe.loader(0).num_workers == 0 and pipe.loader(2).num_workers == 2


def test_decoded_cache_timing_on_a_folder_dataset(tmp_path):
    bench_images.write_folder_dataset(tmp_path, 24, 4, 32)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["c000", "c001", "c002", "c003"]
    c = bench_images.time_decoded_cache(tmp_path)
    assert c["images"] == 24 and c["held_dtype"] == "uint8" and c["held_bytes"] == 24 * 3 * 32 * 32
    assert list((tmp_path / ".cnnlab-cache").glob("*.pt"))


def test_engine_experiment_keeps_the_recipe_and_swaps_the_data(tmp_path):
    exp = get_preset("backbone-cifar10").experiment
    e = bench_targets.engine_experiment(exp, tmp_path, 512)
    assert (e.data.dataset, e.data.root, e.data.train_subset, e.data.val_split) == ("folder", str(tmp_path), 512, 0)
    assert e.train.epochs == 1 and e.schedule.name == "constant"  # plateau needs a validation split
    assert (e.model, e.optim, e.augment) == (exp.model, exp.optim, exp.augment)
    assert (e.train.batch_size, e.train.precision, e.train.channels_last) == (
        256,
        exp.train.precision,
        exp.train.channels_last,
    )


def test_plans_and_targets():
    targets = bench_targets.resolve_targets(models=["simplecnn", "backbone"])
    by = {t.label: t for t in targets}
    assert by["backbone"].batch == 256 and (by["backbone"].steps, by["backbone"].repeats) == (1, 2)
    assert by["simplecnn"].repeats == bench_targets.DEFAULT_REPEATS
    (t,) = bench_targets.resolve_targets(
        model="mobilenet", batch=32, steps=3, repeats=1, sets={"train.precision": "fp32"}
    )
    assert (t.batch, t.steps, t.repeats, t.exp.train.precision, t.exp.data.dataset) == (32, 3, 1, "fp32", "cifar100")
    with pytest.raises(BenchError, match="not one of"):
        bench_targets.resolve_targets(models=["lenet"])
    assert bench_targets.train_split_images(get_preset("mobilenet-cifar100-lr").experiment) == 40000
    assert bench_targets.train_split_images(apply_overrides(Experiment(), {"data.dataset": "folder"})) is None


def test_spread_and_percentile():
    s = bench_runner.spread([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["median"] == 3.0 and s["iqr"] == 2.0 and s["runs"] == [4.0, 1.0, 3.0, 2.0, 5.0]
    assert bench_runner.spread([7.0])["iqr"] == 0.0
    assert ui_bench.percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert ui_bench.percentile(list(range(101)), 95) == 95.0
    assert ui_bench.percentile([], 95) == 0.0


def test_bench_cli_usage_errors(capsys):
    assert cli_main(["bench", "--ui"]) == 2
    assert "cnnlab bench --ui" in capsys.readouterr().err
    assert cli_main(["bench", "--models", "lenet", "--json"]) == 2
    assert cli_main(["bench", "simplecnn-cifar100", "--model", "mobilenet"]) == 2
    assert cli_main(["bench", "--steps", "0"]) == 2


@pytest.mark.slow
def test_ui_bench_end_to_end(capsys):
    code = ui_bench.main(["--ui", "--starts", "1", "--repeats", "1", "--images", "320", "--epochs", "1", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"machine", "goals", "cold_start", "lateness", "charts", "throughput"}
    start = result["cold_start"]
    assert start["screen"] == "PickScreen" and start["presets_shown"] > 0
    assert start["torch_imported"] is False and start["torchvision_imported"] is False
    assert start["median_s"] > 0 and len(start["runs_s"]) == 1
    lat = result["lateness"]
    assert lat["ticks"] > 0 and 0 <= lat["p50_ms"] <= lat["p95_ms"] <= lat["max_ms"]
    charts = result["charts"]
    assert charts["points"] == 500 and charts["thinned_ms"] > 0 and charts["unthinned_ms"] > 0
    assert charts["thinned_to"] < charts["points"]
    import tui.thinning
    import tui.widgets.charts

    assert tui.widgets.charts.thin is tui.thinning.thin  # the unthinned measure puts thinning back
    tp = result["throughput"]
    assert tp["console_ips"] > 0 and tp["headless_ips"] > 0 and tp["ratio"] > 0
    assert 0 < tp["ui_thread_share"] < 1  # the console's thread drew something, and is not a core's worth
    out = io.StringIO()
    Console(file=out, width=100).print(ui_bench.render(result))
    assert "start-up to the picker" in out.getvalue() and "the console's own thread" in out.getvalue()
