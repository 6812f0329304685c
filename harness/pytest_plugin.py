"""trainbench's pytest plugin, registered under the `pytest11` entry point `trainbench` (as pytest-benchmark
registers its own), so every pytest session of an environment where trainbench is installed has it: options,
the run book (each case trained at most once per session), the session's summary tables and the regression
gate. A repository's benchmarks build specs, ask the `run_book` fixture for their records and assert on them.

Every option carries the `--trainbench-` prefix, so it never clashes with another plugin's (pytest-profiling owns
`--profile`, pytest-parallel `--workers`), and each has its TRAINBENCH_* environment twin. Torch and the training
stack are imported where a case is built, trained or reported, not here: what `pytest_configure` refuses
(pytest-xdist over the benchmarks, a --trainbench-baseline with no runs, a bad --trainbench-tolerance) is refused
before torch is imported, and a session that trains nothing pays for a few light imports alone (0.6 s here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness import interrupts
from harness.capabilities import PRECISIONS, SUPPORT
from harness.catalog import Workflow
from harness.data.named import num_classes
from harness.errors import GateError, SettingsError
from harness.extensions import importable
from harness.hardware import DEVICE_COUNTS, benchmark_skip_reason, detect
from harness.results.record import RunResult, json_safe
from harness.settings import (
    DEFAULT_PROFILE,
    EXPERIMENT_SUFFIX,
    PROFILES,
    PYTEST_PREFIX,
    Environment,
    RunSettings,
    environment,
    options,
    positive_int,
)
from harness.spec import BenchmarkSpec

if TYPE_CHECKING:  # the gate (scipy) is imported where a session compares, not in every session
    from harness.results.compare import Comparison

PREFIX = PYTEST_PREFIX
DEST = "trainbench_"
RUN_BOOK = pytest.StashKey["RunBook"]()
GATE: pytest.StashKey[Comparison | GateError] = pytest.StashKey()
MARKERS = (
    "gpu: needs a CUDA GPU (16-mixed, several GPUs); skipped with the reason elsewhere",
    "full: the published recipe on real data (--trainbench-profile full)",
    "ddp: starts several processes (Lightning DDP over gloo or NCCL)",
)


def plugin_options(twins: Environment) -> list[tuple[str, dict[str, Any]]]:
    """Every option of the plugin as (name without the prefix, argparse keywords with a `trainbench_` dest); the
    settings' options are `trainbench run`'s own (`harness.settings.options`), spelled the same there."""
    var = Environment.variable
    session: list[tuple[str, dict[str, Any]]] = [
        (
            "profile",
            dict(
                choices=PROFILES,
                default=twins.profile or DEFAULT_PROFILE,
                help=(
                    "smoke: the recipes shrunk for a CPU on generated data; full: the published recipes on real data;"
                    f" `trainbench run --profile` has the same default [{var('profile')}; default {DEFAULT_PROFILE}]"
                ),
            ),
        ),
        (
            "seeds",
            dict(
                type=positive_int,
                default=twins.seeds or 1,
                help=(
                    "run each case with N seeds (the recipe's, then +1, +2 ...); tables show mean ± std"
                    f" [{var('seeds')}; default 1]"
                ),
            ),
        ),
        ("epochs", dict(type=int, default=twins.epochs, help=f"override every recipe's epochs [{var('epochs')}]")),
        (
            "baseline",
            dict(
                default=None,
                help=(
                    "after the session, compare its runs with this results folder or pytest-benchmark JSON; a"
                    " regression fails the session"
                ),
            ),
        ),
        (
            "tolerance",
            dict(
                action="append",
                default=None,
                metavar="METRIC=VALUE",
                help="with --trainbench-baseline: override a metric's tolerance (repeatable)",
            ),
        ),
        (
            "gate-metrics",
            dict(
                default=None,
                metavar="NAMES",
                help=(
                    "with --trainbench-baseline: gate only these metrics, e.g. acc,loss (default: every gated metric;"
                    " one a side lacks leaves the gate undecided and fails the session)"
                ),
            ),
        ),
        (
            "gate-across-devices",
            dict(
                action="store_true",
                help=(
                    "with --trainbench-baseline: gate images/s and J/image against a baseline of another device too"
                    " (default: not gated there)"
                ),
            ),
        ),
    ]
    settings = [(flag.removeprefix("--"), dict(kwargs)) for flag, kwargs in options(twins)]
    return [(name, {**kwargs, "dest": DEST + name.replace("-", "_")}) for name, kwargs in session] + [
        (name, {**kwargs, "dest": DEST + kwargs["dest"]}) for name, kwargs in settings
    ]


def option(config: pytest.Config, name: str) -> Any:
    """The value of option `name` (`seeds`, `results_dir`, ...) in this session."""
    return config.getoption(DEST + name)


def add_options(
    parser: pytest.Parser,
    spelling: str = PREFIX,
    change: Callable[[str, dict[str, Any]], dict[str, Any]] = lambda name, kwargs: kwargs,
) -> None:
    """Every option into pytest's `trainbench` group, spelled `spelling + name`, with `change(name, keywords)`'s
    keywords; a TRAINBENCH_* twin holding a bad value is a usage error that names it."""
    try:
        twins = environment()
    except SettingsError as error:
        raise pytest.UsageError(str(error)) from None
    group = parser.getgroup("trainbench")
    for name, kwargs in plugin_options(twins):
        group.addoption(spelling + name, **change(name, kwargs))


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


class RunBook:
    """Each spec (on its data) runs at most once per session; later requests get the same record (or error)."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.records: dict[tuple[BenchmarkSpec, Path | None], RunResult] = {}
        self.failures: dict[tuple[BenchmarkSpec, Path | None], BaseException] = {}

    def get(self, spec: BenchmarkSpec, data_root: Path | None = None) -> RunResult:
        """`spec`'s record, trained the first time it is asked for (`data_root`: its dataset's folder, over the
        session's; an experiment file names one)."""
        key = (spec, data_root)
        if key in self.failures:
            raise RuntimeError(f"{spec.id} already failed earlier in this session") from self.failures[key]
        if key not in self.records:
            from harness import launch

            interrupts.install()  # a SIGTERM ends the session as a Ctrl-C does, once a case trains

            try:
                settings = self.settings if data_root is None else self.settings.replace(data_root=data_root)
                self.records[key] = launch.run(spec, settings)
            except BaseException as error:
                self.failures[key] = error
                raise
        return self.records[key]


def session_run_book(config: pytest.Config) -> RunBook:
    """The session's one run book, made at its first use (by the fixture or an experiment file's case)."""
    if RUN_BOOK not in config.stash:
        settings = RunSettings.from_options(lambda dest: option(config, dest)).replace(project_dir=config.rootpath)
        config.stash[RUN_BOOK] = RunBook(settings)
    return config.stash[RUN_BOOK]


@pytest.fixture(scope="session")
def run_settings(pytestconfig: pytest.Config) -> RunSettings:
    """This session's settings (results folder, caches, tracking), from the options and their twins; the project
    under test, whose commit the records name, is the repository of pytest's rootdir."""
    return session_run_book(pytestconfig).settings


@pytest.fixture(scope="session")
def run_book(pytestconfig: pytest.Config) -> RunBook:
    """The session's run book: `run_book.get(spec)` trains `spec` once and returns its record."""
    return session_run_book(pytestconfig)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """An experiment file (`*.trainbench.yaml`, harness.experiment) is collected as its cases."""
    if file_path.name.endswith(EXPERIMENT_SUFFIX):
        return ExperimentFile.from_parent(parent, path=file_path)
    return None


class ExperimentFile(pytest.File):
    """An experiment file's cases, each once per seed of the session; a case this machine cannot run is skipped
    with why; a file that is not valid is one line, before any case trains."""

    def collect(self) -> Iterable[pytest.Item]:
        from harness.errors import HarnessError
        from harness.experiment import read

        try:
            cases = read(self.path, option(self.config, "profile"))
        except HarnessError as error:
            raise self.CollectError(str(error)) from None
        for case in cases:
            reason = runnable(case.spec)
            for spec in repeats(self.config, case.spec):
                item = ExperimentCase.from_parent(self, name=repeat_id(spec, self.config, case.id), spec=spec)
                item.data_root = case.data_root
                marks = [pytest.mark.skip(reason=reason)] if reason else []
                marks += [pytest.mark.ddp] if spec.processes > 1 else []
                device_list = SUPPORT[spec.engine].several_devices_as == "device_list" and spec.devices > 1
                marks += [pytest.mark.gpu] if spec.precision == "16-mixed" or device_list else []
                marks += [pytest.mark.full] if spec.profile == "full" else []
                for mark in marks:
                    item.add_marker(mark)
                yield item


class ExperimentCase(pytest.Item):
    """One case of an experiment file: trained through the session's run book, held to its thresholds."""

    def __init__(self, *, spec: BenchmarkSpec, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.data_root: Path | None = None

    def runtest(self) -> None:
        from harness.api import assert_thresholds

        assert_thresholds(self.spec, session_run_book(self.config).get(self.spec, self.data_root))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, AssertionError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


def case_spec(config: pytest.Config, workflow: Workflow, **choices: Any) -> BenchmarkSpec:
    """The spec of one matrix cell of a catalog workflow under this session's profile and options
    (`configure.case_spec`)."""
    from harness import configure

    profile = option(config, "profile")
    return configure.case_spec(
        workflow,
        profile,
        num_classes=num_classes(workflow.dataset_in(profile)),
        options={"epochs": option(config, "epochs")},
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
) -> list[Any]:
    """pytest params for engines x weights x precisions x devices; what cannot run here is skipped with why."""
    params: list[Any] = []
    for engine in engines:
        for w in weights or workflow.weights:
            for precision in precisions:
                for n in devices:
                    spec = case_spec(config, workflow, weights=w, precision=precision, devices=n, engine=engine)
                    marks: list[Any] = []
                    if precision == "16-mixed" or (SUPPORT[engine].several_devices_as == "device_list" and n > 1):
                        marks.append(pytest.mark.gpu)
                    if spec.profile == "full":
                        marks.append(pytest.mark.full)
                    params.extend(case_params(config, spec, marks=marks))
    return params


def repeats(config: pytest.Config, spec: BenchmarkSpec) -> tuple[BenchmarkSpec, ...]:
    """`spec` once per seed of this session (`--trainbench-seeds N`)."""
    return spec.repeats(option(config, "seeds"))


def repeat_id(spec: BenchmarkSpec, config: pytest.Config, name: str | None = None) -> str:
    """The case's id (`name`, default the spec's), with the seed only when the session repeats cases
    (`...-pretrained-s43`)."""
    name = name or spec.id
    return f"{name}-s{spec.recipe.seed}" if option(config, "seeds") > 1 else name


def runnable(spec: BenchmarkSpec) -> str | None:
    """Why `spec` cannot run on this machine, or None."""
    return benchmark_skip_reason(spec.engine, spec.precision, spec.devices, detect(), spec.num_nodes)


def case_params(
    config: pytest.Config, spec: BenchmarkSpec, name: str | None = None, marks: Sequence[Any] = ()
) -> list[Any]:
    """`spec` as pytest params, once per seed of the session (`repeat_id`), with `marks`; skipped with why where
    this machine cannot run it."""
    reason = runnable(spec)
    marks = [*marks, pytest.mark.skip(reason=reason)] if reason else list(marks)
    return [pytest.param(repeat, id=repeat_id(repeat, config, name), marks=marks) for repeat in repeats(config, spec)]


def parametrize(
    metafunc: pytest.Metafunc, specs: Sequence[BenchmarkSpec], ids: Sequence[str] | None = None, argname: str = "spec"
) -> None:
    """Parametrize `argname` with `specs` (from `pytest_generate_tests`), each once per seed of the session
    (`--trainbench-seeds N`, which bisect sets too); the ids are `ids` (default each spec's id), ending in `-s<seed>`
    when the session repeats cases; a case this machine cannot run is skipped with why."""
    names: Sequence[str | None] = ids or [None] * len(specs)
    params = [p for spec, name in zip(specs, names, strict=True) for p in case_params(metafunc.config, spec, name)]
    metafunc.parametrize(argname, params)


def record_in_benchmark(benchmark: Any, record: RunResult) -> None:
    """Put a record's figures where pytest-benchmark's JSON carries them (`extra_info`), as strict
    JSON (a non-finite value is null)."""
    from harness.results.observations import run_of

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
            {"joules_per_image": (record.energy or {})["joules_per_image"]}
            if (record.energy or {}).get("joules_per_image") is not None
            else {}
        ),  # gated where both sides have it
        context=run_of(record).context,
        metric_directions={k: "higher" if v else "lower" for k, v in run_of(record).directions.items()} or None,
        wall_time_s=round(record.wall_time_s, 2),
        epochs=len(record.history),
        **{k: round(v, 6) if v is not None else None for k, v in record.test.items()},
    )
    benchmark.extra_info.update(json_safe(info))


def xdist_workers(config: pytest.Config) -> str | None:
    """How this session asks pytest-xdist for workers (`-n 2`, `--dist load`), or None (no xdist, -n 0)."""
    if config.getoption("dist", "no") == "no" or not config.getoption("tx", None):  # `-n 0` leaves dist "no"
        return None
    workers = config.getoption("numprocesses", None)
    return f"-n {workers}" if workers else f"--dist {config.getoption('dist')}"


def selects_benchmarks(config: pytest.Config) -> bool:
    """Whether the session's paths reach the benchmarks of its repository (`benchmarks/` under pytest's rootdir: the
    folder, a module or case in it, or the repository itself)."""
    benchmarks = config.rootpath / "benchmarks"
    paths = [(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args]
    return any(path == benchmarks or benchmarks in path.parents or path in benchmarks.parents for path in paths)


def refuse_xdist(config: pytest.Config) -> None:
    """Cases trained side by side share the cores, so no speed would be true, and pytest-benchmark disables itself
    under xdist (no --benchmark-json): refused before a case trains."""
    workers = xdist_workers(config)
    if workers and selects_benchmarks(config):
        raise pytest.UsageError(
            f"trainbench: pytest-xdist ({workers}) would train cases side by side on shared cores and pytest-benchmark"
            " disables itself under xdist, so no speed would be true and --benchmark-json would not be written; run"
            " without -n (spread cases over machines with `trainbench nightly`)"
        )


def pytest_configure(config: pytest.Config) -> None:
    """Markers registered; pytest-xdist over benchmarks is refused; --trainbench-baseline must be readable and hold
    runs, and --trainbench-tolerance parse, before any case trains."""
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    importable(config.rootpath)  # the project under test: its extensions import in the session and its benchmarks
    refuse_xdist(config)
    baseline = option(config, "baseline")
    if not baseline:
        return
    from harness.results.compare import gated, parse_metrics, parse_tolerances
    from harness.results.observations import observations

    try:
        tolerances = parse_tolerances(option(config, "tolerance"))
        metrics = parse_metrics(option(config, "gate_metrics"))
    except ValueError as error:
        raise pytest.UsageError(str(error).replace("--metrics", f"{PREFIX}gate-metrics")) from None
    try:
        found = observations(Path(baseline))
    except GateError as error:
        raise pytest.UsageError(f"{PREFIX}baseline: {error}") from None
    if not found:
        raise pytest.UsageError(
            f"{PREFIX}baseline {baseline} holds no runs (no result.json records, no pytest-benchmark cases); give"
            " last night's results folder"
        )
    try:  # a misspelt metric name, before anything trains: a custom one must be in the baseline to be compared
        gated(tolerances, metrics, (found,))
    except GateError as error:
        raise pytest.UsageError(
            f"{PREFIX}tolerance / {PREFIX}gate-metrics, checked against the baseline {baseline}: {error}"
        ) from None


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """A Ctrl-C or SIGTERM ends a session as it ends `trainbench run`: the checkpoint being written finished, the
    uploads waited for (at most `interrupts.TERM_WAIT_S` after a SIGTERM) or left local and named; pytest then
    exits 2 (interrupted)."""
    from harness.artifacts import after_interrupt

    after_interrupt()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
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
    """With --trainbench-baseline: compare this session's runs with it; a regression fails the session."""
    config = session.config
    book = config.stash.get(RUN_BOOK, None)
    baseline = option(config, "baseline")
    if not baseline or book is None or not book.records:
        return
    from harness.results.compare import compare, parse_metrics, parse_tolerances
    from harness.results.observations import observations, run_of

    current: dict[str, list[Any]] = {}
    for record in book.records.values():
        current.setdefault(record.gate_key, []).append(run_of(record))
    try:
        result = compare(
            observations(Path(baseline)),
            current,
            parse_tolerances(option(config, "tolerance")),
            labels=(f"baseline {baseline}", "this session"),
            metrics=parse_metrics(option(config, "gate_metrics")),
            across_devices=option(config, "gate_across_devices"),
        )
    except GateError as error:
        config.stash[GATE] = error
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    config.stash[GATE] = result
    if not result.passed and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
