"""Workflow 1: EfficientNetV2-B2, pretrained vs random weights, trained with Poutyne.

Reproduces shared/seeds/efficientnetv2-poutyne.txt: `pytest benchmarks -k efficientnetv2`.
"""

from __future__ import annotations

import pytest

from harness.api import assert_thresholds
from harness.catalog import EFFICIENTNETV2
from harness.pytest_plugin import (
    case_spec,
    matrix,
    record_in_benchmark,
    repeats,
    runnable,
)
from harness.results.stats import difference


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
    """Pretrained weights reach higher test accuracy and lower test loss than random ones (same data,
    same precision). Over several seeds (`--seeds N`) it is a statistical statement: the 95 % Welch
    interval of each mean difference excludes zero; with one seed, the plain comparison."""
    pretrained = case_spec(pytestconfig, EFFICIENTNETV2, weights="pretrained", precision=precision, devices=1)
    reason = runnable(pretrained)
    if reason:
        pytest.skip(reason)
    records = [
        run_book.get(s)
        for spec in (pretrained, pretrained.replace(weights="random"))
        for s in repeats(pytestconfig, spec)
    ]
    failed = [f"{r.run_id}: {r.failure}" for r in records if not r.ok]
    assert not failed, "runs did not finish, so there is nothing to compare: " + "; ".join(failed)
    pre = [r.test for r in records if r.spec["weights"] == "pretrained"]
    rnd = [r.test for r in records if r.spec["weights"] == "random"]
    acc = difference([t["test_acc"] for t in pre], [t["test_acc"] for t in rnd])
    loss = difference([t["test_loss"] for t in pre], [t["test_loss"] for t in rnd])
    figures = f"pretrained - random: accuracy {acc.show(100)} points, loss {loss.show(digits=4)}"
    print(f"\n{pretrained.id}: {figures}")
    if acc.repeated:
        assert acc.low > 0 and loss.high < 0, f"pretrained does not beat random beyond seed noise: {figures}"
    else:
        assert acc.estimate > 0 and loss.estimate < 0, f"pretrained does not beat random: {figures}"
