"""Seed 1: EfficientNetV2-B2, pretrained vs random weights, trained with Poutyne.

Reproduces shared/seeds/efficientnetv2-poutyne.txt: `pytest benchmarks -k efficientnetv2`.
"""

from __future__ import annotations

import pytest

from benchmarks.plugin import assert_thresholds, case_spec, matrix, record_in_benchmark, runnable
from harness.catalog import EFFICIENTNETV2


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "spec" in metafunc.fixturenames:
        metafunc.parametrize("spec", matrix(metafunc.config, EFFICIENTNETV2, engines=("poutyne",)))
    if "precision" in metafunc.fixturenames:
        metafunc.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])


def test_efficientnetv2(spec, run_book, benchmark):
    """Train one case and hold it to its thresholds (smoke: above chance; full: the published figure)."""
    record = benchmark.pedantic(run_book.get, args=(spec,), rounds=1, iterations=1)
    record_in_benchmark(benchmark, record)
    assert_thresholds(spec, record)


def test_pretrained_beats_random(precision, run_book, pytestconfig):
    """Pretrained weights reach higher test accuracy and lower test loss than random ones (same data, same precision)."""
    pretrained = case_spec(pytestconfig, EFFICIENTNETV2, weights="pretrained", precision=precision, devices=1)
    random = pretrained.replace(weights="random")
    reason = runnable(pretrained)
    if reason:
        pytest.skip(reason)
    got_pre, got_rnd = run_book.get(pretrained).test, run_book.get(random).test
    assert got_pre["test_acc"] > got_rnd["test_acc"], f"pretrained acc {got_pre['test_acc']:.4f} <= random {got_rnd['test_acc']:.4f}"
    assert got_pre["test_loss"] < got_rnd["test_loss"], f"pretrained loss {got_pre['test_loss']:.4f} >= random {got_rnd['test_loss']:.4f}"
