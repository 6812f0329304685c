"""The regression gate on constructed baselines: records, pytest-benchmark JSON, seed spread, missing/new."""

import json
import subprocess
import sys

import pytest

from harness.catalog import EFFICIENTNETV2, make_spec
from harness.results.compare import DEFAULT_TOLERANCES, compare, parse_tolerances
from harness.results.observations import GATED_METRICS, Run, observations, run_of
from harness.settings import REPO_ROOT
from tests.test_reports import record

CASE = "fastvit_t8-kvasir-lightning-bf16-2dev-pretrained"


def obs(**metrics):
    return {CASE: [Run(metrics)]}


def test_within_tolerance_passes_and_beyond_fails():
    base = obs(test_acc=0.92, test_loss=0.26, steady_images_per_s=1000.0)
    assert compare(base, obs(test_acc=0.911, test_loss=0.28, steady_images_per_s=940.0)).passed  # -0.9 pt, +7.7 %, -6 %
    failed = compare(base, obs(test_acc=0.905, test_loss=0.26, steady_images_per_s=1000.0))
    assert not failed.passed and [v.metric for v in failed.regressions] == ["test_acc"]
    slow = compare(base, obs(test_acc=0.92, test_loss=0.26, steady_images_per_s=920.0))  # -8 % images/s
    assert [v.metric for v in slow.regressions] == ["steady_images_per_s"]
    assert "REGRESSED" in slow.render() and "FAIL: 1 regression" in slow.render()


def test_improvements_never_fail():
    assert compare(obs(test_acc=0.5, test_loss=1.0), obs(test_acc=0.9, test_loss=0.2)).passed


def test_seed_spread_widens_the_tolerance():
    base = {CASE: [Run({"test_acc": a}) for a in (0.90, 0.93, 0.96)]}  # mean 0.93, std 0.03
    assert compare(base, obs(test_acc=0.88)).passed  # -5 points < 2 x 3 x sqrt(1/3 + 1) = 6.9 points
    assert not compare(base, obs(test_acc=0.855)).passed


def test_missing_and_new_cases_are_reported_not_crashed_on():
    one = [Run({"test_acc": 0.9})]
    result = compare({"a": one, "b": one}, {"b": one, "c": [Run({"test_acc": 0.1})]})
    assert result.passed and result.missing == ["a"] and result.new == ["c"]
    assert "Missing from current" in result.render() and "New in current" in result.render()


def test_tolerance_option_parsing():
    assert parse_tolerances(["acc=0.05"])["test_acc"].value == 0.05
    with pytest.raises(ValueError, match="METRIC=VALUE"):
        parse_tolerances(["colour=1"])


def _benchmark_json(path, acc, images_per_s):
    path.write_text(json.dumps({"benchmarks": [{"name": "test_fastvit[x]", "extra_info": {"spec_id": CASE, "test_acc": acc, "steady_images_per_s": images_per_s}}]}))
    return path


@pytest.mark.slow
def test_works_on_pytest_benchmark_json(tmp_path):
    base = _benchmark_json(tmp_path / "base.json", 0.92, 1000.0)
    good = _benchmark_json(tmp_path / "good.json", 0.92, 990.0)
    bad = _benchmark_json(tmp_path / "bad.json", 0.85, 990.0)
    assert observations(base) == {CASE: [Run({"test_acc": 0.92, "steady_images_per_s": 1000.0})]}
    run = lambda *a: subprocess.run([sys.executable, "-m", "harness", "compare", *map(str, a)], cwd=REPO_ROOT, capture_output=True, text=True)  # noqa: E731
    assert run(base, good).returncode == 0
    done = run(base, bad)
    assert done.returncode == 1 and "test_acc" in done.stdout and "REGRESSED" in done.stdout
    assert run(base, bad, "--tolerance", "acc=0.1").returncode == 0


def test_runs_of_one_case_with_different_recipes_are_never_averaged(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="random", num_classes=6)
    record(spec, 0.50, 1.3, run_id="matrix").save(tmp_path / "base" / "matrix")
    record(spec.with_recipe(epochs=2), 0.18, 42.7, run_id="short").save(tmp_path / "base" / "short")
    found = observations(tmp_path / "base")
    assert sorted(found) == sorted([f"{spec.id}@{spec.recipe_fingerprint}", f"{spec.id}@{spec.with_recipe(epochs=2).recipe_fingerprint}"])
    assert all(len(runs) == 1 for runs in found.values())


def test_works_on_result_folders(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    record(spec, 0.95, 0.12).save(tmp_path / "base" / spec.id)
    record(spec, 0.90, 0.12).save(tmp_path / "current" / spec.id)
    result = compare(observations(tmp_path / "base"), observations(tmp_path / "current"))
    assert [v.metric for v in result.regressions] == ["test_acc", "test_f1"]  # the helper sets F1 = acc - 0.01


def _compare(*args):
    return subprocess.run([sys.executable, "-m", "harness", "compare", *map(str, args)], cwd=REPO_ROOT, capture_output=True, text=True)


@pytest.mark.slow
def test_the_gate_never_passes_on_nothing(tmp_path):
    base = _benchmark_json(tmp_path / "base.json", 0.92, 1000.0)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"benchmarks": [{"extra_info": {"spec_id": "another-case", "test_acc": 0.5}}]}))
    done = _compare(base, other)
    assert done.returncode == 2 and "no case in common" in done.stderr
    assert f"baseline {base}: 1 case(s), 1 run(s) ({CASE})" in done.stderr and "current " in done.stderr and "another-case" in done.stderr
    (tmp_path / "empty").mkdir()
    done = _compare(base, tmp_path / "empty")
    assert done.returncode == 2 and f"current {tmp_path / 'empty'}: no runs" in done.stderr
    png = tmp_path / "curves.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(32))
    done = _compare(png, base)
    assert done.returncode == 2 and f"{png} is not a pytest-benchmark JSON file" in done.stderr and "Traceback" not in done.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"results": []}))
    done = _compare(wrong, base)
    assert done.returncode == 2 and f"{wrong} is not a pytest-benchmark JSON file (no 'benchmarks' list)" in done.stderr


def test_corrupt_record_is_named(tmp_path):
    spec = make_spec(EFFICIENTNETV2, profile="full", weights="pretrained", num_classes=6)
    record(spec, 0.95, 0.12).save(tmp_path / "base" / spec.id)
    (tmp_path / "base" / spec.id / "result.json").write_text('{"run_id": ')
    done = _compare(tmp_path / "base", tmp_path / "base")
    assert done.returncode == 2 and f"{tmp_path / 'base' / spec.id / 'result.json'} is not a readable result record" in done.stderr


def test_output_always_says_what_was_compared(tmp_path):
    base = {CASE: [Run({"test_acc": 0.9, "test_loss": 0.3})] * 2, "gone": [Run({"test_acc": 0.9})]}
    result = compare(base, {CASE: [Run({"test_acc": 0.9, "test_loss": 0.3})], "fresh": [Run({"test_acc": 0.9})]})
    text = result.render()
    assert result.passed and "Compared 1 case(s), 2 metric(s): 2 checks; runs per case: baseline 2, current 1" in text
    assert "Missing from current (in baseline only): gone" in text and "New in current (no baseline): fresh" in text
    assert "| " + CASE in text  # the checks are listed when passing too


def test_the_spread_of_either_side_widens_the_allowed_move_and_one_run_a_side_says_so():
    current = {CASE: [Run({"test_acc": a}) for a in (0.84, 0.88, 0.92)]}  # mean 0.88, std 0.04
    widened = compare(obs(test_acc=0.93), current)
    # 2 x pooled std 0.04 x sqrt(1/1 + 1/3)
    assert widened.passed and widened.verdicts[0].basis == "2 x std error" and widened.verdicts[0].allowed == pytest.approx(0.08 * (4 / 3) ** 0.5)
    single = compare(obs(test_acc=0.93), obs(test_acc=0.88))
    assert not single.passed and single.verdicts[0].basis == "tolerance"
    assert "One run per side: the stated tolerances alone decide" in single.render()
    assert "One run per side" not in widened.render()


def test_a_regression_names_what_changed_between_the_sides():
    before = {CASE: [Run({"test_acc": 0.92}, {"torch": "2.13.0", "git_commit": "abc", "device": "H100"})]}
    after = {CASE: [Run({"test_acc": 0.80}, {"torch": "2.14.1", "git_commit": "def", "device": "H100"})]}
    result = compare(before, after)
    (verdict,) = result.regressions
    assert verdict.changed == "torch 2.13.0 -> 2.14.1; git_commit abc -> def"
    assert "torch 2.13.0 -> 2.14.1" in result.render()


def test_the_decode_cache_and_workers_are_part_of_a_runs_context():
    """Cached and uncached pixels differ by rounding: a regression says which side read which."""
    spec = make_spec(EFFICIENTNETV2, profile="smoke", weights="random", num_classes=6)
    cached, uncached = record(spec, 0.6, 1.0), record(spec, 0.6, 1.0)
    cached.loader = {"workers": 2, "decode_cache": {"short_side": 64}}
    uncached.loader = {"workers": 0, "decode_cache": None}
    assert (run_of(cached).context["decode_cache"], run_of(uncached).context["decode_cache"]) == ("shorter side 64", "off")
    assert (run_of(cached).context["workers"], run_of(uncached).context["workers"]) == ("2", "0")


BENCHMARK_TEST = '''
def test_case(benchmark):
    benchmark.extra_info.update(spec_id="CASE", recipe="1a2b3c4d", test_acc=0.92, test_loss=0.26, test_f1=0.91, steady_images_per_s=1000.0)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
'''


@pytest.fixture(scope="module")
def written_by_pytest_benchmark(tmp_path_factory):
    """A --benchmark-json file as the installed pytest-benchmark writes it, with trainbench's extra_info."""
    folder = tmp_path_factory.mktemp("pb")
    (folder / "test_it.py").write_text(BENCHMARK_TEST.replace("CASE", CASE))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder / "test_it.py"),
                           f"--benchmark-json={folder / 'out.json'}"], cwd=folder, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((folder / "out.json").read_text())


def _altered(path, written, **changes):
    data = json.loads(json.dumps(written))
    info = data["benchmarks"][0]["extra_info"]
    for key, value in changes.items():
        if value is ...:
            info.pop(key)
        else:
            info[key] = value
    path.write_text(json.dumps(data))
    return path


@pytest.mark.slow
def test_the_gate_never_passes_on_less_than_it_was_asked_to_compare(written_by_pytest_benchmark, tmp_path):
    """Another version's field names compared images/s only and printed PASS against an accuracy of
    0.5; a null metric was a TypeError traceback."""
    base = _altered(tmp_path / "base.json", written_by_pytest_benchmark)
    assert _compare(base, base).returncode == 0
    renamed = _altered(tmp_path / "renamed.json", written_by_pytest_benchmark, test_acc=..., test_loss=..., test_f1=..., accuracy=0.5, cross_entropy=2.0)
    done = _compare(base, renamed)
    assert done.returncode == 2 and "PASS" not in done.stdout, done.stdout
    for metric in ("test_acc", "test_loss", "test_f1"):
        assert f"{CASE}@1a2b3c4d {metric} (missing in current {renamed})" in done.stdout
    assert "UNDECIDED: 3 gated metric(s) missing on one side" in done.stdout
    assert _compare(base, renamed, "--metrics", "images_per_s").returncode == 0  # narrowed on purpose: speed alone
    short = _altered(tmp_path / "short.json", written_by_pytest_benchmark, test_acc=..., acc=0.5)  # the short names are read
    done = _compare(base, short)
    assert done.returncode == 1 and "| test_acc | 0.9200 | 0.5000 |" in done.stdout
    null = _altered(tmp_path / "null.json", written_by_pytest_benchmark, test_loss=None)
    done = _compare(base, null)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "non-finite value" in done.stdout
    foreign = _altered(tmp_path / "foreign.json", written_by_pytest_benchmark, spec_id=..., recipe=...)
    done = _compare(base, foreign)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert f"{foreign} holds 1 pytest-benchmark result(s) (version {written_by_pytest_benchmark['version']}) without trainbench's fields" in done.stderr
    assert _compare(base, renamed, "--metrics", "colour").returncode == 2


def test_every_gated_metric_has_a_tolerance_and_every_tolerance_is_read():
    assert tuple(DEFAULT_TOLERANCES) == GATED_METRICS
