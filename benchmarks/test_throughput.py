"""Where FastViT's training time goes on this machine, on the real-resolution Kvasir stand-in.

`harness.throughput` measures the loader alone (decoded cache and files), the model's training step
alone and the engine end to end in one run; the figures land in pytest-benchmark's extra_info and
are printed, never asserted (shared machines are too noisy for speed assertions). The full profile
measures the recipe as published (384 px, batch 64; bf16 on a GPU that has it); the smoke profile a
CPU-sized version of it (128 px, batch 8, a few batches), on the same real-size JPEGs.
"""

from __future__ import annotations

from harness import throughput
from harness.catalog import FASTVIT
from harness.data import kvasir
from harness.data.photos import generate_kvasir
from harness.hardware import detect
from harness.pytest_plugin import case_spec, option
from harness.spec import Split

# (stand-in images per class, image size, batch, timed batches) per profile
SIZES = {"full": (100, None, None, 20), "smoke": (8, 128, 8, 5)}


def test_fastvit_throughput(run_settings, pytestconfig, benchmark):
    profile = option(pytestconfig, "profile")
    per_class, image_size, batch_size, batches = SIZES[profile]
    root = run_settings.cache_dir / f"kvasir-standin-{per_class}"
    if not (root / kvasir.FOLDER_NAME).is_dir():
        generate_kvasir(root, per_class, processes=detect().cpu_cores)
    hw = detect()
    precision = "bf16-mixed" if hw.gpu_bf16 else "32-true"
    spec = case_spec(pytestconfig, FASTVIT, weights="random", precision=precision, devices=1).replace(
        dataset="kvasir", benchmark="throughput"
    )
    spec = spec.with_recipe(
        split=Split(0.7, 0.15, 0.15), **{k: v for k, v in (("image_size", image_size), ("batch_size", batch_size)) if v}
    )
    settings = run_settings.replace(data_root=root, results_dir=run_settings.results_dir / "throughput")
    result = benchmark.pedantic(throughput.measure, args=(spec, settings, batches), rounds=1, iterations=1)
    benchmark.extra_info.update(result.as_dict())
    print("\n" + result.table())
