"""Engine parity and overhead: Poutyne and Lightning against each other and against a plain loop.

Same model, data, seed and recipe through both engines: every test metric (loss, accuracy, macro
F1, top-3, top-5) within PARITY_TOLERANCE, since both see the same batches, augmentations and steps.
Steady training images/s (the median after the first epoch) of each engine over a plain PyTorch
loop with the same loaders, device normalisation and meter (and, like it, no wandb run and no
checkpoints, which have their own benchmark) is reported as a ratio measured in this
one run (goal >= 0.97); it lands in pytest-benchmark's extra_info and is printed, not asserted,
because shared CPUs are too noisy for a speed assertion. The plain loop runs after both engines,
so the process's own warm-up (imports, allocator, first kernels) never flatters an engine.

A shared machine drifts by more than 3 % from one run to the next, so one round is read as rough.
`--seeds N` runs N interleaved rounds, one seed each, the plain loop last in the first round and
first in the next (so neither side always runs in the warmer process), and reports each engine's
mean ratio with a 95 % confidence interval over the rounds' ratios (`*_over_plain_interval`, None
for one round); the images/s and test metrics in extra_info are then means over the rounds.
"""

from __future__ import annotations

import gc
from statistics import fmean

import pytest

from harness import runner
from harness.catalog import EFFICIENTNETV2, FASTVIT
from harness.engines.reference import plain_loop_speed
from harness.pytest_plugin import case_spec, option, repeats
from harness.results.stats import mean_interval

PARITY_TOLERANCE = 1e-3  # absolute, every test metric: only float reduction order differs
PARITY_EPOCHS = 3  # a warm-up epoch and two steady ones
ENGINES = ("poutyne", "lightning")


@pytest.mark.parametrize("seed", [EFFICIENTNETV2, FASTVIT], ids=lambda s: s.model)
def test_engine_parity(seed, run_settings, pytestconfig, benchmark):
    spec = case_spec(pytestconfig, seed, weights="random", precision="32-true", devices=1).replace(benchmark="parity")
    # measurements, kept apart from the matrix's records; like the plain loop, no tracker and no checkpoints
    run_settings = run_settings.replace(
        results_dir=run_settings.results_dir / "parity", wandb="off", resume=False, checkpoint_dirs=(), gcs_bucket=None
    )
    spec = spec.with_recipe(epochs=option(pytestconfig, "epochs") or PARITY_EPOCHS)

    def plain_loop(repeat):
        gc.collect()  # the engines' loaders (and any worker processes they kept) are gone before the reference runs
        return plain_loop_speed(runner.build_job(repeat, run_settings, runner.prepare(repeat, run_settings)))

    def measure():
        rounds = []
        for number, repeat in enumerate(repeats(pytestconfig, spec)):  # one interleaved round per seed
            plain = plain_loop(repeat) if number % 2 else None
            records = {e: runner.run(repeat.replace(engine=e), run_settings) for e in ENGINES}
            plain_speed, plain_wait = plain or plain_loop(repeat)
            rounds.append((plain_speed, plain_wait, records))
        return rounds

    rounds = benchmark.pedantic(measure, rounds=1, iterations=1)
    ratios = {e: [records[e].steady_images_per_s / plain for plain, _, records in rounds] for e in ENGINES}
    intervals = {e: mean_interval(values) for e, values in ratios.items()}
    benchmark.extra_info.update(
        rounds=len(rounds),
        plain_images_per_s=round(fmean(plain for plain, _, _ in rounds), 2),
        plain_data_wait_share=round(fmean(wait or 0.0 for _, wait, _ in rounds), 3),
        **{
            f"{e}_data_wait_share": round(fmean(records[e].data_wait_share or 0.0 for _, _, records in rounds), 3)
            for e in ENGINES
        },
        **{
            f"{e}_images_per_s": round(fmean(records[e].steady_images_per_s for _, _, records in rounds), 2)
            for e in ENGINES
        },
        **{f"{e}_over_plain": round(fmean(values), 3) for e, values in ratios.items()},
        **{f"{e}_over_plain_per_round": [round(v, 3) for v in values] for e, values in ratios.items()},
        **{
            f"{e}_over_plain_interval": [round(v, 3) for v in interval] if interval else None
            for e, interval in intervals.items()
        },
        **{
            f"{e}_{metric}": round(fmean(records[e].test[metric] for _, _, records in rounds), 4)
            for e in ENGINES
            for metric in rounds[0][2][e].test
        },
    )
    print(
        f"\n{spec.model}, {len(rounds)} round(s): plain {benchmark.extra_info['plain_images_per_s']:.1f} img/s; "
        + "; ".join(_shown(e, ratios[e], intervals[e]) for e in ENGINES)
    )
    for _, _, records in rounds:
        poutyne, lightning = records["poutyne"].test, records["lightning"].test
        apart = {
            m: (poutyne[m], lightning.get(m))
            for m in poutyne
            if lightning.get(m) is None or abs(poutyne[m] - lightning[m]) > PARITY_TOLERANCE
        }
        assert set(poutyne) == set(lightning) and not apart, f"engines disagree (poutyne, lightning): {apart}"


def _shown(engine: str, ratios: list[float], interval: tuple[float, float] | None) -> str:
    """`poutyne 0.990x plain (0.970, 1.020, 0.980; 95 % CI 0.924-1.056)`, or one round's `poutyne 0.990x plain`."""
    shown = f"{engine} {fmean(ratios):.3f}x plain"
    if interval is None:
        return shown
    return shown + f" ({', '.join(f'{r:.3f}' for r in ratios)}; 95 % CI {interval[0]:.3f}-{interval[1]:.3f})"
