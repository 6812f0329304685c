"""MLflow beside wandb, against the real thing: a `mlflow server` on loopback over a SQLite store, a
run logged live and read back through MlflowClient, records imported once, an unreachable server
refused before training, and the server's page of the experiment in headless Chromium. (A killed and
resumed run's MLflow and wandb runs: test_artifacts.py::test_killed_run_resumes_to_the_same_history_and_metrics.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from harness.artifacts.emulator import free_port
from harness.results.observations import observations
from harness.results.record import RunResult
from tests.test_fail_fast import run_cli, tiny_run_args

pytestmark = pytest.mark.slow  # every test here trains or starts a server
mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'trainbench[mlflow]')")

CHROMIUM = next((path for path in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if path), None)
START_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 over a SQLite store, proxying artifacts into a folder; its whole
    process group (the web workers, the job consumers) is stopped afterwards."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--serve-artifacts",
        "--artifacts-destination",
        str(root / "artifacts"),
    ]
    log = (root / "server.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow server did not answer within {START_TIMEOUT_S:.0f}"
                        f" s:\n{(root / 'server.log').read_text()[-3000:]}"
                    )
                time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        log.close()


def only_record(results: Path) -> RunResult:
    (path,) = results.glob("*/result.json")
    return RunResult.load(path)


def test_a_run_logs_live_to_a_tracking_server_and_its_record_imports_once(server, tiny_folder, tmp_path, capsys):
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path, "--epochs", "2", "--mlflow", server))
    assert code == 0, out + err
    record = only_record(tmp_path / "results")
    assert record.extra["artifacts"]["mlflow"]["uri"] == server
    client = mlflow.MlflowClient(server)
    experiment = client.get_experiment_by_name(record.spec["benchmark"])
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == record.extra["artifacts"]["mlflow"]["run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name == record.case_id
    assert (
        run.data.params["recipe.lr"] == str(record.spec["recipe"]["lr"])
        and run.data.params["model"] == record.spec["model"]
    )
    assert {k: run.data.tags[k] for k in ("engine", "precision", "devices", "weights", "profile")} == {
        "engine": record.spec["engine"],
        "precision": record.spec["precision"],
        "devices": "1",
        "weights": "random",
        "profile": record.spec["profile"],
    }
    assert (
        run.data.tags["trainbench.run_id"] == record.run_id
        and run.data.tags["trainbench.fingerprint"] == record.fingerprint
    )
    assert (
        run.data.tags["env.torch"] == record.environment["torch"]
        and run.data.tags.get("env.git_commit") == record.environment["git_commit"]
    )
    for column in ("train_loss", "val_acc", "images_per_s", "data_wait_time"):
        history = client.get_metric_history(run.info.run_id, column)
        assert [m.step for m in history] == [1, 2] and [m.value for m in history] == pytest.approx(
            [row[column] for row in record.history]
        ), column
    assert run.data.metrics["test_acc"] == pytest.approx(record.test["test_acc"])
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "curves.png",
        "history.csv",
        "record.json",
    ]

    code, out, _ = run_cli(capsys, "track", str(tmp_path / "results"), "--mlflow", server)
    assert code == 0 and "0 run(s) added, 1 already" in out, out  # the live run is that record: nothing added

    store = f"sqlite:///{tmp_path / 'fresh.db'}"
    code, out, _ = run_cli(capsys, "track", str(tmp_path / "results"), "--mlflow", store)
    assert code == 0 and "1 run(s) added, 0 already" in out, out
    code, out, _ = run_cli(capsys, "track", str(tmp_path / "results"), "--mlflow", store)
    assert code == 0 and "0 run(s) added, 1 already" in out, out
    fresh = mlflow.MlflowClient(store)
    (imported,) = fresh.search_runs([fresh.get_experiment_by_name(record.spec["benchmark"]).experiment_id])
    assert imported.data.params == run.data.params and imported.info.run_name == run.info.run_name
    assert [m.value for m in fresh.get_metric_history(imported.info.run_id, "val_loss")] == pytest.approx(
        [row["val_loss"] for row in record.history]
    )
    assert sorted(a.path for a in fresh.list_artifacts(imported.info.run_id)) == [
        "curves.png",
        "history.csv",
        "record.json",
    ]


@pytest.mark.skipif(
    CHROMIUM is None,
    reason=(
        "no Chromium here (Debian: apt-get install chromium); the MLflow page is checked in a real headless browser"
        " where there is one"
    ),
)
@pytest.mark.heavy
def test_the_servers_page_of_the_experiment_lists_the_run(server, tiny_folder, tmp_path, capsys):
    code, out, err = run_cli(
        capsys, *tiny_run_args(tiny_folder, tmp_path, "--mlflow", server, "--run-id", "browser-check")
    )
    assert code == 0, out + err
    record = only_record(tmp_path / "results")
    experiment = mlflow.MlflowClient(server).get_experiment_by_name(record.spec["benchmark"])
    page = f"{server}/#/experiments/{experiment.experiment_id}/runs"
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=30000", "--dump-dom", page],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
    assert record.case_id in dom, dom[-2000:]


def test_an_unreachable_tracking_server_is_refused_before_training(tiny_folder, tmp_path, capsys):
    nobody = f"http://127.0.0.1:{free_port()}"
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path, "--mlflow", nobody))
    assert (
        code == 2
        and err.strip().startswith(f"error: --mlflow {nobody}: no MLflow tracking server answers there")
        and len(err.strip().splitlines()) == 1
    ), err
    assert not list((tmp_path / "results").glob("*/result.json")) and "epoch 1/1" not in out, "nothing trained"


def test_auto_leaves_a_sqlite_store_in_the_results_folder(tiny_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAINBENCH_MLFLOW", raising=False)
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path))  # no --mlflow: auto
    assert code == 0, out + err
    store = tmp_path / "results" / "mlflow.db"
    assert store.is_file() and (tmp_path / "results" / "mlartifacts").is_dir()
    client = mlflow.MlflowClient(f"sqlite:///{store}")
    record = only_record(tmp_path / "results")
    (run,) = client.search_runs([client.get_experiment_by_name(record.spec["benchmark"]).experiment_id])
    assert run.data.tags["trainbench.run_id"] == record.run_id and sorted(
        a.path for a in client.list_artifacts(run.info.run_id)
    ) == ["curves.png", "history.csv", "record.json"]
    # one result.json per run under the results folder: the store's copy of the record is record.json
    assert list((tmp_path / "results").rglob("result.json")) == [tmp_path / "results" / record.run_id / "result.json"]


def test_readers_count_a_record_once_beside_a_store_that_copied_it_as_result_json(tiny_folder, tmp_path, capsys):
    """Stores written before the record was logged as record.json hold a second result.json; every
    reader of a results folder (report, compare, track) counts the run once."""
    code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path))
    assert code == 0, err
    results = tmp_path / "results"
    record = only_record(results)
    legacy = results / "mlartifacts" / "1" / "0123abcd" / "artifacts" / "result.json"
    legacy.parent.mkdir(parents=True)
    shutil.copyfile(results / record.run_id / "result.json", legacy)
    code, out, err = run_cli(capsys, "report", str(results))
    assert code == 0 and [line.startswith(f"| {record.case_id} ") for line in out.splitlines()].count(True) == 1, out
    assert [len(runs) for runs in observations(results).values()] == [1]
    code, out, err = run_cli(capsys, "compare", str(results), str(results))
    assert code == 0, out + err
    code, out, _ = run_cli(capsys, "track", str(results), "--mlflow", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert code == 0 and "1 run(s) added" in out, out


def test_the_gpu_records_import_into_a_fresh_store(tmp_path, capsys):
    from harness.settings import REPO_ROOT

    folder = REPO_ROOT / "baselines" / "nvidia-h200"
    records = list(folder.rglob("result.json"))
    store = f"sqlite:///{tmp_path / 'h200.db'}"
    code, out, _ = run_cli(capsys, "track", str(folder), "--mlflow", store)
    assert code == 0 and f"{len(records)} run(s) added, 0 already" in out and len(records) >= 10, out
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert {r.data.tags["env.device"] for r in runs} == {RunResult.load(records[0]).environment["device"]} and all(
        "H200" in r.data.tags["env.device"] for r in runs
    )


OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
# imported before the start signal: the processes race on creating the store, not on imports
from mlflow import MlflowClient
from harness.results import mlflow_runs
from tests.conftest import tiny_spec
results, go, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
tracker = mlflow_runs.MlflowTracker("auto", tiny_spec(), name, results)
while not go.exists():
    time.sleep(0.002)
tracker.log_epoch({"epoch": 1, "train_loss": 1.0})
print(tracker.mlflow_run_id, tracker.error)
"""


@pytest.mark.heavy
def test_runs_starting_at_once_into_a_fresh_store_each_get_their_mlflow_run(tmp_path):
    """Real processes open the default store (`auto`: results/mlflow.db, not there yet) at the same moment."""
    results, go = tmp_path / "results", tmp_path / "go"
    results.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, str(results), str(go), f"run-{k}"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        for k in range(3)
    ]
    time.sleep(15)  # every process imported mlflow and waits
    go.touch()
    outputs = [p.communicate(timeout=120)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    assert all(out.strip().splitlines()[-1].endswith(" None") for out in outputs), (
        outputs
    )  # each got a run id, no error
    client = mlflow.MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.data.tags["trainbench.run_id"] for r in runs) == ["run-0", "run-1", "run-2"]


@pytest.mark.heavy
def test_a_locked_store_is_one_line_and_the_run_is_recorded_for_track(tiny_folder, tmp_path, capsys):
    """Another process holds the SQLite store in an exclusive transaction for the whole run."""
    import sqlite3

    db = tmp_path / "results" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    mlflow.MlflowClient(uri).search_experiments()  # the store exists, tables and all
    capsys.readouterr()  # mlflow's lines about making it
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path, "--epochs", "2", "--mlflow", uri))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 0, out + err
    record = only_record(tmp_path / "results")
    assert len(record.history) == 2 and "locked" in record.extra["artifacts"]["mlflow"]["error"]
    said = [line for line in (out + err).splitlines() if "mlflow" in line.lower()]
    assert said == [
        f"[trainbench] mlflow store {db} is locked (database is locked); the run goes on untracked in MLflow; "
        f"import it later with trainbench track {tmp_path / 'results'}"
    ], out + err
    assert "[SQL:" not in out + err and "Traceback" not in out + err
    code, out, _ = run_cli(capsys, "track", str(tmp_path / "results"), "--mlflow", uri)
    assert code == 0 and "1 run(s) added, 0 already" in out, out
