"""Workflow 2: FastViT-T8 on Kvasir v2, trained with Lightning, over the precision x device-count matrix.

Reproduces shared/seeds/fastvit-kvasir-lightning.txt: `pytest benchmarks -k fastvit`. Its author
could not combine mixed precision with several GPUs; every combination this machine has runs here
(multi-process cases through `python -m harness run`, see harness/launch.py). Poutyne takes part
where it can (one process; a device list on several GPUs).
"""

from __future__ import annotations

import pytest

from harness.api import assert_thresholds
from harness.catalog import FASTVIT
from harness.pytest_plugin import matrix, record_in_benchmark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "spec" in metafunc.fixturenames:
        metafunc.parametrize("spec", matrix(metafunc.config, FASTVIT, engines=("lightning", "poutyne")))


def test_fastvit(spec, run_book, benchmark):
    """Train one case, hold it to its thresholds, and check the fused (reparameterized) model."""
    record = benchmark.pedantic(run_book.get, args=(spec,), rounds=1, iterations=1)
    record_in_benchmark(benchmark, record)
    fused = record.extra["reparameterization"]
    benchmark.extra_info.update({f"reparam_{k}": v for k, v in fused.items()})
    assert_thresholds(spec, record)
    assert fused["top1_agreement"] == 1.0, (
        f"fused FastViT disagrees with unfused on {1 - fused['top1_agreement']:.2%} of test images"
    )
    assert fused["max_abs_logit_diff"] <= fused["tolerance"], (
        f"fused logits differ by {fused['max_abs_logit_diff']:.2e} > {fused['tolerance']:.2e}"
    )
