"""The nightly on a real two-node Ray cluster on loopback (separate `ray start` processes, 1 CPU
each, separate scratch folders) and a real GCS emulator, two nights of a project's own benchmarks
(`nightly --tests`): two seeds of the tiny case, small enough to train in seconds and long enough
to lose a node in the middle. Night 1 spreads them over both nodes and gathers every record into
one folder; night 2 loses the second node mid-case, and Ray's retry on the head resumes that case
from its last checkpoint in the bucket; then the gate against night 1 and the trend over both
nights. Every process started here is stopped here. (The nightly of trainbench's own benchmarks
runs their EfficientNetV2 smoke case on this machine in tests/test_nightly.py.)"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.artifacts.emulator import Emulator
from harness.cluster.loopback import LoopbackCluster
from harness.nightly.tasks import SCRATCH
from harness.settings import REPO_ROOT

pytestmark = pytest.mark.slow  # every test here trains or starts a process (make test-fast leaves them out)

pytest.importorskip("ray", reason="the nightly's Ray extra is not installed (pip install 'trainbench[nightly]')")

# The project's benchmarks: two seeds of the tiny case. Twelve epochs of 48 training images at 64 px
# take seconds, with a checkpoint in the bucket after each, so the node is lost with epochs to go.
BENCHMARK = """
import pytest
from tests.conftest import make_image_folder, tiny_spec

SPECS = tiny_spec().with_recipe(epochs=12, image_size=64).repeats(2)


@pytest.mark.parametrize("spec", SPECS, ids=[f"seed{s.recipe.seed}" for s in SPECS])
def test_tiny(spec, run_book, tmp_path_factory, benchmark):
    folder = make_image_folder(tmp_path_factory.mktemp("data"), {k: 24 for k in "abcd"})
    run_book.settings = run_book.settings.replace(data_root=folder)
    record = benchmark.pedantic(run_book.get, args=(spec,), rounds=1, iterations=1)
    assert record.ok, record.failure
"""
SELECTION = ["--trainbench-wandb", "off"]  # the plugin's spelling: the project has no conftest of its own
BUCKET = "nightly"
NIGHT_TIMEOUT_S = 300


def project(folder: Path) -> Path:
    """A project of the user's: its benchmarks alone (the installed plugin gives them the run book)."""
    folder.mkdir()
    (folder / "test_tiny.py").write_text(BENCHMARK)
    return folder


def nightly(cluster: LoopbackCluster, root: Path, night: Path, selection: list[str], *options: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "harness",
        "nightly",
        "--tests",
        "test_tiny.py",
        "--out",
        str(night),
        "--address",
        cluster.address,
        "--gcs-bucket",
        f"gs://{BUCKET}/ci",
        *options,
        "--",
        *selection,
    ]
    return subprocess.Popen(
        command,
        cwd=root,
        env={**cluster.env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(driver: subprocess.Popen) -> tuple[int, str]:
    try:
        output, _ = driver.communicate(timeout=NIGHT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        driver.kill()
        output, _ = driver.communicate()
        pytest.fail(f"the nightly did not finish within {NIGHT_TIMEOUT_S} s:\n{output[-4000:]}")
    return driver.returncode, output


def uploaded_checkpoint(cluster: LoopbackCluster, node: int, night: str, deadline: float) -> tuple[str, str]:
    """Wait until the case of the night on `node` has a checkpoint in the bucket; the night's id and its run id."""
    from google.cloud import storage

    scratch = cluster.scratch(node) / SCRATCH
    while time.monotonic() < deadline:
        for local in scratch.glob(f"{night}-*/**/checkpoints/*/epoch_*.ckpt"):
            night_id, run_id = local.relative_to(scratch).parts[0], local.parent.name
            if any(storage.Client().list_blobs(BUCKET, prefix=f"ci/{night_id}/{run_id}/last.ckpt")):
                return night_id, run_id
        time.sleep(0.5)
    pytest.fail(f"no case of {night} on node {node} uploaded a checkpoint in time")


def test_two_nodes_gather_one_night_and_a_lost_node_resumes_from_the_bucket(tmp_path):
    emulator = Emulator(BUCKET)
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.url  # for this test's own bucket listing
    cluster, drivers = None, []
    try:
        env = {"STORAGE_EMULATOR_HOST": emulator.url, "TRAINBENCH_CACHE_DIR": str(tmp_path / "cache")}
        cluster = LoopbackCluster(tmp_path / "cluster", nodes=2, cpus_per_node=1, env=env)
        nights, root = tmp_path / "nights", project(tmp_path / "project")

        store = f"sqlite:///{nights / 'mlflow.db'}"  # the driver imports each night's records into one store
        drivers.append(nightly(cluster, root, nights / "night-1", SELECTION, "--mlflow", store))
        code, output = finished(drivers[-1])
        assert code == 0, output[-4000:]
        first = json.loads((nights / "night-1" / "nightly.json").read_text())
        assert [c["status"] for c in first["cases"]] == ["passed", "passed"], output[-4000:]
        assert len({c["node"] for c in first["cases"]}) == 2, "the two cases did not spread over both nodes"
        records = sorted((nights / "night-1" / "records").glob("*/result.json"))
        assert len(records) == 2 and all((r.parent / "curves.png").is_file() for r in records)
        assert not list((nights / "night-1").rglob("*.ckpt")), "checkpoints stay on the nodes and in the bucket"
        assert (
            len(list((nights / "night-1" / "benchmark").glob("*.json"))) == 2
            and len(list((nights / "night-1" / "logs").glob("*.log"))) == 2
        )

        assert "nightly: 2 run(s) imported into MLflow" in output, output[-4000:]
        drivers.append(
            nightly(
                cluster,
                root,
                nights / "night-2",
                SELECTION,
                "--baseline",
                str(nights / "night-1"),
                "--tolerance",
                "speed=1.0",
                "--mlflow",
                store,
            )
        )
        night_id, run_id = uploaded_checkpoint(
            cluster, 1, "night-2", time.monotonic() + NIGHT_TIMEOUT_S
        )  # node 1: the head holds the cluster
        cluster.kill(1)
        code, output = finished(drivers[-1])
        assert code == 0, output[-4000:]
        manifest = json.loads((nights / "night-2" / "nightly.json").read_text())
        second = manifest["cases"]
        assert manifest["night_id"] == night_id and night_id != first["night_id"], "each night its own bucket prefix"
        assert [c["status"] for c in second] == ["passed", "passed"] and len({c["node"] for c in second}) == 1, second
        resumed = json.loads((nights / "night-2" / "records" / run_id / "result.json").read_text())["extra"][
            "artifacts"
        ]["checkpoints"]["resumed_from"]
        assert resumed["checkpoint"] == f"gs://{BUCKET}/ci/{night_id}/{run_id}/last.ckpt" and resumed["epoch"] >= 1, (
            resumed
        )
        assert "PASS: no regression" in (nights / "night-2" / "regression.md").read_text()
        assert "nightly: 2 run(s) imported into MLflow" in output, output[-4000:]
        if importlib.util.find_spec("mlflow"):
            from mlflow import MlflowClient

            client = MlflowClient(store)
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            assert len(runs) == 4 and len({r.data.tags["trainbench.record"] for r in runs}) == 4, (
                "each night's two records, once each"
            )
        page = (nights / "night-2" / "records" / "report.html").read_text()
        trends = list((nights / "night-2" / "records" / "trend").glob("*.png"))
        assert "Trend over the last 2 night(s)" in page and len(trends) == 1, (
            trends
        )  # the seeds pool into their case's trend
    finally:
        for driver in drivers:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
        if cluster is not None:
            cluster.stop()
        emulator.stop()
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
