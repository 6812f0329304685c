"""The nightly's plan: what each case asks of the cluster, refusals before anything runs, the dry run; a case's status
(skipped, failed, killed) and its own scratch folder."""

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest

from harness.cluster.plan import (
    Case,
    Node,
    Suite,
    collect,
    devices_of,
    on_cpus,
    plan,
    profile_for,
    suite_of,
    unplaceable,
)
from harness.errors import PreflightError
from harness.nightly import NightlyError, case_status, check_pytest_args, failure
from harness.nightly.tasks import (
    JUNIT,
    CaseOutcome,
    case_command,
    run_here,
    skip_reason,
)
from harness.settings import REPO_ROOT

IDS = [
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-32true-1dev-pretrained]",
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-bf16-2dev-pretrained]",
    "benchmarks/test_fastvit.py::test_fastvit[fastvit_t8-kvasir-lightning-bf16-8dev-pretrained]",
    "benchmarks/test_efficientnetv2.py::test_efficientnetv2[tf_efficientnetv2_b2-imagefolder-poutyne-fp16-1dev-random]",
    "benchmarks/test_engine_parity.py::test_engine_parity[fastvit_t8]",
]
GPU_NODES = [Node("a", "10.0.0.1", cpus=64, gpus=8), Node("b", "10.0.0.2", cpus=32, gpus=8)]
CPU_NODES = [Node("a", "127.0.0.1", cpus=1, gpus=0), Node("b", "127.0.0.1", cpus=1, gpus=0)]


def test_devices_are_read_from_readable_ids():
    assert [devices_of(i) for i in IDS] == [1, 2, 8, 1, 1]


def test_on_gpus_a_case_asks_for_its_gpus_and_their_share_of_cpus_largest_first():
    cases = plan(IDS, GPU_NODES)
    assert [(c.gpus, c.cpus) for c in cases] == [
        (8, 32),
        (2, 8),
        (1, 4),
        (1, 4),
        (1, 4),
    ]  # 4 CPUs per GPU on the poorer node
    assert cases[0].name == "test_fastvit-fastvit_t8-kvasir-lightning-bf16-8dev-pretrained"
    assert cases[0].workers == 4 and {c.node_id for c in cases} == set(IDS)
    assert profile_for(GPU_NODES) == "full" and not unplaceable(cases, GPU_NODES)


def test_on_cpus_a_case_asks_for_one_cpu_per_process_and_what_no_node_holds_is_refused():
    cases = plan(IDS[:2], CPU_NODES)
    assert [(c.cpus, c.gpus) for c in cases] == [(2, 0), (1, 0)] and profile_for(CPU_NODES) == "smoke"
    assert [c.workers for c in cases] == [0, 0]  # training on CPUs: the task's CPUs go to its training threads
    (problem,) = unplaceable(cases, CPU_NODES)
    assert problem.startswith(
        "test_fastvit-fastvit_t8-kvasir-lightning-bf16-2dev-pretrained asks for 2 CPU on one node, and the largest node"
        " has 1 CPU, 0 GPU"
    )
    assert "-k" in problem


@pytest.mark.parametrize(
    "given, narrowed",
    [
        ([], ["-m", "not gpu"]),
        (["-k", "fastvit", "-m", "full"], ["-k", "fastvit", "-m", "(full) and not gpu"]),
        (["-mfull"], ["-m(full) and not gpu"]),
    ],
)
def test_on_cpus_the_gpu_cases_are_left_out_and_a_users_marker_kept(given, narrowed):
    assert on_cpus(given) == narrowed


def test_case_names_are_file_safe():
    case = Case("benchmarks/test_x.py::test_x[a/b c]", 1, 1, 0)
    assert case.name == "test_x-a_b_c"


@pytest.mark.parametrize(
    "arg",
    ["--results-dir", "--results-dir=/x", "--benchmark-json=/x.json", "--junitxml=/x.xml", "--gcs-bucket", "--resume"],
)
def test_where_results_and_checkpoints_go_is_the_nightlys_to_say(arg):
    with pytest.raises(NightlyError, match=f"^{arg.split('=')[0]} after -- is the nightly's to set; give --"):
        check_pytest_args(["-k", "fastvit", arg])


def dry_run(*options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "nightly", "--dry-run", *options, "--", "-k", "fastvit"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def fastvit_dry_run() -> subprocess.CompletedProcess:
    """One dry run of the FastViT cases for the tests that read its plan (a dry run trains nothing)."""
    return dry_run()


@pytest.mark.slow
@pytest.mark.heavy
def test_dry_run_without_gpu_plans_the_smoke_profile_on_this_machine(fastvit_dry_run):
    done = fastvit_dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no GPU in the cluster; running the smoke profile on CPUs instead" in done.stdout
    assert "on this machine (Ray embedded)" in done.stdout and "node this machine (local):" in done.stdout
    assert "case test_fastvit-fastvit_t8-kvasir-synthetic-lightning-32true-1dev-pretrained: 1 CPU" in done.stdout
    assert "fp16" not in done.stdout, "a case only a GPU runs was planned on CPUs"


@pytest.mark.slow
def test_an_address_nobody_answers_is_one_line_before_anything_runs(tmp_path):
    from harness.artifacts.emulator import free_port

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "nightly",
            "--dry-run",
            "--out",
            str(tmp_path / "n"),
            "--address",
            f"127.0.0.1:{free_port()}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout.startswith("nightly: no Ray cluster answers at 127.0.0.1:") and "ray start --head" in done.stdout


def test_tests_of_a_project_are_its_own_suite_and_a_path_outside_or_missing_is_one_line(tmp_path):
    (tmp_path / "project" / "bench").mkdir(parents=True)
    here = tmp_path / "project"
    assert suite_of(None, REPO_ROOT) == Suite(REPO_ROOT, "benchmarks")  # run from trainbench's checkout: its own
    with pytest.raises(NightlyError, match=r"^no benchmarks/ in the current folder .*project; run the nightly from"):
        suite_of(None, here)
    (here / "benchmarks").mkdir()
    assert suite_of(None, here) == Suite(here.resolve(), "benchmarks")  # a project's, without --tests
    assert suite_of(tmp_path / "project" / "bench", here) == Suite(here.resolve(), "bench")
    assert suite_of(Path("bench"), here) == Suite(here.resolve(), "bench")
    with pytest.raises(
        NightlyError, match=r"--tests nope: no such file or folder as .*nope \(PATH is relative to the current folder\)"
    ):
        suite_of(Path("nope"), here)
    with pytest.raises(NightlyError, match=r"is outside the current folder .*; run the nightly from the project"):
        suite_of(tmp_path, here)


def test_a_node_without_the_project_fails_the_case_saying_so(tmp_path):
    case = Case("bench/test_model.py::test_model[small]", devices=1, cpus=1, gpus=0, root=tmp_path / "absent")
    outcome = run_here(case, "smoke", [], "night-1", None)
    assert case_status(outcome) == "failed" and failure(outcome) == "failed (pytest exit status 4: a usage error)"
    assert f"this node has no folder {tmp_path / 'absent'}; every node needs the project" in outcome.log


PROJECT_BENCHMARK = """
import pytest

@pytest.mark.parametrize("size", ["small", "large-2dev"])
def test_model(size):
    pass
"""


@pytest.mark.slow
def test_a_projects_own_benchmarks_are_planned_from_its_folder(tmp_path):
    """`nightly --tests PATH` from the user's project: its cases, named by node ids relative to the project."""
    project = tmp_path / "project"
    (project / "bench").mkdir(parents=True)
    (project / "bench" / "test_model.py").write_text(PROJECT_BENCHMARK)

    # an option pytest does not know is not "nothing matched" (the nightly prints this one line)
    with pytest.raises(PreflightError, match=r"pytest could not collect bench in .* \(exit status 4: .*--collect-only"):
        collect("smoke", ["--no-such-option"], root=project, target="bench")
    # no conftest: the installed plugin gives the project's benchmarks trainbench's options and run book
    assert not (project / "conftest.py").exists()
    done = subprocess.run(
        [sys.executable, "-m", "harness", "nightly", "--dry-run", "--tests", "bench", "--out", str(tmp_path / "n")],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nightly: 2 case(s), smoke profile" in done.stdout, done.stdout
    assert "case test_model-large-2dev: 2 CPU" in done.stdout and "case test_model-small: 1 CPU" in done.stdout


CASE_FILE = """
import pytest

def test_skipped():
    pytest.skip("needs 2 GPUs; this machine has 1")

def test_ran():
    pass
"""


@pytest.mark.parametrize(
    "selection, status", [("test_skipped", "skipped"), ("test_ran", "passed"), ("test_ran or test_skipped", "passed")]
)
def test_a_case_pytest_skipped_is_reported_skipped_with_its_reason_not_passed(tmp_path, selection, status):
    (tmp_path / "test_case.py").write_text(CASE_FILE)
    junit = tmp_path / "junit.xml"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-k",
            selection,
            f"--junitxml={junit}",
            str(tmp_path / "test_case.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout
    outcome = CaseOutcome("case", "node", "127.0.0.1", done.returncode, 1.0, {}, done.stdout, skip_reason(junit))
    assert case_status(outcome) == status
    if status == "skipped":
        assert outcome.skipped == "needs 2 GPUs; this machine has 1"
    assert skip_reason(tmp_path / "missing.xml") is None


def test_each_case_writes_the_junit_report_its_status_is_read_from(tmp_path):
    case = Case("benchmarks/test_x.py::test_x[a]", devices=1, cpus=1, gpus=0)
    command = case_command(case, tmp_path, "smoke", ["-k", "x"], "night-1", None)
    assert f"--junitxml={tmp_path / JUNIT}" in command


@pytest.mark.slow
def test_a_night_whose_speed_regressed_profiles_that_case_and_links_its_trace(tiny_folder, tmp_path):
    from harness import runner
    from harness.nightly import Night, finish
    from harness.settings import RunSettings
    from tests.conftest import tiny_spec

    night = tmp_path / "nights" / "2026-11-30"
    settings = RunSettings(
        results_dir=night / "records", cache_dir=tmp_path / "cache", data_root=tiny_folder, wandb="off"
    )
    record = runner.run(tiny_spec().with_recipe(epochs=2), settings)
    baseline = tmp_path / "baseline" / record.run_id
    baseline.mkdir(parents=True)
    faster = json.loads((night / "records" / record.run_id / "result.json").read_text())
    faster["steady_images_per_s"] *= 2  # last night ran twice as fast
    (baseline / "result.json").write_text(json.dumps(faster))
    assert finish(Night(night, [], baseline=tmp_path / "baseline"), failed=False, wall_s=1.0) == 1
    regression = (night / "regression.md").read_text()
    assert "## Profiles of the cases whose speed regressed" in regression
    assert (
        f"[trace](profiles/{record.case_id}/trace.json)" in regression
        and (night / "profiles" / record.case_id / "trace.json").is_file()
    )
    assert json.loads((night / "profiles" / record.case_id / "profile.json").read_text())["steps"] >= 1


@pytest.mark.slow
@pytest.mark.heavy
def test_the_default_dry_run_skips_what_no_node_of_this_machine_holds_and_strict_refuses_it(fastvit_dry_run):
    """The night's default on a small machine: the 4- and 8-process CPU cases need more cores than it
    has; they are skipped with why (as pytest skips them), the rest is planned, and only --strict refuses."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    done = fastvit_dry_run
    assert done.returncode == 0, done.stdout + done.stderr
    too_large = [n for n in (2, 4, 8) if n > cores]
    for devices in too_large:
        assert (
            f"nightly: skipped test_fastvit-fastvit_t8-kvasir-synthetic-lightning-32true-{devices}dev-pretrained: asks"
            f" for {devices} CPU on one node" in done.stdout
        )
    if too_large:
        assert (
            "case(s) skipped, no node holds them;" in done.stdout
            and "--strict refuses the night instead" in done.stdout
        )
        strict = dry_run("--strict")
        assert strict.returncode == 2 and "add a node that large or leave the case out with -k" in strict.stdout


PASSING_CASE = """
from pathlib import Path

def test_case(benchmark, request):
    benchmark(lambda: None)
    run = Path(request.config.getoption("--trainbench-results-dir")) / "run-1"  # the installed plugin's option
    run.mkdir(parents=True)
    (run / "result.json").write_text("{}")
"""

KILLED_CASE = """
import os
import signal

def test_case():
    os.kill(os.getpid(), signal.SIG{name})
"""

FAILING_CASE = """
def test_case():
    assert False
"""


def tiny_case(folder, body: str) -> Case:
    (folder / "test_tiny.py").write_text(body)
    return Case(str(folder / "test_tiny.py"), devices=1, cpus=1, gpus=0)


@pytest.mark.parametrize(
    "name, why",
    [
        ("KILL", "killed by SIGKILL (the OOM killer sends this when memory runs out)"),
        ("SEGV", "killed by SIGSEGV"),
    ],
)
def test_a_case_killed_mid_run_reports_no_earlier_runs_files_and_says_it_was_killed(tmp_path, monkeypatch, name, why):
    """Two nights of one date (--out A/<date>, --out B/<date>) shared the case's scratch folder: B's
    summary pooled A's record as a second seed, and a case SIGKILLed by the OOM killer returned A's
    benchmark JSON as its own, its status only `failed on node ... in 18.5 s`."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # the node's temporary folder
    (tmp_path / "case").mkdir()
    case = tiny_case(tmp_path / "case", PASSING_CASE)
    first = run_here(case, "smoke", [], "2026-11-30", None)
    assert case_status(first) == "passed", first.log
    assert sorted(first.files) == [f"benchmark/{case.name}.json", "records/run-1/result.json"]

    case = tiny_case(tmp_path / "case", KILLED_CASE.format(name=name))
    killed = run_here(case, "smoke", [], "2026-11-30", None)  # the same night and case, another run
    assert killed.files == {}, "an earlier run's files were reported as this run's"
    assert case_status(killed) == "failed" and failure(killed) == why


def test_a_case_that_fails_names_pytests_exit_status(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    outcome = run_here(tiny_case(tmp_path, FAILING_CASE), "smoke", [], "night-1", None)
    assert case_status(outcome) == "failed", outcome.log
    assert failure(outcome) == "failed (pytest exit status 1: a test failed)"
    assert failure(replace(outcome, returncode=0)) is None


def test_nights_of_the_same_name_in_other_folders_get_their_own_bucket_prefix(tmp_path):
    """Every case of a night with a bucket runs with --resume under the night's prefix: a night of
    the same date in another --out (or run again) must not resume from, nor report, another's checkpoints."""
    from harness.nightly import new_night_id
    from harness.nightly.tasks import case_command

    case = Case("benchmarks/test_fastvit.py::test_fastvit[x]", devices=1, cpus=1, gpus=0)
    ids = [new_night_id(tmp_path / side / "2026-12-07") for side in ("A", "B", "B")]
    assert all(i.startswith("2026-12-07-") for i in ids) and len(set(ids)) == 3, ids
    prefixes = {case_command(case, tmp_path, "smoke", [], i, "gs://b/nightly")[-2] for i in ids}
    assert prefixes == {f"gs://b/nightly/{i}" for i in ids}
