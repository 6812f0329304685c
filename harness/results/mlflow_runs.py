"""MLflow beside wandb: every run an MLflow run, logged live, and any folder of records importable.

`--mlflow auto` (the default where mlflow is installed: `pip install 'trainbench[mlflow]'`) logs to
a SQLite store in the results folder, `sqlite:///<results>/mlflow.db`, with artifacts beside it in
`<results>/mlartifacts/`, which `mlflow ui --backend-store-uri sqlite:///results/mlflow.db` opens
with no account and no network; a URI (`http://host:5000`, `sqlite:///path.db`, ...) logs to that
tracking store; `off` logs nothing. mlflow is imported only when a run is tracked.

In MLflow's own terms: one experiment per workflow (`fastvit`, `efficientnetv2`, `adhoc`), runs
named by case id, tags for engine, precision, devices, weights and profile, so its compare view
lines up pretrained against random and the precision x devices cells. A run logs, on rank 0: the
spec and recipe as params (flattened, `recipe.lr`, `recipe.train_augmentations`), then one step per
epoch of every history column; once its record is saved, the test metrics and the record's speed,
time and efficiency figures, tags for its identity (trainbench run id, fingerprint), environment
(versions, device, git commit) and checkpoint locations (folders, `gs://` URIs), and as artifacts
the record (as `record.json`: the store in `<results>/mlartifacts/` must not hold a second
`result.json` for whatever globs the results folder to count), history.csv and curves.png.

The record is the source of truth and MLflow a view of it: `import_records` (`trainbench
track`) logs records written without MLflow the same way. A record is keyed by its run id and start
time (the `trainbench.record` tag), so a record already in the store, logged live or imported, is
never added twice. MLflow failing mid-run never fails training: one line names the store and the
cause, the run goes on untracked in MLflow, and `track` imports its record later; a tracking server
that does not answer is refused before training (`check`). A fresh SQLite store is created by one
process at a time (a file lock beside it), so runs starting together each get their MLflow run. A
resumed run ends the MLflow run of the attempt it continues KILLED (the checkpoint names it).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock

from harness.errors import PreflightError

if TYPE_CHECKING:  # mlflow is imported when a run is tracked
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from harness.results.record import RunResult
    from harness.spec import BenchmarkSpec

RECORD_TAG = "trainbench.record"  # run id @ start time: one MLflow run per record
RUN_ID_TAG = "trainbench.run_id"
CASE_TAGS = ("engine", "precision", "devices", "weights", "profile", "model", "dataset")
RECORD_FIGURES = (
    "steady_images_per_s",
    "train_images_per_s",
    "wall_time_s",
    "data_wait_share",
    "achieved_tflops",
    "peak_gpu_memory_gib",
)
# run folder -> MLflow name: the record as record.json, never a second result.json under the results folder
ARTIFACTS = {"result.json": "record.json", "history.csv": "history.csv", "curves.png": "curves.png"}
ARTIFACT_FOLDER = "mlartifacts"  # beside a SQLite store
PARAM_CHARS = 6000  # MLflow's limit on a param value
BATCH = 100  # MLflow's limit on params (and tags) per log_batch call
HEALTH_TIMEOUT_S = 5.0
SQLITE = "sqlite:///"


def installed() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def tracking_uri(setting: str, results_dir: Path) -> str | None:
    """The store a run logs to: auto is the results folder's SQLite file
    (None without mlflow installed); off is None."""
    if setting == "off" or (setting == "auto" and not installed()):
        return None
    return f"{SQLITE}{Path(results_dir).resolve() / 'mlflow.db'}" if setting == "auto" else setting


def check(setting: str, results_dir: Path) -> None:
    """Before training: mlflow is there when a URI was asked for, and an HTTP tracking server answers."""
    if setting in ("auto", "off"):
        return
    if not installed():
        raise PreflightError(
            f"--mlflow {setting} needs mlflow, which is not installed; pip install 'trainbench[mlflow]' (or mlflow), or"
            " give --mlflow off"
        )
    if setting.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{setting.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_S) as answer:
                answer.read()
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise PreflightError(
                f"--mlflow {setting}: no MLflow tracking server answers there ({reason}); start one (`mlflow server"
                " --host 127.0.0.1 --port 5000`), give another URI, or --mlflow off"
            ) from None


def _client(uri: str) -> MlflowClient:
    """A client of `uri` whose store exists: a SQLite store is created (its tables migrated) under a lock
    beside its file, since two processes creating it at once lose one run (`Online migration expected
    to match one row`)."""
    from mlflow import MlflowClient

    for name in (
        "mlflow",
        "alembic",
    ):  # after the import, which sets mlflow's own levels: its table-creation lines say nothing a run's do not
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(
        logging.CRITICAL
    )  # its SQL and traceback on a store error: the caller says it in one line
    if not uri.startswith(SQLITE):
        return MlflowClient(tracking_uri=uri)
    with FileLock(f"{uri.removeprefix(SQLITE)}.lock"):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # the store is made on first use (the client or its first call)
    return client


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store go beside its file (MLflow's default would be ./mlruns under the current folder)."""
    if uri.startswith(SQLITE):
        return (Path(uri.removeprefix(SQLITE)).parent / ARTIFACT_FOLDER).resolve().as_uri()
    return None  # a server decides


def store_problem(uri: str, results_dir: Path, error: Exception) -> str:
    """One line for a store that failed during a run: where, why (the first line of the cause, without
    SQL), what happens now and how to get the run into MLflow later."""
    cause = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    cause = re.sub(r"^\([\w.]+\)\s*", "", cause)[:200]  # `(sqlite3.OperationalError) database is locked`
    where = uri.removeprefix(SQLITE) if uri.startswith(SQLITE) else _without_credentials(uri)
    track = f"trainbench track {results_dir}" + (
        "" if uri == tracking_uri("auto", results_dir) else f" --mlflow {_without_credentials(uri)}"
    )
    state = "locked" if "locked" in cause else "unavailable"
    return (
        f"mlflow store {where} is {state} ({cause}); the run goes on untracked in MLflow; import it later with {track}"
    )


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The workflow's experiment, created on first use (another process creating it at once is fine)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_root(uri), tags={"trainbench.workflow": name})
    except MlflowException:  # created meanwhile by another process, else a real store error, raised as it is
        raced = client.get_experiment_by_name(name)
        if raced is None:
            raise
        return raced.experiment_id


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"recipe": {"lr": 0.001}}` -> `{"recipe.lr": "0.001"}`; lists as JSON; each value cut at MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = (value if isinstance(value, str) else json.dumps(value))[:PARAM_CHARS]
    return flat


def case_tags(spec: Mapping[str, Any]) -> dict[str, str]:
    """What MLflow's compare view lines cells up by: engine, precision, devices, weights, profile, model, dataset."""
    return {key: str(spec[key]) for key in CASE_TAGS if key in spec} | {"workflow": str(spec.get("benchmark"))}


def record_tags(record: RunResult) -> dict[str, str]:
    """A record's identity, environment and checkpoint locations."""
    tags = {
        RECORD_TAG: f"{record.run_id}@{record.started_at}",
        RUN_ID_TAG: record.run_id,
        "trainbench.fingerprint": record.fingerprint,
        "status": record.status,
    }
    tags |= {f"env.{key}": str(value) for key, value in record.environment.items() if value is not None}
    saved = (record.extra.get("artifacts") or {}) if isinstance(record.extra, dict) else {}
    checkpoints = saved.get("checkpoints") or {}
    if checkpoints.get("folders"):
        tags["checkpoints.folders"] = ", ".join(checkpoints["folders"])
    if checkpoints.get("last"):
        tags["checkpoints.last"] = checkpoints["last"]
    if (saved.get("gcs") or {}).get("bucket"):
        tags["checkpoints.bucket"] = saved["gcs"]["bucket"]
    return tags


def epoch_metrics(row: Mapping[str, Any], timestamp_ms: int) -> list[Metric]:
    from mlflow.entities import Metric

    epoch = int(row["epoch"])
    return [
        Metric(key, float(value), timestamp_ms, epoch)
        for key, value in row.items()
        if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool)
    ]


def record_metrics(record: RunResult, timestamp_ms: int) -> list[Metric]:
    """The test metrics and the record's figures, at the last epoch's step."""
    from mlflow.entities import Metric

    step = len(record.history)
    values = (
        dict(record.test)
        | {key: getattr(record, key) for key in RECORD_FIGURES}
        | {"mfu": (record.mfu or {}).get("measured")}
    )
    joules_per_image = (record.energy or {}).get("joules_per_image")
    if joules_per_image is not None:
        values["joules_per_image"] = joules_per_image
    return [
        Metric(key, float(value), timestamp_ms, step)
        for key, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]


def _log(
    client: MlflowClient,
    run_id: str,
    metrics: Iterable[Metric] = (),
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    from mlflow.entities import Param, RunTag

    metric_list, param_list, tag_list = (
        list(metrics),
        [Param(k, v) for k, v in (params or {}).items()],
        [RunTag(k, v) for k, v in (tags or {}).items()],
    )
    for start in range(0, max(len(metric_list), len(param_list), len(tag_list), 1), BATCH):
        client.log_batch(
            run_id,
            metrics=metric_list[start : start + BATCH],
            params=param_list[start : start + BATCH],
            tags=tag_list[start : start + BATCH],
        )


def complete(client: MlflowClient, run_id: str, record: RunResult, run_dir: Path, end_ms: int | None = None) -> None:
    """What a run logs from its saved record: test metrics and figures, tags, artifacts; then it ends
    (FINISHED, or FAILED for a diverged run)."""
    now = int(time.time() * 1000)
    _log(client, run_id, record_metrics(record, now), tags=record_tags(record))
    for name, logged in ARTIFACTS.items():
        if not (run_dir / name).is_file():
            continue
        if name == logged:
            client.log_artifact(run_id, str(run_dir / name))
        else:
            client.log_text(run_id, (run_dir / name).read_text(), logged)
    client.set_terminated(run_id, "FINISHED" if record.ok else "FAILED", end_time=end_ms)


class MlflowTracker:
    """An MLflow run opened on the first epoch (rank 0 only), completed from the record by `publish`.
    After a store error it makes no further call: the record goes into MLflow later through `track`."""

    def __init__(self, setting: str, spec: BenchmarkSpec, run_id: str, results_dir: Path) -> None:
        self.uri = tracking_uri(setting, results_dir)
        self.spec, self.run_id, self.results_dir = spec, run_id, results_dir
        self.client: MlflowClient | None = None  # set before mlflow_run_id
        self.mlflow_run_id: str | None = None
        self.killed: str | None = None  # under --resume: the MLflow run of the attempt this run continues
        self.error: str | None = None

    @property
    def active(self) -> bool:
        return self._live() is not None

    def _live(self) -> tuple[MlflowClient, str] | None:
        """The client and the MLflow run while the run is open and no store error came, else None."""
        if self.client is None or self.mlflow_run_id is None or self.error is not None:
            return None
        return self.client, self.mlflow_run_id

    def _failed(self, error: Exception) -> None:
        assert self.uri is not None  # only a run with a store calls it
        self.error = f"{type(error).__name__}: {error}"[:500]
        print(f"[trainbench] {store_problem(self.uri, self.results_dir, error)}", flush=True)

    def _open(self) -> None:
        if self.mlflow_run_id is not None or self.uri is None or self.error:
            return
        try:
            client = self.client = _client(self.uri)
            self._end_killed(client)
            spec = self.spec.to_dict()
            experiment = experiment_id(client, self.spec.benchmark, self.uri)
            run = client.create_run(experiment, run_name=self.spec.id, tags=case_tags(spec) | {RUN_ID_TAG: self.run_id})
            self.mlflow_run_id = run.info.run_id
            _log(client, run.info.run_id, params=flatten(spec))
        except Exception as error:  # tracking must never fail training
            self._failed(error)

    def _end_killed(self, client: MlflowClient) -> None:
        """The interrupted attempt's run, RUNNING since its process died, ends KILLED (when it is in this store)."""
        from mlflow.exceptions import MlflowException

        if self.killed is None:
            return
        try:
            if client.get_run(self.killed).info.status == "RUNNING":
                client.set_terminated(self.killed, "KILLED")
        except MlflowException:  # another store (the run resumed elsewhere from the bucket)
            pass

    def log_epoch(self, row: dict[str, float]) -> None:
        self._open()
        live = self._live()
        if live is None:
            return
        try:
            _log(*live, epoch_metrics(row, int(time.time() * 1000)))
        except Exception as error:
            self._failed(error)

    def finish(self) -> dict[str, Any]:
        """What the record says about MLflow (the store and the run; never credentials)."""
        if self.uri is None:
            return {"mode": "off"}
        return {
            "uri": _without_credentials(self.uri),
            "experiment": self.spec.benchmark,
            "run_id": self.mlflow_run_id,
        } | ({"error": self.error} if self.error else {})

    def abandon(self, status: str) -> None:
        """A run that ends without a record (an error, Ctrl-C): its MLflow run ends FAILED or KILLED,
        not RUNNING forever."""
        live = self._live()
        if live is None:
            return
        client, mlflow_run_id = live
        try:
            client.set_terminated(mlflow_run_id, status)
        except Exception as error:
            self._failed(error)

    def publish(self, record: RunResult, run_dir: Path) -> None:
        """After the record is saved: complete the MLflow run from it."""
        live = self._live()
        if live is None:
            return
        try:
            complete(*live, record, run_dir)
        except Exception as error:
            self._failed(error)


def _without_credentials(uri: str) -> str:
    return re.sub(r"//[^/@]+@", "//", uri)


def in_artifact_store(path: Path, root: Path) -> bool:
    """Whether `path` (under `root`) is an MLflow store's own copy of a file (stores written before
    the record was logged as record.json hold a result.json there): never a record to count."""
    return ARTIFACT_FOLDER in Path(path).relative_to(root).parts


def import_records(results: Path, uri: str) -> tuple[list[str], list[str], list[str]]:
    """Every record under `results` (any depth: a results folder, a nightly's, baselines/) as an MLflow
    run in `uri`, unless one with its `trainbench.record` tag is there already. Returns the run ids
    added, those already there, and one line per unreadable record."""
    from harness.errors import RecordError
    from harness.results.record import RunResult

    client = _client(uri)
    added, present, problems = [], [], []
    for path in sorted(Path(results).rglob("result.json")):
        if in_artifact_store(path, results):
            continue
        try:
            record = RunResult.load(path)
        except RecordError as error:
            problems.append(str(error))
            continue
        key = f"{record.run_id}@{record.started_at}"
        experiment = experiment_id(client, record.spec.get("benchmark", "adhoc"), uri)
        if client.search_runs([experiment], filter_string=f"tags.`{RECORD_TAG}` = '{key}'", max_results=1):
            present.append(record.run_id)
            continue
        start_ms = _ms(record.started_at)
        run = client.create_run(
            experiment,
            run_name=record.case_id,
            start_time=start_ms,
            tags=case_tags(record.spec) | {RUN_ID_TAG: record.run_id},
        )
        elapsed = 0.0
        metrics = []
        for row in record.history:
            elapsed += float(row.get("epoch_time") or 0.0)
            metrics += epoch_metrics(row, start_ms + int(elapsed * 1000))
        _log(client, run.info.run_id, metrics, params=flatten(record.spec))
        complete(client, run.info.run_id, record, path.parent, end_ms=start_ms + int(record.wall_time_s * 1000))
        added.append(record.run_id)
    return added, present, problems


def _ms(iso: str | None) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else int(time.time() * 1000)
    except ValueError:
        return int(time.time() * 1000)
