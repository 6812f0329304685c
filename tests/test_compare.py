"""The regression gate on constructed baselines: records, pytest-benchmark JSON, seed spread, missing/new."""

import json
import subprocess
import sys

import pytest

from harness.results.compare import compare, observations, parse_tolerances
from harness.settings import REPO_ROOT
from tests.test_reports import record
from harness.catalog import EFFICIENTNETV2, make_spec

CASE = "fastvit_t8-kvasir-lightning-bf16-2dev-pretrained"


def obs(**metrics):
    return {CASE: [metrics]}


def test_within_tolerance_passes_and_beyond_fails():
    base = obs(test_acc=0.92, test_loss=0.26, train_images_per_s=1000.0)
    assert compare(base, obs(test_acc=0.911, test_loss=0.28, train_images_per_s=940.0)).passed  # -0.9 pt, +7.7 %, -6 %
    failed = compare(base, obs(test_acc=0.905, test_loss=0.26, train_images_per_s=1000.0))
    assert not failed.passed and [v.metric for v in failed.regressions] == ["test_acc"]
    slow = compare(base, obs(test_acc=0.92, test_loss=0.26, train_images_per_s=920.0))  # -8 % images/s
    assert [v.metric for v in slow.regressions] == ["train_images_per_s"]
    assert "REGRESSED" in slow.render() and "FAIL: 1 regression" in slow.render()


def test_improvements_never_fail():
    assert compare(obs(test_acc=0.5, test_loss=1.0), obs(test_acc=0.9, test_loss=0.2)).passed


def test_seed_spread_widens_the_tolerance():
    base = {CASE: [{"test_acc": a} for a in (0.90, 0.93, 0.96)]}  # mean 0.93, std 0.03
    assert compare(base, obs(test_acc=0.88)).passed  # -5 points < 2 std = 6 points
    assert not compare(base, obs(test_acc=0.86)).passed


def test_missing_and_new_cases_are_reported_not_crashed_on():
    result = compare({"a": [{"test_acc": 0.9}], "b": [{"test_acc": 0.9}]}, {"b": [{"test_acc": 0.9}], "c": [{"test_acc": 0.1}]})
    assert result.passed and result.missing == ["a"] and result.new == ["c"]
    assert "Missing from current" in result.render() and "New in current" in result.render()


def test_tolerance_option_parsing():
    assert parse_tolerances(["acc=0.05"])["test_acc"].value == 0.05
    with pytest.raises(ValueError, match="METRIC=VALUE"):
        parse_tolerances(["colour=1"])


def _benchmark_json(path, acc, images_per_s):
    path.write_text(json.dumps({"benchmarks": [{"name": "test_fastvit[x]", "extra_info": {"spec_id": CASE, "test_acc": acc, "train_images_per_s": images_per_s}}]}))
    return path


def test_works_on_pytest_benchmark_json(tmp_path):
    base = _benchmark_json(tmp_path / "base.json", 0.92, 1000.0)
    good = _benchmark_json(tmp_path / "good.json", 0.92, 990.0)
    bad = _benchmark_json(tmp_path / "bad.json", 0.85, 990.0)
    assert observations(base) == {CASE: [{"test_acc": 0.92, "train_images_per_s": 1000.0}]}
    run = lambda *a: subprocess.run([sys.executable, "-m", "harness", "compare", *map(str, a)], cwd=REPO_ROOT, capture_output=True, text=True)  # noqa: E731
    assert run(base, good).returncode == 0
    done = run(base, bad)
    assert done.returncode == 1 and "test_acc" in done.stdout and "REGRESSED" in done.stdout
    assert run(base, bad, "--tolerance", "acc=0.1").returncode == 0


def test_works_on_result_folders(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    record(spec, 0.95, 0.12).save(tmp_path / "base" / spec.id)
    record(spec, 0.90, 0.12).save(tmp_path / "current" / spec.id)
    result = compare(observations(tmp_path / "base"), observations(tmp_path / "current"))
    assert [v.metric for v in result.regressions] == ["test_acc", "test_f1"]  # the helper sets F1 = acc - 0.01
