"""`pytest --baseline`: a benchmark session whose runs regressed against the baseline fails."""

import json

import pytest

from harness.settings import REPO_ROOT
from tests.conftest import tiny_spec

pytest_plugins = ["pytester"]

BENCHMARK = '''
from tests.conftest import tiny_spec, make_image_folder

def test_tiny(run_book, tmp_path_factory, benchmark):
    folder = make_image_folder(tmp_path_factory.mktemp("d"), {k: 8 for k in "abcd"})
    run_book.settings = run_book.settings.replace(data_root=folder)
    record = benchmark.pedantic(run_book.get, args=(tiny_spec(),), rounds=1, iterations=1)
    assert record.test["test_acc"] >= 0
'''


@pytest.mark.parametrize(
    "spec_id, baseline_acc, verdict",
    [
        ("test_efficientnet-tiny-poutyne-32true-1dev-random", 0.0, "pass"),
        ("test_efficientnet-tiny-poutyne-32true-1dev-random", 1.0, "REGRESSION"),
        ("another-case", 0.0, "ERROR"),  # nothing in common: the gate never passes on nothing
    ],
)
def test_session_fails_on_regression_or_nothing_to_compare(pytester, monkeypatch, spec_id, baseline_acc, verdict):
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.makeconftest((REPO_ROOT / "conftest.py").read_text())
    pytester.makepyfile(test_tiny=BENCHMARK)
    baseline = pytester.path / "baseline.json"
    info = {"spec_id": spec_id, "recipe": tiny_spec().recipe_fingerprint, "test_acc": baseline_acc}
    baseline.write_text(json.dumps({"benchmarks": [{"extra_info": info}]}))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--wandb", "off", "--results-dir", str(pytester.path / "r"), "--baseline", str(baseline))
    result.stdout.fnmatch_lines([f"*regression gate: {verdict}*"])
    if verdict == "ERROR":
        result.stdout.fnmatch_lines(["*no case in common*another-case@*this session: 1 case(s), 1 run(s)*"])
    assert result.ret == (0 if verdict == "pass" else 1)
    result.assert_outcomes(passed=1)
