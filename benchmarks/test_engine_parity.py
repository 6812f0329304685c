"""Engine parity and overhead: Poutyne and Lightning against each other and against a plain loop.

Same model, data, seed and recipe through both engines: every test metric (loss, accuracy, macro
F1, top-3, top-5) within PARITY_TOLERANCE, since both see the same batches, augmentations and steps.
Steady training images/s (the median after the first epoch) of each engine over a plain PyTorch
loop with the same loaders, device normalisation and meter is reported as a ratio measured in this
one run (goal >= 0.97); it lands in pytest-benchmark's extra_info and is printed, not asserted,
because shared CPUs are too noisy for a speed assertion. The plain loop runs once, after both
engines, so the process's own warm-up (imports, allocator, first kernels) never flatters an
engine; a slow epoch of its own still can, which is why the figures are read as rough.
"""

from __future__ import annotations

import gc

import pytest

from benchmarks.plugin import case_spec
from harness import runner
from harness.catalog import EFFICIENTNETV2, FASTVIT
from harness.engines.reference import plain_loop_speed

PARITY_TOLERANCE = 1e-3  # absolute, every test metric: only float reduction order differs
PARITY_EPOCHS = 3  # a warm-up epoch and two steady ones


@pytest.mark.parametrize("seed", [EFFICIENTNETV2, FASTVIT], ids=lambda s: s.model)
def test_engine_parity(seed, run_settings, pytestconfig, benchmark):
    spec = case_spec(pytestconfig, seed, weights="random", precision="32-true", devices=1).replace(benchmark="parity")
    run_settings = run_settings.replace(results_dir=run_settings.results_dir / "parity")  # measurements, kept apart from the matrix's records
    spec = spec.with_recipe(epochs=pytestconfig.getoption("--epochs") or PARITY_EPOCHS)

    def measure():
        records = {e: runner.run(spec.replace(engine=e), run_settings) for e in ("poutyne", "lightning")}
        gc.collect()  # the engines' loaders (and any worker processes they kept) are gone before the reference runs
        plain = plain_loop_speed(runner.build_job(spec, run_settings, runner.prepare(spec, run_settings)))
        return plain, records

    (plain, plain_wait), records = benchmark.pedantic(measure, rounds=1, iterations=1)
    ratios = {e: r.steady_images_per_s / plain for e, r in records.items()}
    benchmark.extra_info.update(
        plain_images_per_s=round(plain, 2),
        plain_data_wait_share=round(plain_wait or 0.0, 3),
        **{f"{e}_data_wait_share": round(r.data_wait_share or 0.0, 3) for e, r in records.items()},
        **{f"{e}_images_per_s": round(r.steady_images_per_s, 2) for e, r in records.items()},
        **{f"{e}_over_plain": round(v, 3) for e, v in ratios.items()},
        **{f"{e}_{metric}": round(value, 4) for e, r in records.items() for metric, value in r.test.items()},
    )
    print(f"\n{spec.model}: plain {plain:.1f} img/s; " + "; ".join(f"{e} {records[e].steady_images_per_s:.1f} img/s = {ratios[e]:.3f}x plain" for e in records))
    poutyne, lightning = records["poutyne"].test, records["lightning"].test
    apart = {m: (poutyne[m], lightning.get(m)) for m in poutyne if lightning.get(m) is None or abs(poutyne[m] - lightning[m]) > PARITY_TOLERANCE}
    assert set(poutyne) == set(lightning) and not apart, f"engines disagree (poutyne, lightning): {apart}"
