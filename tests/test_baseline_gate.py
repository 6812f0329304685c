"""`pytest --baseline`: a benchmark session whose runs regressed against the baseline fails."""

import json

import pytest

from harness.settings import REPO_ROOT

pytest_plugins = ["pytester"]

BENCHMARK = '''
from tests.conftest import tiny_spec, make_image_folder

def test_tiny(run_book, tmp_path_factory, benchmark):
    folder = make_image_folder(tmp_path_factory.mktemp("d"), {k: 8 for k in "abcd"})
    run_book.settings = run_book.settings.replace(data_root=folder)
    record = benchmark.pedantic(run_book.get, args=(tiny_spec(),), rounds=1, iterations=1)
    assert record.test["test_acc"] >= 0
'''


@pytest.mark.parametrize("baseline_acc, regressed", [(0.0, False), (1.0, True)])
def test_session_fails_on_regression(pytester, monkeypatch, baseline_acc, regressed):
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makeconftest((REPO_ROOT / "conftest.py").read_text())
    pytester.makepyfile(test_tiny=BENCHMARK)
    spec_id = "test_efficientnet-tiny-poutyne-32true-1dev-random"
    baseline = pytester.path / "baseline.json"
    baseline.write_text(json.dumps({"benchmarks": [{"extra_info": {"spec_id": spec_id, "test_acc": baseline_acc}}]}))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--wandb", "off", "--results-dir", str(pytester.path / "r"), "--baseline", str(baseline))
    result.stdout.fnmatch_lines(["*regression gate: " + ("REGRESSION" if regressed else "pass") + "*"])
    assert result.ret == (1 if regressed else 0)
    result.assert_outcomes(passed=1)
