"""The result record of one run: `results/<run-id>/result.json` and `history.csv`.

The record is the only thing tables, comparisons and the regression gate read, so it holds
everything they need: the spec, per-epoch history, test metrics, speed, time and environment, and
the distance to the limit: FLOPs per image, achieved TFLOP/s, MFU and energy (`harness.efficiency`).

`status` is `ok`, or `diverged` for a run whose training, validation or test loss stopped being a
finite number (its `extra.divergence` says in which phase, at which epoch and lr; it has no test
metrics unless the test loss was the one). Every reader decides with
`RunResult.ok` and `finished`: tables show such runs as diverged and leave them out of means, the
gate counts them as regressions. Records are strict JSON: a non-finite number is written as null.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.atomic import written_atomically
from harness.errors import RecordError
from harness.settings import REPO_ROOT
from harness.spec import METRIC_NAMES, BenchmarkSpec

RESULT_FILE = "result.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"


STATUSES = ("ok", "diverged")


def json_safe(value: Any) -> Any:
    """`value` with every nan or infinity replaced by None, so that `json.dumps(..., allow_nan=False)`
    writes strict JSON (Python's default writes `NaN`, which JSON.parse and most other readers refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


@dataclass
class RunResult:
    run_id: str
    spec: dict[str, Any]
    history: list[dict[str, float]]
    test: dict[str, float]
    wall_time_s: float
    train_images_per_s: float
    environment: dict[str, Any]
    started_at: str
    extra: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # of everything that determines the result (harness.identity)
    data: dict[str, Any] = field(default_factory=dict)  # resolved path, content fingerprint, classes, split sizes
    weights: dict[str, Any] = field(
        default_factory=dict
    )  # random, a file (path, sha256), a generated stand-in, or a hub id
    batch: dict[str, int] = field(default_factory=dict)  # global, processes, per process, per device
    loader: dict[str, Any] = field(default_factory=dict)  # workers used and where from, the recipe's published count
    target: dict[str, Any] = field(default_factory=dict)  # time-to-target accuracy and where it comes from
    execution: dict[str, Any] = field(
        default_factory=dict
    )  # --compile, --fused-optimizer; empty in records before them
    # median over epochs after the first (results.speed); None in records before it
    steady_images_per_s: float | None = None
    data_wait_share: float | None = None  # of the steady epochs' training time, waiting for batches (results.speed)
    # the most this process's tensors held on its GPU (allocated, not the allocator's reserve); None on CPUs
    peak_gpu_memory_gib: float | None = None
    status: str = "ok"  # or "diverged" (module docstring); records before it are "ok"
    flops: dict[str, float] = field(
        default_factory=dict
    )  # forward_per_image, train_per_image (efficiency.flops); empty in records before them
    achieved_tflops: float | None = None  # train FLOPs per image x steady images/s (all devices together)
    mfu: dict[str, Any] = field(
        default_factory=dict
    )  # achieved over the measured and the vendor's peak, with both peaks (efficiency.peak)
    # joules, kwh, joules_per_image, mean_watts over the training epochs; None: see energy_note
    energy: dict[str, float | None] | None = None
    energy_note: str | None = None  # why a run has no energy figures

    @property
    def ok(self) -> bool:
        """A run that trained to the end: its metrics may enter means, tables and the gate as values."""
        return self.status == "ok"

    @property
    def failure(self) -> str | None:
        """One line saying why the run did not finish (None for an ok run)."""
        if self.ok:
            return None
        message: str = self.extra.get("divergence", {}).get("message", self.status)
        return message

    @property
    def benchmark(self) -> str:
        name: str = self.spec["benchmark"]
        return name

    @property
    def case_id(self) -> str:
        """The readable matrix cell this run belongs to (its run id without fingerprint or attempt)."""
        return BenchmarkSpec.from_dict(self.spec).id

    @property
    def gate_key(self) -> str:
        """What the regression gate matches across nights: the case and its recipe (`case@1a2b3c4d`),
        so a 2-epoch run never averages with a 40-epoch run of the same cell."""
        spec = BenchmarkSpec.from_dict(self.spec)
        return f"{spec.id}@{spec.recipe_fingerprint}"

    def figures(self) -> dict[str, Any]:
        """The figures that tables and the gate compute with, by their place in result.json (`test.test_acc`)."""
        if not isinstance(self.test, dict) or not isinstance(self.energy or {}, dict):
            raise TypeError("test and energy must be objects of figures")
        speeds = {"train_images_per_s": self.train_images_per_s, "steady_images_per_s": self.steady_images_per_s}
        energy = {f"energy.{k}": v for k, v in (self.energy or {}).items()}
        return {**{f"test.{k}": v for k, v in self.test.items()}, **energy, **speeds, "wall_time_s": self.wall_time_s}

    def time_to_target(self, target: float | None) -> tuple[int, float] | None:
        """First epoch (and cumulative training seconds) at which val accuracy reached `target`."""
        if target is None:
            return None
        elapsed = 0.0
        for row in self.history:
            elapsed += row.get("epoch_time", 0.0)
            if row.get("val_acc", -1.0) >= target:
                return int(row["epoch"]), elapsed
        return None

    def save(self, run_dir: Path, plot: Callable[[list[dict[str, float]], Path, str], Path] | None = None) -> Path:
        """result.json, history.csv and, with `plot` (`plots.plot_curves`), curves.png, each written
        atomically; a failure is a RecordError and leaves no temporary file behind."""
        path = run_dir / RESULT_FILE
        try:
            with written_atomically(path) as tmp:
                tmp.write_text(json.dumps(json_safe(asdict(self)), indent=2, sort_keys=True, allow_nan=False))
            with written_atomically(run_dir / HISTORY_FILE) as tmp:
                write_history_csv(self.history, tmp)
            if self.history and plot is not None:
                with written_atomically(run_dir / CURVES_FILE) as tmp:
                    plot(self.history, tmp, self.run_id)
        except OSError as error:
            raise RecordError(
                f"the record of {self.run_id} could not be written to {run_dir} ({error.strerror or error}); free space"
                " or choose another --results-dir"
            ) from None
        return path

    def _repr_markdown_(self) -> str:
        """A notebook shows a record as its summary line and its row of the cases table (IPython's rich display)."""
        from harness.results.tables import cases_table  # tables read records: imported when shown

        return f"`{self.summary()}`\n\n{cases_table([self]).markdown()}"

    def summary(self) -> str:
        """One line: run id, test metrics (in one order whichever engine produced them), speed and time."""
        if not self.ok:
            return f"{self.run_id}: {self.status} after {len(self.history)} epoch(s)  {self.wall_time_s:.1f}s"
        order = [f"test_{name}" for name in METRIC_NAMES]
        shown = "  ".join(
            f"{k}={self.test[k] if self.test[k] is None else format(self.test[k], '.4f')}"
            for k in sorted(self.test, key=lambda k: order.index(k) if k in order else len(order))
        )
        steady = f" (steady {self.steady_images_per_s:.1f})" if self.steady_images_per_s is not None else ""
        if self.achieved_tflops is not None:
            steady += f"  {self.achieved_tflops:.3g} TFLOP/s" + (
                f", MFU {self.mfu['measured']:.1%}" if self.mfu.get("measured") is not None else ""
            )
        wait = f"  data wait {self.data_wait_share:.0%}" if self.data_wait_share is not None else ""
        memory = f"  peak GPU memory {self.peak_gpu_memory_gib:.1f} GiB" if self.peak_gpu_memory_gib is not None else ""
        return (
            f"{self.run_id}: {shown}  train {self.train_images_per_s:.1f} img/s{steady}{wait}{memory} "
            f" {self.wall_time_s:.1f}s"
        )

    @classmethod
    def load(cls, path: Path) -> RunResult:
        try:
            record = cls(**json.loads(Path(path).read_text()))
            BenchmarkSpec.from_dict(record.spec)  # a spec this version cannot read makes no table row
            if record.status not in STATUSES:
                raise ValueError(f"status {record.status!r} is none of {', '.join(STATUSES)}")
            for name, value in record.figures().items():
                if value is not None and (type(value) is bool or not isinstance(value, (int, float))):
                    raise ValueError(f"{name} is {value!r}, not a number or null")
        except (
            OSError,
            UnicodeDecodeError,
            ValueError,
            TypeError,
            KeyError,
        ) as error:  # JSONDecodeError, SpecError are ValueErrors
            raise RecordError(
                f"{path} is not a readable result record ({type(error).__name__}: {error}); fix or remove it"
            ) from None
        return record


def finished(records: Sequence[RunResult]) -> list[RunResult]:
    """The records whose metrics are values to average: every run that is `ok`."""
    return [r for r in records if r.ok]


def write_history_csv(history: list[dict[str, float]], path: Path) -> None:
    """One row per epoch: epoch, lr, epoch time, then train and val metrics."""
    columns: list[str] = []
    for row in history:
        columns.extend(k for k in row if k not in columns)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def load_all(results_dir: Path) -> list[RunResult]:
    """Every record under `results_dir`, in run-id order; an unreadable one is a RecordError."""
    return [RunResult.load(p) for p in sorted(Path(results_dir).glob(f"*/{RESULT_FILE}"))]


def load_readable(results_dir: Path) -> tuple[list[RunResult], list[str]]:
    """The readable records under `results_dir`, and one message per record that is not (for reports,
    which show what they can; the regression gate refuses instead)."""
    records, problems = [], []
    for path in sorted(Path(results_dir).glob(f"*/{RESULT_FILE}")):
        try:
            records.append(RunResult.load(path))
        except RecordError as error:
            problems.append(str(error))
    return records, problems


def git_state(folder: Path) -> tuple[str, str, bool | None] | None:
    """The git checkout `folder` lies in: its top folder's name, its commit, and whether tracked files differ from
    that commit (None when git could not say); None outside a checkout, or before its first commit."""

    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:  # --no-optional-locks: reading never takes the index lock a user's git may hold
            return subprocess.run(
                ["git", "--no-optional-locks", "-C", str(folder), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = git("rev-parse", "--show-toplevel", "HEAD")
    lines = head.stdout.splitlines() if head and head.returncode == 0 else []
    if len(lines) != 2:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    dirty = bool(status.stdout.strip()) if status and status.returncode == 0 else None
    return Path(lines[0]).name, lines[1], dirty


def _trainbench_commit() -> str | None:
    """trainbench's own commit when it runs from a checkout of it (an editable install); None from a wheel, whose
    folder may lie inside another repository (a project's virtual environment) that is not trainbench."""
    state = git_state(REPO_ROOT) if (REPO_ROOT / ".git").exists() else None
    return state[1] if state else None


def environment(project_dir: Path) -> dict[str, Any]:
    """Versions and hardware that a result depends on (no credentials, no paths with secrets): the project under
    test (the git checkout `project_dir` lies in: its name, commit and whether it has uncommitted changes) beside
    trainbench's own version and commit."""
    import albumentations
    import lightning
    import poutyne
    import timm
    import torch
    import torchmetrics

    from harness.hardware import detect

    hw = detect()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "lightning": lightning.__version__,
        "poutyne": poutyne.__version__,
        "torchmetrics": torchmetrics.__version__,
        "albumentations": albumentations.__version__,
        "cuda": torch.version.cuda if hw.gpus else None,  # the build's CUDA means nothing without a GPU
        "device": hw.gpu_name or f"cpu ({platform.processor() or platform.machine()}, {hw.cpu_cores} cores)",
        "gpus": hw.gpus,
        "trainbench": __version__,
        "git_commit": _trainbench_commit(),
        **project_state(project_dir),
    }


def project_state(project_dir: Path) -> dict[str, Any]:
    """`project`, `project_commit`, `project_dirty` of the checkout `project_dir` lies in (None each outside git)."""
    state = git_state(project_dir)
    name, commit, dirty = state if state else (None, None, None)
    return {"project": name, "project_commit": commit, "project_dirty": dirty}
