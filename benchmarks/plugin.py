"""What the benchmark modules share: the case matrix, the session's run book, assertions, summary.

Torch and the training stack (`harness.launch`, `harness.configure`, the report's figures; `harness.hardware`
imports torch when it detects) are loaded where a case is built, trained or reported, not at import: every
pytest session of the repository loads this plugin, and what it refuses in `pytest_configure` (pytest-xdist
over the benchmarks, a --baseline with no runs, a bad --tolerance) is refused before torch is imported.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from harness import interrupts
from harness.capabilities import PRECISIONS, SUPPORT
from harness.catalog import Workflow
from harness.data.named import num_classes
from harness.errors import GateError
from harness.hardware import DEVICE_COUNTS, benchmark_skip_reason, detect
from harness.results.compare import Comparison, compare, parse_metrics, parse_tolerances
from harness.results.observations import observations, run_of
from harness.results.record import RunResult, json_safe
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec

RUN_BOOK = pytest.StashKey["RunBook"]()
GATE = pytest.StashKey[Comparison | GateError]()


class RunBook:
    """Each spec runs at most once per session; later requests get the same record (or error)."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.records: dict[BenchmarkSpec, RunResult] = {}
        self.failures: dict[BenchmarkSpec, BaseException] = {}

    def get(self, spec: BenchmarkSpec) -> RunResult:
        if spec in self.failures:
            raise RuntimeError(f"{spec.id} already failed earlier in this session") from self.failures[spec]
        if spec not in self.records:
            from harness import launch

            try:
                self.records[spec] = launch.run(spec, self.settings)
            except BaseException as error:
                self.failures[spec] = error
                raise
        return self.records[spec]


@pytest.fixture(scope="session")
def run_book(pytestconfig: pytest.Config, run_settings: RunSettings) -> RunBook:
    book = RunBook(run_settings)
    pytestconfig.stash[RUN_BOOK] = book
    return book


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("--profile")


def case_spec(config: pytest.Config, workflow: Workflow, **choices) -> BenchmarkSpec:
    """The spec of one matrix cell under this session's profile and options (`configure.case_spec`)."""
    from harness import configure

    profile = config.getoption("--profile")
    return configure.case_spec(
        workflow,
        profile,
        num_classes=num_classes(workflow.dataset_in(profile)),
        options={"epochs": config.getoption("--epochs")},
        **choices,
    )


def matrix(
    config: pytest.Config,
    workflow: Workflow,
    *,
    engines: Sequence[str],
    weights: Iterable[str] | None = None,
    precisions: Iterable[str] = PRECISIONS,
    devices: Iterable[int] = DEVICE_COUNTS,
) -> list:
    """pytest params for engines x weights x precisions x devices; what cannot run here is skipped with why."""
    hw = detect()
    params = []
    for engine in engines:
        for w in weights or workflow.weights:
            for precision in precisions:
                for n in devices:
                    spec = case_spec(config, workflow, weights=w, precision=precision, devices=n, engine=engine)
                    marks = []
                    if precision == "16-mixed" or (SUPPORT[engine].several_devices_as == "device_list" and n > 1):
                        marks.append(pytest.mark.gpu)
                    if spec.profile == "full":
                        marks.append(pytest.mark.full)
                    reason = benchmark_skip_reason(engine, precision, n, hw)
                    if reason:
                        marks.append(pytest.mark.skip(reason=reason))
                    params.extend(
                        pytest.param(repeat, id=repeat_id(repeat, config), marks=marks)
                        for repeat in repeats(config, spec)
                    )
    return params


def repeats(config: pytest.Config, spec: BenchmarkSpec) -> tuple[BenchmarkSpec, ...]:
    """`spec` once per seed of this session (`--seeds N`)."""
    return spec.repeats(config.getoption("--seeds"))


def repeat_id(spec: BenchmarkSpec, config: pytest.Config) -> str:
    """The case id, with the seed only when the session repeats cases (`...-pretrained-s43`)."""
    return f"{spec.id}-s{spec.recipe.seed}" if config.getoption("--seeds") > 1 else spec.id


def runnable(spec: BenchmarkSpec) -> str | None:
    """Why `spec` cannot run on this machine, or None."""
    return benchmark_skip_reason(spec.engine, spec.precision, spec.devices, detect(), spec.num_nodes)


def record_in_benchmark(benchmark, record: RunResult) -> None:
    """Put a record's figures where pytest-benchmark's JSON carries them (`extra_info`), as strict
    JSON (a non-finite value is null)."""
    info = dict(
        run_id=record.run_id,
        status=record.status,
        classes=len(record.data.get("classes") or ()) or None,  # which top-k metrics the case reports
        spec_id=record.case_id,
        recipe=BenchmarkSpec.from_dict(record.spec).recipe_fingerprint,
        fingerprint=record.fingerprint,
        seed=record.spec["recipe"]["seed"],
        train_images_per_s=round(record.train_images_per_s, 2),
        steady_images_per_s=round(record.steady_images_per_s or 0.0, 2),
        flops_train_per_image=record.flops.get("train_per_image"),
        achieved_tflops=record.achieved_tflops,
        mfu=record.mfu.get("measured"),
        mfu_vendor=record.mfu.get("vendor"),
        **(
            {"joules_per_image": record.energy["joules_per_image"]}
            if (record.energy or {}).get("joules_per_image") is not None
            else {}
        ),  # gated where both sides have it
        context=run_of(record).context,
        wall_time_s=round(record.wall_time_s, 2),
        epochs=len(record.history),
        **{k: round(v, 6) if v is not None else None for k, v in record.test.items()},
    )
    benchmark.extra_info.update(json_safe(info))


def assert_thresholds(spec: BenchmarkSpec, record: RunResult) -> None:
    assert record.ok, f"{spec.id}: {record.failure}"
    got = {t.metric: record.test.get(t.metric) for t in spec.thresholds}
    failed = [
        t.describe() + (f": got {got[t.metric]:.4f}" if isinstance(got[t.metric], float) else f": got {got[t.metric]}")
        for t in spec.thresholds
        if not t.holds(record.test)
    ]
    assert not failed, f"{spec.id} missed its thresholds: " + "; ".join(failed)


BENCHMARKS = Path(__file__).resolve().parent


def xdist_workers(config: pytest.Config) -> str | None:
    """How this session asks pytest-xdist for workers (`-n 2`, `--dist load`), or None (no xdist, -n 0)."""
    if config.getoption("dist", "no") == "no" or not config.getoption(
        "tx", None
    ):  # xdist's own test (`-n 0` leaves dist "no")
        return None
    workers = config.getoption("numprocesses", None)
    return f"-n {workers}" if workers else f"--dist {config.getoption('dist')}"


def selects_benchmarks(config: pytest.Config) -> bool:
    """Whether the session's paths reach the benchmark cases (`benchmarks`, a module or case in it, the repository)."""
    paths = [(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args]
    return any(path == BENCHMARKS or BENCHMARKS in path.parents or path in BENCHMARKS.parents for path in paths)


def refuse_xdist(config: pytest.Config) -> None:
    """Cases trained side by side share the cores, so no speed would be true, and pytest-benchmark disables itself
    under xdist (no --benchmark-json): refused before a case trains."""
    workers = xdist_workers(config)
    if workers and selects_benchmarks(config):
        raise pytest.UsageError(
            f"trainbench: pytest-xdist ({workers}) would train cases side by side on shared cores and pytest-benchmark"
            " disables itself under xdist, so no speed would be true and --benchmark-json would not be written; run"
            " without -n (spread cases over machines with `python -m harness nightly`)"
        )


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM taken as a Ctrl-C (`harness.interrupts`); pytest-xdist is refused; --baseline must be
    readable and hold runs, and --tolerance parse, before any case trains."""
    interrupts.install()
    refuse_xdist(config)
    baseline = config.getoption("--baseline", None)
    if not baseline:
        return
    try:
        parse_tolerances(config.getoption("--tolerance"))
        parse_metrics(config.getoption("--gate-metrics"))
    except ValueError as error:
        raise pytest.UsageError(str(error).replace("--metrics", "--gate-metrics")) from None
    try:
        found = observations(Path(baseline))
    except GateError as error:
        raise pytest.UsageError(f"--baseline: {error}") from None
    if not found:
        raise pytest.UsageError(
            f"--baseline {baseline} holds no runs (no result.json records, no pytest-benchmark cases); give last"
            " night's results folder"
        )


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo) -> None:
    """A Ctrl-C or SIGTERM ends a session as it ends `python -m harness run`: the checkpoint being
    written finished, the uploads waited for (at most `interrupts.TERM_WAIT_S` after a SIGTERM) or
    left local and named; pytest then exits 2 (interrupted)."""
    from harness.artifacts import after_interrupt

    after_interrupt()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    book = config.stash.get(RUN_BOOK, None)
    if book is None or not book.records:
        return
    from harness.results import report

    tables = report.write(list(book.records.values()), book.settings.results_dir)
    terminalreporter.write_sep("=", "trainbench summary")
    for table in tables:
        terminalreporter.write_line(table.markdown())
    terminalreporter.write_line(
        f"records and tables: {book.settings.results_dir} (summary.md, summary.csv, report.html)"
    )
    gate = config.stash.get(GATE, None)
    if isinstance(gate, GateError):
        terminalreporter.write_sep("=", "regression gate: ERROR")
        terminalreporter.write_line(f"the gate could not decide, so the session fails: {gate}")
    elif gate is not None:
        terminalreporter.write_sep(
            "=", "regression gate: " + ("pass" if gate.passed else "REGRESSION" if gate.regressions else "UNDECIDED")
        )
        terminalreporter.write_line(gate.render())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With --baseline: compare this session's runs with it; a regression fails the session."""
    config = session.config
    book = config.stash.get(RUN_BOOK, None)
    baseline = config.getoption("--baseline")
    if not baseline or book is None or not book.records:
        return
    current: dict[str, list] = {}
    for record in book.records.values():
        current.setdefault(record.gate_key, []).append(run_of(record))
    try:
        result = compare(
            observations(Path(baseline)),
            current,
            parse_tolerances(config.getoption("--tolerance")),
            labels=(f"baseline {baseline}", "this session"),
            metrics=parse_metrics(config.getoption("--gate-metrics")),
            across_devices=config.getoption("--gate-across-devices"),
        )
    except GateError as error:
        config.stash[GATE] = error
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    config.stash[GATE] = result
    if not result.passed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
