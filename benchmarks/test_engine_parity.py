"""Engine parity and overhead: Poutyne and Lightning against each other and against a plain loop.

Same model, data, seed and recipe through both engines: test accuracy within PARITY_TOLERANCE.
Training images/s of each engine over a plain PyTorch loop is reported as a ratio measured in this
one run (goal >= 0.95); it lands in pytest-benchmark's extra_info and is printed, not asserted,
because shared CPUs are too noisy for a speed assertion. The plain loop runs before and after the
engines and the faster of the two is the reference, so warm-up never flatters an engine.
"""

from __future__ import annotations

import pytest

from benchmarks.plugin import case_spec
from harness import runner
from harness.catalog import EFFICIENTNETV2, FASTVIT
from harness.engines.reference import train_images_per_s

PARITY_TOLERANCE = 0.10  # absolute test accuracy; the smoke test sets hold ~50-80 images
PARITY_EPOCHS = 2


@pytest.mark.parametrize("seed", [EFFICIENTNETV2, FASTVIT], ids=lambda s: s.model)
def test_engine_parity(seed, run_settings, pytestconfig, benchmark):
    spec = case_spec(pytestconfig, seed, weights="random", precision="32-true", devices=1).replace(benchmark="parity")
    spec = spec.with_recipe(epochs=pytestconfig.getoption("--epochs") or PARITY_EPOCHS)

    def measure():
        plain_job = lambda: runner.build_job(spec, run_settings, runner.prepare(spec, run_settings))  # noqa: E731
        before = train_images_per_s(plain_job())
        records = {e: runner.run(spec.replace(engine=e), run_settings) for e in ("poutyne", "lightning")}
        after = train_images_per_s(plain_job())
        return max(before, after), records

    plain, records = benchmark.pedantic(measure, rounds=1, iterations=1)
    ratios = {e: r.train_images_per_s / plain for e, r in records.items()}
    accuracy = {e: r.test["test_acc"] for e, r in records.items()}
    benchmark.extra_info.update(
        plain_images_per_s=round(plain, 2),
        **{f"{e}_images_per_s": round(r.train_images_per_s, 2) for e, r in records.items()},
        **{f"{e}_over_plain": round(v, 3) for e, v in ratios.items()},
        **{f"{e}_test_acc": round(v, 4) for e, v in accuracy.items()},
    )
    print(f"\n{spec.model}: plain {plain:.1f} img/s; " + "; ".join(f"{e} {records[e].train_images_per_s:.1f} img/s = {ratios[e]:.3f}x plain" for e in records))
    assert abs(accuracy["poutyne"] - accuracy["lightning"]) <= PARITY_TOLERANCE, f"engines disagree: {accuracy}"
