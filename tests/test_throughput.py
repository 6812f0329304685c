"""Feeding a device: the real-resolution stand-in, the throughput command, and --limit-batches on the
full recipe, all on generated real-size JPEGs."""

from __future__ import annotations

import json

import pytest
import timm
from PIL import Image

from harness import cli, models
from harness.catalog import KVASIR_CLASSES
from harness.data.photos import RESOLUTION_MIX, generate_kvasir
from harness.results.record import RunResult

SPLIT = "0.5,0.25,0.25"  # the recipe's 5564/1600/832 counts need all 8000 images; the rest of the recipe is unchanged


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return generate_kvasir(tmp_path_factory.mktemp("standin"), per_class=4, seed=1)


def test_the_standin_has_kvasirs_classes_and_resolutions_as_real_jpegs(standin):
    assert sorted(p.name for p in standin.iterdir()) == sorted(KVASIR_CLASSES)
    files = sorted(standin.rglob("*.jpg"))
    assert len(files) == 32
    sizes = {Image.open(f).size for f in files}
    assert sizes <= {size for size, _ in RESOLUTION_MIX} and (720, 576) in sizes
    small = [f.stat().st_size for f in files if Image.open(f).size == (720, 576)]
    assert (
        min(small) > 40_000 and max(small) < 250_000
    )  # photo-like: a real 720x576 endoscopy JPEG is tens of KB, not 2 KB


def test_generating_into_an_existing_standin_is_refused(standin, capsys):
    code = cli.main(["kvasir-standin", "--out", str(standin.parent), "--per-class", "1"])
    assert code == 2 and f"{standin} exists; remove it or choose another --out" in capsys.readouterr().err


@pytest.mark.slow
def test_throughput_measures_loader_model_and_engine_and_names_the_bottleneck(standin, tmp_path, capsys):
    out = tmp_path / "throughput.json"
    code = cli.main(
        [
            "throughput",
            "--recipe",
            "fastvit",
            "--data",
            str(standin),
            "--split",
            SPLIT,
            "--image-size",
            "64",
            "--batch-size",
            "8",
            "--batches",
            "3",
            "--workers",
            "1",
            "--json",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--wandb",
            "off",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    figures = json.loads(out.read_text())
    rates = ("loader_images_per_s", "loader_images_per_s_uncached", "model_images_per_s", "engine_images_per_s")
    assert all(figures[k] > 0 for k in rates), figures
    assert (
        figures["workers"] == 1 and figures["device"].startswith("CPU") and figures["bottleneck"] in ("loader", "model")
    )
    assert 0.0 < figures["engine_data_wait_share"] < 1.0 and figures["precision"] == "32-true"
    assert figures["compile"] is False and figures["fused_optimizer"] is False
    assert f"bottleneck: the {figures['bottleneck']}" in printed
    # decoding 720x576+ JPEGs per sample costs far more than reading decoded pixels
    assert figures["loader_images_per_s"] > figures["loader_images_per_s_uncached"]


@pytest.mark.slow
def test_limit_batches_runs_the_full_recipe_on_real_size_images_in_a_minute(standin, tmp_path, capsys):
    weights = tmp_path / "weights"
    models.save_weights(
        timm.create_model("fastvit_t8", num_classes=1000), weights / "fastvit_t8.safetensors", {"made_by": "this test"}
    )
    code = cli.main(
        [
            "run",
            "--recipe",
            "fastvit",
            "--profile",
            "full",
            "--data",
            str(standin),
            "--split",
            SPLIT,
            "--weights",
            "pretrained",
            "--weights-dir",
            str(weights),
            "--limit-batches",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--workers",
            "1",
            "--results-dir",
            str(tmp_path / "results"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--wandb",
            "off",
        ]
    )
    assert code == 0, capsys.readouterr().err
    (path,) = (tmp_path / "results").glob("*/result.json")
    record = RunResult.load(path)
    assert record.spec["limit_batches"] == 1 and record.run_id.startswith(
        "fastvit_t8-kvasir-lightning-32true-1dev-pretrained-limit1-"
    )
    assert (
        record.spec["recipe"]["image_size"] == 384 and record.spec["profile"] == "full"
    )  # the full recipe, not the smoke one
    assert record.weights["kind"] == "file" and record.weights["path"].endswith("fastvit_t8.safetensors")
    assert record.loader["decode_cache"]["short_side"] == 628
    assert (
        len(record.history) == 1
        and record.history[0]["images_per_s"] > 0
        and set(record.test) >= {"test_acc", "test_loss"}
    )
