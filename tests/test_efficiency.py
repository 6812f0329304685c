"""Distance to the limit: FLOPs against the papers, the measured and vendor peaks, MFU and energy in
records, tables, figures and the gate, and a profile of a real run."""

import json
import math

import pytest
import timm

from harness import runner
from harness.catalog import EFFICIENTNETV2, FASTVIT, make_spec
from harness.cli import main
from harness.efficiency import flops, peak
from harness.results.compare import compare
from harness.results.figures import distance_to_limit
from harness.results.observations import run_of
from harness.results.tables import precision_devices, runs_table
from harness.settings import default_cache_dir
from tests.conftest import TINY_MODEL, tiny_spec
from tests.test_reports import record


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, size, published_gmacs, source",
    [("resnet18", 224, 1.8, "He et al. 2016, Table 1"), ("fastvit_t8", 256, 0.7, "Vasu et al. 2023, Table 2")],
)
def test_forward_flops_match_the_papers_within_2_percent(model, size, published_gmacs, source):
    counted = flops.count(timm.create_model(model, pretrained=False), size)
    gmacs = counted.forward_per_image / 2 / 1e9  # a multiply-add is 2 FLOPs
    assert gmacs == pytest.approx(published_gmacs, rel=0.02), (
        f"{model} at {size} px: {gmacs:.3f} G multiply-adds, {source} gives {published_gmacs}"
    )
    assert counted.train_per_image == 3 * counted.forward_per_image


def test_flops_are_counted_once_per_model_size_and_classes(tmp_path):
    model = timm.create_model(TINY_MODEL, pretrained=False, num_classes=4)
    first = flops.cached(model, TINY_MODEL, 32, 4, tmp_path)
    stored = json.loads((tmp_path / flops.CACHE_FILE).read_text())
    assert stored == {f"{TINY_MODEL}@32px/4": first.as_dict()} and first.forward_per_image > 0
    stored[f"{TINY_MODEL}@32px/4"]["forward_per_image"] = 1.0  # what is read back is the file's, not a new count
    (tmp_path / flops.CACHE_FILE).write_text(json.dumps(stored))
    assert flops.cached(model, TINY_MODEL, 32, 4, tmp_path).forward_per_image == 1.0
    assert flops.cached(model, TINY_MODEL, 64, 4, tmp_path).forward_per_image == pytest.approx(
        4 * first.forward_per_image, rel=0.05
    )  # 4x the pixels


def test_the_cpu_peak_is_measured_once_with_its_date(tmp_path):
    import torch

    measured = peak.cached(torch.device("cpu"), "32-true", tmp_path)
    assert 0.001 < measured.tflops < 100 and measured.compute_type == "float32" and len(measured.measured_on) == 10
    (key,) = json.loads((tmp_path / peak.CACHE_FILE).read_text())
    assert key.endswith("|cpu|32-true") and peak.cached(torch.device("cpu"), "32-true", tmp_path) == measured


@pytest.mark.parametrize(
    "gpu, precision, expected",
    [
        ("NVIDIA H200", "bf16-mixed", 989.4),
        ("NVIDIA H100 80GB HBM3", "32-true", 494.7),
        ("NVIDIA A100-SXM4-80GB", "16-mixed", 312.0),
        ("NVIDIA L4", "bf16-mixed", 121.0),
        ("NVIDIA L40S", "bf16-mixed", 362.05),
        ("NVIDIA GeForce RTX 4090", "bf16-mixed", None),
        (None, "32-true", None),
    ],
)
def test_vendor_peaks_are_the_datasheets_dense_figures(gpu, precision, expected):
    found = peak.vendor_peak(gpu, precision)
    assert (found[0] if found else None) == expected
    assert found is None or "datasheet" in found[1]


@pytest.mark.slow
def test_a_record_carries_flops_tflops_mfu_and_says_why_it_has_no_energy(tiny_folder, settings):
    record = runner.run(tiny_spec().with_recipe(epochs=2), settings.replace(data_root=tiny_folder))
    assert record.flops["train_per_image"] == 3 * record.flops["forward_per_image"] > 0
    assert record.achieved_tflops == pytest.approx(record.flops["train_per_image"] * record.steady_images_per_s / 1e12)
    measured = peak.cached(__import__("torch").device("cpu"), "32-true", default_cache_dir())
    assert record.mfu["peak_measured_tflops"] == measured.tflops and record.mfu["devices"] == 1
    assert (
        record.mfu["measured"] == pytest.approx(record.achieved_tflops / measured.tflops)
        and 0 < record.mfu["measured"] < 1
    )
    assert (
        record.mfu["vendor"] is None
        and record.energy is None
        and "no energy counter for a CPU run" in record.energy_note
    )
    assert all("energy_j" not in row for row in record.history)


def with_limits(rec, tflops, mfu_measured, joules=None):
    rec.flops, rec.achieved_tflops = {"forward_per_image": 1e9, "train_per_image": 3e9}, tflops
    rec.mfu = {
        "measured": mfu_measured,
        "vendor": mfu_measured / 2,
        "peak_measured_tflops": tflops / mfu_measured,
        "peak_vendor_tflops": 2 * tflops / mfu_measured,
        "devices": 1,
    }
    rec.energy = (
        {"joules": 100.0, "kwh": 100 / 3.6e6, "joules_per_image": joules, "mean_watts": 300.0}
        if joules is not None
        else None
    )
    return rec


def test_tables_and_figures_show_the_distance_to_the_limit(tmp_path):
    spec = make_spec(FASTVIT, profile="full", weights="pretrained", precision="bf16-mixed", num_classes=8)
    rows = precision_devices(
        [with_limits(record(spec, 0.9, 0.3), 123.4, 0.25, joules=0.5), record(spec.replace(devices=2), 0.9, 0.3)]
    ).rows
    columns = precision_devices([]).columns
    cells = {c: rows[0][columns.index(c)] for c in ("TFLOP/s", "MFU %", "MFU % vendor", "J/image")}
    assert cells == {"TFLOP/s": "123", "MFU %": "25.00", "MFU % vendor": "12.50", "J/image": "0.5"}
    assert [rows[1][columns.index(c)] for c in ("TFLOP/s", "MFU %", "J/image")] == [
        "-",
        "-",
        "-",
    ]  # a record from before the figures
    runs = runs_table([with_limits(record(spec, 0.9, 0.3), 123.4, 0.25)])
    assert [runs.rows[0][runs.columns.index(c)] for c in ("GFLOPs/image", "TFLOP/s", "MFU %")] == ["3", "123", "25.00"]
    assert (
        distance_to_limit(
            [with_limits(record(spec, 0.9, 0.3), 123.4, 0.25)], "fastvit", tmp_path / "limit.png"
        ).read_bytes()[:4]
        == b"\x89PNG"
    )
    assert distance_to_limit([record(spec, 0.9, 0.3)], "fastvit", tmp_path / "none.png") is None


def test_the_gate_watches_joules_per_image_where_both_sides_have_it():
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="random", num_classes=6)
    base = {spec.id: [run_of(with_limits(record(spec, 0.9, 0.3), 1.0, 0.5, joules=1.00))]}
    same = compare(base, {spec.id: [run_of(with_limits(record(spec, 0.9, 0.3), 1.0, 0.5, joules=1.05))]})
    worse = compare(base, {spec.id: [run_of(with_limits(record(spec, 0.9, 0.3), 1.0, 0.5, joules=1.10))]})
    assert same.passed and [v.metric for v in worse.regressions] == ["joules_per_image"]
    cpu = compare(base, {spec.id: [run_of(record(spec, 0.9, 0.3))]})  # the other side has no counter: not undecided
    assert cpu.passed and not cpu.undecided and "joules_per_image" not in {v.metric for v in cpu.verdicts}


@pytest.mark.slow
def test_profile_writes_a_chrome_trace_and_the_top_operators_and_compares_with_an_earlier_one(
    tiny_folder, tmp_path, capsys
):
    args = [
        "profile",
        "--model",
        TINY_MODEL,
        "--data",
        str(tiny_folder),
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--wandb",
        "off",
        "--warmup",
        "1",
        "--active",
        "2",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--results-dir",
        str(tmp_path / "r"),
    ]
    assert main([*args, "--out", str(tmp_path / "first")]) == 0
    trace = json.loads((tmp_path / "first" / "trace.json").read_text())
    assert any(event.get("ph") == "X" and "conv" in event.get("name", "") for event in trace["traceEvents"])
    recorded = json.loads((tmp_path / "first" / "profile.json").read_text())
    assert recorded["steps"] == 2 and recorded["time_kind"] == "CPU" and len(recorded["operators"]) >= 5
    shares = [o["share"] for o in recorded["operators"]]
    assert shares == sorted(shares, reverse=True) and math.isclose(sum(shares), 1.0, rel_tol=1e-6)
    assert "| `aten::" in (tmp_path / "first" / "ops.md").read_text()
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "second"), "--against", str(tmp_path / "first")]) == 0
    assert "against" in capsys.readouterr().out
    assert main([*args, "--against", str(tmp_path / "nowhere")]) == 2
    assert "holds no readable profile.json" in capsys.readouterr().err
