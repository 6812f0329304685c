"""Change points over nights: found where a step is, rarely where there is only noise, and tonight
told apart as a step's continuation, a single-night outlier or noise; in the trend, its figure and
the nightly's regression.md."""

import numpy as np
import pytest

from harness.catalog import EFFICIENTNETV2, make_spec
from harness.nightly import Night, finish
from harness.results import changepoints, trend
from harness.results.plots import plot_trend
from tests.test_trend import _night, _run

NIGHTS = [f"2026-11-{day:02d}" for day in range(1, 15)]
SERIES = 400


def noisy(rng, step_at=None, size=0.0):
    values = 100 + rng.normal(0, 1, len(NIGHTS))  # one night's noise: 1
    if step_at is not None:
        values[step_at:] += size
    return list(values)


def test_a_step_of_four_noise_units_is_found_at_its_night_and_noise_alone_rarely_makes_one():
    """Rates over 400 series of 14 nights each (unit noise): measured 3 % false steps, 92 % of the
    4-sigma steps found within a night of where they began."""
    rng = np.random.default_rng(7)
    false = sum(bool(changepoints.change_points(NIGHTS, noisy(rng))) for _ in range(SERIES)) / SERIES
    found = (
        sum(
            any(NIGHTS.index(c.night) in (6, 7, 8) for c in changepoints.change_points(NIGHTS, noisy(rng, 7, -4.0)))
            for _ in range(SERIES)
        )
        / SERIES
    )
    assert false <= 0.06 and found >= 0.85, (false, found)
    (step,) = changepoints.change_points(NIGHTS, [100.0] * 7 + [90.0] * 7)
    assert (step.night, step.before, step.after) == ("2026-11-08", 100.0, 90.0) and step.relative == pytest.approx(-0.1)


def test_tonight_is_a_steps_continuation_an_outlier_or_noise():
    rng = np.random.default_rng(11)
    kinds = {"step": 0, "outlier": 0, "noise": 0}
    for _ in range(SERIES):
        kinds["step"] += changepoints.tonight(NIGHTS, noisy(rng, 8, -5.0)).startswith("a step that began on")
        outlier = noisy(rng)
        outlier[-1] -= 8
        kinds["outlier"] += changepoints.tonight(NIGHTS, outlier).startswith("tonight alone so far")
        kinds["noise"] += changepoints.tonight(NIGHTS, noisy(rng)) == "within the nights' noise"
    assert kinds["step"] / SERIES >= 0.9 and kinds["outlier"] / SERIES >= 0.95 and kinds["noise"] / SERIES >= 0.9, kinds
    assert changepoints.tonight(NIGHTS[:2], [1.0, 2.0]).startswith("too few")
    assert (
        changepoints.change_points(NIGHTS, [None, float("nan")] + [1.0] * 12) == []
    )  # gaps are left out, flat is no step


def test_the_nightly_names_a_step_and_its_night_and_the_trend_figure_marks_it(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    nights = tmp_path / "nightly"
    accuracy = [
        0.80,
        0.81,
        0.79,
        0.80,
        0.81,
        0.70,
        0.71,
        0.69,
        0.70,
    ]  # a step on the 6th night, which tonight (the 9th) continues
    for name, acc in zip(NIGHTS, accuracy, strict=False):
        _night(nights, name, [_run(spec, acc)])
    tonight = nights / NIGHTS[len(accuracy) - 1]
    assert finish(Night(tonight, [], baseline=nights / NIGHTS[0]), failed=False, wall_s=1.0) == 1
    regression = (tonight / "regression.md").read_text()
    assert f"test_acc: a step that began on {NIGHTS[5]}: 0.802 -> 0.7 (-12.7%), which tonight continues" in regression
    (case,) = trend.of_nights(nights)
    assert [s.night for s in case.steps["test_acc"]] == [NIGHTS[5]] and "steady_images_per_s" not in case.steps
    assert plot_trend(case, tmp_path / "trend.png").read_bytes()[:4] == b"\x89PNG"


def test_the_nightly_calls_a_single_bad_night_an_outlier(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="pretrained", num_classes=6)
    nights = tmp_path / "nightly"
    accuracy = [0.80, 0.81, 0.79, 0.80, 0.81, 0.80, 0.60]
    for name, acc in zip(NIGHTS, accuracy, strict=False):
        _night(nights, name, [_run(spec, acc)])
    tonight = nights / NIGHTS[len(accuracy) - 1]
    assert finish(Night(tonight, [], baseline=nights / NIGHTS[0]), failed=False, wall_s=1.0) == 1
    assert (
        "test_acc: tonight alone so far: 0.8017 -> 0.6 (-25.2%), a single-night outlier"
        in (tonight / "regression.md").read_text()
    )
