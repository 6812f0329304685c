"""Checkpoints to folders and a real GCS-API server (gcp-storage-emulator on loopback), faults,
resume after a killed process, wandb offline runs read back from disk, CSV log and plots."""

from __future__ import annotations

import csv
import http.server
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from google.cloud import storage

from harness import runner
from harness.artifacts.checkpoints import (
    HARNESS_KEY,
    LAST,
    ResumeError,
    epoch_file,
    load,
)
from harness.artifacts.emulator import Emulator, free_port
from harness.engines.history import without_timing
from harness.preflight import PreflightError
from harness.results.record import RunResult
from harness.settings import REPO_ROOT
from tests import wandb_offline
from tests.conftest import ENGINES_SECOND_HEAVY, tiny_spec
from tests.test_fail_fast import assert_one_line_refusal, run_cli, tiny_run_args

BUCKET = "trainbench-test"


@pytest.fixture
def gcs(monkeypatch):
    emulator = Emulator(BUCKET)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    yield emulator
    emulator.stop()


def _run(tiny_folder, settings, **spec_changes) -> RunResult:
    return runner.run(tiny_spec(**spec_changes).with_recipe(epochs=2), settings.replace(data_root=tiny_folder))


@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_every_epoch_lands_in_every_folder_and_the_bucket_byte_for_byte(engine, tiny_folder, settings, gcs, tmp_path):
    folders = (tmp_path / "drive", tmp_path / "work")
    settings = settings.replace(checkpoint_dirs=folders, gcs_bucket=f"gs://{BUCKET}/runs")
    record = _run(tiny_folder, settings, engine=engine)
    names = [epoch_file(1), epoch_file(2), LAST]
    for folder in folders:
        assert sorted(p.name for p in (folder / record.run_id).iterdir()) == sorted(names)
    blobs = {b.name: b for b in storage.Client().list_blobs(BUCKET, prefix=f"runs/{record.run_id}/")}
    assert sorted(blobs) == sorted(f"runs/{record.run_id}/{n}" for n in names)
    for name in names:
        assert (
            blobs[f"runs/{record.run_id}/{name}"].download_as_bytes()
            == (folders[0] / record.run_id / name).read_bytes()
        )
    assert record.extra["artifacts"]["gcs"]["failures"] == []
    costs = record.extra["artifacts"]
    assert 0 <= costs["checkpoint_wait_s"] < record.wall_time_s  # the wait for the last write and uploads, reported
    assert 0 < costs["checkpoint_blocked_s"] < record.wall_time_s  # the training thread's snapshots
    assert (
        costs["checkpoint_writer_cpu_s"] > 0 and costs["checkpoint_upload_cpu_s"] > 0
    )  # the background threads' work, measured
    assert not [
        b.name for b in storage.Client().list_blobs(BUCKET) if "probe" in b.name
    ]  # the pre-flight write check cleans up
    last = load(folders[1] / record.run_id / LAST)  # weights_only: no code runs
    assert last[HARNESS_KEY]["epoch"] == 2 and last[HARNESS_KEY]["engine"] == engine
    assert last[HARNESS_KEY]["spec"]["engine"] == engine and len(last[HARNESS_KEY]["history"]) == 2
    assert {"torch", "numpy", "python"} <= set(last[HARNESS_KEY]["rng"])
    assert "state_dict" in last and "optimizer_states" in last
    assert all(isinstance(v, torch.Tensor) for v in last["state_dict"].values())


def test_a_bucket_that_cannot_be_written_is_refused_before_training(
    tiny_folder, settings, gcs, tmp_path, monkeypatch, capsys
):
    """A wrong bucket name, then no credentials at all (no emulator): one line each, nothing trained."""
    settings = settings.replace(checkpoint_dirs=(tmp_path / "ckpt",), gcs_retry_s=5)
    with pytest.raises(
        PreflightError,
        match=(
            r"--gcs-bucket gs://no-such-bucket/x cannot be written \(NotFound: .*check the bucket name and the"
            r" credentials"
        ),
    ):
        _run(tiny_folder, settings.replace(gcs_bucket="gs://no-such-bucket/x"))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(
        PreflightError, match=r"cannot be written \(DefaultCredentialsError: .*GOOGLE_APPLICATION_CREDENTIALS"
    ):
        _run(tiny_folder, settings.replace(gcs_bucket=f"gs://{BUCKET}/x"))
    assert "train_loss=" not in capsys.readouterr().out and not list(settings.results_dir.glob("*/result.json"))


@pytest.mark.slow
@pytest.mark.heavy
def test_server_stopped_in_the_middle_of_a_run(tiny_folder, settings, gcs, tmp_path):
    """The bucket dies after the first checkpoint: training finishes, every local copy is there."""
    ckpt = tmp_path / "ckpt"
    spec = tiny_spec().with_recipe(epochs=4)
    settings = settings.replace(
        data_root=tiny_folder, checkpoint_dirs=(ckpt,), gcs_bucket=f"gs://{BUCKET}/p", gcs_retry_s=3
    )
    run_id = runner.prepare(spec, settings).run_id
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--spec",
        str(tmp_path / "spec.json"),
        "--settings",
        str(tmp_path / "settings.json"),
    ]
    (tmp_path / "spec.json").write_text(spec.to_json())
    (tmp_path / "settings.json").write_text(settings.to_json())
    child = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(ckpt / run_id / epoch_file(1), child)
    gcs.stop()
    output = child.communicate(timeout=300)[0]
    assert child.returncode == 0, output
    record = RunResult.load(settings.results_dir / run_id / "result.json")
    assert [r["epoch"] for r in record.history] == [1, 2, 3, 4]
    assert all((ckpt / run_id / epoch_file(e)).is_file() for e in range(1, 5))
    failed = {f["object"] for f in record.extra["artifacts"]["gcs"]["failures"]}
    assert f"gs://{BUCKET}/p/{run_id}/{epoch_file(4)}" in failed
    assert "upload to" in output and "local copy kept" in output


def _wait_for(path: Path, child: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert child.poll() is None, f"run ended before {path} appeared: {child.stdout.read() if child.stdout else ''}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES_SECOND_HEAVY)
def test_killed_run_resumes_to_the_same_history_and_metrics(engine, tiny_folder, settings, tmp_path):
    """SIGKILL a real training process after its first checkpoint; --resume must end where an
    uninterrupted run with the same seed ends (same per-epoch history, same test metrics). With
    loader workers, which draw their first indices as soon as a loader is iterated.

    Tracked as users track: the killed attempt's MLflow run ends KILLED and the resumed one FINISHED, and
    the wandb run goes on under the same id (offline: two folders that `wandb sync` makes one run). The
    pytest process has a wandb service of its own first, as a notebook or script that used wandb before
    starting the run would: the run must not track into it, or the killed attempt's wandb run stays open
    there and the resumed one is refused ("run ID ... is in use")."""
    import wandb

    epochs = 4
    spec = tiny_spec(engine=engine).with_recipe(epochs=epochs)
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}" if importlib.util.find_spec("mlflow") else "off"
    settings = settings.replace(
        data_root=tiny_folder, checkpoint_dirs=(tmp_path / "ckpt",), workers=2, wandb="offline", mlflow=uri
    )
    wandb.init(project="parent", mode="offline", dir=str(tmp_path), settings=wandb.Settings(silent=True)).finish()
    assert os.environ.get("WANDB_SERVICE"), "wandb no longer leaves its service's address to child processes"
    run_id = runner.prepare(spec, settings).run_id
    (tmp_path / "spec.json").write_text(spec.to_json())
    (tmp_path / "settings.json").write_text(settings.to_json())
    command = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--spec",
        str(tmp_path / "spec.json"),
        "--settings",
        str(tmp_path / "settings.json"),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _wait_for(tmp_path / "ckpt" / run_id / LAST, child)  # the writer thread links last.ckpt just after the epoch file
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert not (settings.results_dir / run_id / "result.json").exists(), "the run finished before it could be killed"
    interrupted_at = load(tmp_path / "ckpt" / run_id / LAST)[HARNESS_KEY]["epoch"]
    assert interrupted_at < epochs

    (tmp_path / "settings.json").write_text(settings.replace(resume=True).to_json())
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resuming {run_id}" in done.stdout
    resumed = RunResult.load(settings.results_dir / run_id / "result.json")
    straight = runner.run(
        spec,
        settings.replace(checkpoint_dirs=(tmp_path / "straight",), wandb="off", mlflow="off"),
        run_id="straight",
    )

    assert [r["epoch"] for r in resumed.history] == list(range(1, epochs + 1))
    for got, expected in zip(resumed.history, straight.history, strict=True):
        assert without_timing(got) == pytest.approx(without_timing(expected), rel=1e-6)
    assert resumed.test == pytest.approx(straight.test, rel=1e-6)
    costs = straight.extra["artifacts"]  # each engine times its own checkpoint steps; a folder alone uploads nothing
    assert (
        0 < costs["checkpoint_blocked_s"] < straight.wall_time_s
        and costs["checkpoint_writer_cpu_s"] > 0
        and costs["checkpoint_upload_cpu_s"] == 0.0
    )

    tracked = resumed.extra["artifacts"]
    assert "id" in tracked["wandb"], tracked["wandb"]
    folders = sorted((settings.results_dir / "wandb").glob("offline-run-*"))
    assert len(folders) == 2 and {folder.name.rsplit("-", 1)[1] for folder in folders} == {tracked["wandb"]["id"]}, (
        folders
    )
    if uri != "off":
        import mlflow

        client = mlflow.MlflowClient(uri)
        runs = client.search_runs([client.get_experiment_by_name(resumed.spec["benchmark"]).experiment_id])
        assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]
        assert {r.data.tags["trainbench.run_id"] for r in runs} == {run_id}
        (finished,) = (r for r in runs if r.info.status == "FINISHED")
        assert finished.info.run_id == tracked["mlflow"]["run_id"]
        assert [m.step for m in client.get_metric_history(finished.info.run_id, "val_loss")] == [1, 2, 3, 4]


def test_resume_from_the_bucket_when_no_local_copy(tiny_folder, settings, gcs, tmp_path):
    first = settings.replace(data_root=tiny_folder, checkpoint_dirs=(tmp_path / "a",), gcs_bucket=f"gs://{BUCKET}/r")
    done = _run(tiny_folder, first)
    # a new machine: empty local folder and results folder, same bucket; the run is already complete at epoch 2
    again = first.replace(checkpoint_dirs=(tmp_path / "b",), results_dir=tmp_path / "results-b", resume=True)
    record = runner.run(tiny_spec().with_recipe(epochs=2), again)
    assert record.run_id == done.run_id and [r["epoch"] for r in record.history] == [1, 2]
    assert record.history == done.history  # replayed from the checkpoint, not trained again
    assert (
        record.train_images_per_s == pytest.approx(done.train_images_per_s) and record.train_images_per_s > 0
    )  # the speed of the epochs it trained
    assert record.steady_images_per_s == pytest.approx(done.steady_images_per_s)
    assert (tmp_path / "b" / record.run_id / LAST).is_file() is False  # nothing was trained, so nothing new was saved


@pytest.mark.slow
def test_wandb_offline_run_matches_the_record(tiny_folder, settings):
    record = _run(tiny_folder, settings.replace(wandb="offline"))
    (run_dir,) = (settings.results_dir / "wandb").glob("offline-run-*")
    run = wandb_offline.read(run_dir)
    assert run.name == record.run_id and run.group == record.spec["benchmark"]
    assert set(run.tags) == {"poutyne", "32-true", "1dev", "random"}
    assert run.config["model"] == record.spec["model"] and run.config["recipe"]["epochs"] == 2
    logged = [row for row in run.history if "val_acc" in row]
    assert [row["epoch"] for row in logged] == [1, 2]
    for row, expected in zip(logged, record.history, strict=True):
        assert row["val_loss"] == pytest.approx(expected["val_loss"]) and row["train_acc"] == pytest.approx(
            expected["train_acc"]
        )
    assert run.summary["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in record.history))
    assert run.summary["best_val_acc"] == pytest.approx(max(r["val_acc"] for r in record.history))
    assert run.summary["test_acc"] == pytest.approx(record.test["test_acc"])
    assert record.extra["artifacts"]["wandb"]["mode"] == "offline"


@pytest.fixture
def answering_host(monkeypatch):
    """WANDB_BASE_URL: a loopback HTTP server that answers every request 404
    (a host that is there, no wandb behind it)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), http.server.BaseHTTPRequestHandler
    )  # no do_GET: 501 to everything
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def test_wandb_failure_never_fails_the_run(tiny_folder, settings, monkeypatch, answering_host):
    """A real wandb failure: `online` asked for with no API key (wandb.init raises UsageError), the host answering."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(settings.results_dir / "wandb-config"))  # no stored login either
    record = _run(tiny_folder, settings.replace(wandb="online"))
    assert len(record.history) == 2
    assert "No API key" in record.extra["artifacts"]["wandb"]["error"]


@contextmanager
def unreachable_wandb_host(kind: str) -> Iterator[str]:
    """A loopback URL where nothing listens (`refused`),
    or where a socket listens and never accepts nor answers (`silent`)."""
    if kind == "refused":
        yield f"http://127.0.0.1:{free_port()}"
        return
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the connection into the backlog; nobody ever reads or answers
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


def test_a_wandb_host_that_did_not_answer_is_asked_again_by_the_next_run():
    """One blip at a session's first case sent every later case offline (`auto`) or refused it (`online`):
    a host's answer is remembered for the process, its silence is not."""
    from harness.artifacts.tracking import no_answer

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    assert no_answer(url, 2.0) is not None  # nothing listens yet
    server = http.server.HTTPServer(("127.0.0.1", port), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert no_answer(url, 2.0) is None  # a status (501 here) is an answer
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert no_answer(url, 2.0) is None, "an answer is remembered: a session's later runs do not wait again"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_wandb_auto_with_a_key_and_no_wandb_host_tracks_offline_at_once(
    kind, tiny_folder, settings, monkeypatch, capfd
):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(settings.results_dir / "wandb-config"))
    with unreachable_wandb_host(kind) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        started = time.perf_counter()
        record = _run(tiny_folder, settings.replace(wandb="auto"))
        took = time.perf_counter() - started
    out = capfd.readouterr().out
    print(f"--wandb auto, wandb host {kind}: the whole run took {took:.1f} s (wandb's own wait was about 90 s)")
    assert took < 90, f"{took:.0f} s: the run waited for wandb"
    assert record.extra["artifacts"]["wandb"] == {
        "mode": "offline",
        "id": record.extra["artifacts"]["wandb"]["id"],
        "dir": record.extra["artifacts"]["wandb"]["dir"],
    }
    (run_dir,) = (settings.results_dir / "wandb").glob("offline-run-*")
    assert wandb_offline.read(run_dir).name == record.run_id and len(record.history) == 2
    lines = [line for line in out.splitlines() if f"wandb: {url} does not answer" in line]
    assert (
        len(lines) == 1
        and "tracking this run offline" in lines[0]
        and f"wandb sync {settings.results_dir / 'wandb'}/offline-run-*" in lines[0]
    ), out


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_wandb_online_with_no_wandb_host_is_refused_before_training(kind, tiny_folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    with unreachable_wandb_host(kind) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        code, out, err = run_cli(capsys, *tiny_run_args(tiny_folder, tmp_path, "--wandb", "online"))
    assert_one_line_refusal(
        code, out, err, f"--wandb online: the wandb host {url} does not answer", "--wandb offline", "wandb sync"
    )


def test_history_csv_and_curves_beside_the_record(tiny_folder, settings):
    record = _run(tiny_folder, settings)
    run_dir = settings.results_dir / record.run_id
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_loss", "train_acc", "val_acc", "lr", "epoch_time"} <= set(rows[0])
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _interrupted_after_epoch_1(spec, settings, folder: Path) -> Path:
    """A finished 2-epoch run made to look interrupted after epoch 1: its later checkpoints removed."""
    runner.run(spec, settings, run_id="r")
    (settings.results_dir / "r" / "result.json").unlink()
    for path in (folder / "r" / LAST, folder / "r" / epoch_file(2)):
        path.unlink()
    os.link(folder / "r" / epoch_file(1), folder / "r" / LAST)
    return folder / "r" / LAST


def _rewritten(path: Path, keys) -> None:
    checkpoint = load(path)
    checkpoint["state_dict"] = {keys(k): v for k, v in checkpoint["state_dict"].items()}
    path.unlink()
    torch.save(checkpoint, path)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["poutyne", "lightning"])
def test_checkpoints_of_other_layouts_load_or_are_refused_in_one_line(engine, tiny_folder, settings, tmp_path):
    """A checkpoint of a torch.compile'd model (keys under `_orig_mod.`) ended in a RuntimeError
    traceback; one without trainbench's state was "written by another run (fingerprint None)";
    resuming a run without the execution it began with recorded only the last one."""
    import timm

    spec = tiny_spec(engine=engine).with_recipe(epochs=2)
    folder = tmp_path / "ckpt"
    settings = settings.replace(data_root=tiny_folder, checkpoint_dirs=(folder,), fused_optimizer=True)
    last = _interrupted_after_epoch_1(spec, settings, folder)
    # the keys a compiled model saves
    wrapped = set(torch.compile(timm.create_model(spec.model, num_classes=6)).state_dict())
    assert all(k.startswith("_orig_mod.") for k in wrapped)
    inner = "model." if engine == "lightning" else ""
    _rewritten(last, lambda k: f"{inner}_orig_mod.{k.removeprefix(inner)}" if k.startswith(inner) else k)
    resumed = runner.run(spec, settings.replace(resume=True, fused_optimizer=False), run_id="r")
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert resumed.execution["by_epoch"] == [
        {"from_epoch": 1, "compile": False, "fused_optimizer": True},
        {"from_epoch": 2, "compile": False, "fused_optimizer": False},
    ]

    last = _interrupted_after_epoch_1(spec, settings, folder)
    _rewritten(last, lambda k: k.replace("conv_stem", "stem_conv"))
    with pytest.raises(
        ResumeError,
        match=(
            r"last.ckpt does not fit EfficientNet: keys missing conv_stem.weight; unexpected stem_conv.weight; it holds"
            r" another model or layout"
        ),
    ) as refused:
        runner.run(spec, settings.replace(resume=True), run_id="r")
    assert "\n" not in str(refused.value)

    torch.save({"state_dict": {}}, last.with_name("foreign.ckpt"))
    os.replace(last.with_name("foreign.ckpt"), last)
    with pytest.raises(
        ResumeError,
        match=(
            r"last.ckpt holds no trainbench state \(no 'trainbench' entry: written by another tool or by hand\); move"
            r" it out of"
        ),
    ):
        runner.run(spec, settings.replace(resume=True), run_id="r")


def bucket_run_command(engine: str, folder: Path, tmp_path: Path, epochs: int, *options: str) -> list[str]:
    """`python -m harness run` of the tiny case, its checkpoints in a folder and in the bucket."""
    return [
        *(sys.executable, "-m", "harness", "run", "--model", tiny_spec().model, "--engine", engine),
        *("--data", str(folder), "--weights", "random", "--epochs", str(epochs), "--image-size", "32"),
        *("--batch-size", "8", "--workers", "0", "--wandb", "off", "--results-dir", str(tmp_path / "results")),
        *("--checkpoint-dir", str(tmp_path / "ckpt"), "--gcs-bucket", f"gs://{BUCKET}/r", *options),
    ]


@contextmanager
def stalled_bucket(
    command: list[str], env: dict[str, str], gcs: Emulator, checkpoints: Path, epoch: int, **popen: Any
) -> Iterator[tuple[subprocess.Popen, list[str], float]]:
    """The run started; after its first checkpoint the bucket stops answering (the emulator stopped with
    SIGSTOP), so uploads hang. Yields once epoch `epoch` is saved locally: the child, its stderr lines (read
    as they come) and the deadline; afterwards the bucket answers again and the child is gone."""
    child = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )
    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.extend(iter(child.stderr.readline, "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 240
    try:
        while not list(checkpoints.rglob(epoch_file(1))):
            assert child.poll() is None and time.monotonic() < deadline, "no first checkpoint"
            time.sleep(0.05)
        os.kill(gcs.process.pid, signal.SIGSTOP)
        while not list(checkpoints.rglob(epoch_file(epoch))):
            assert child.poll() is None and time.monotonic() < deadline, f"no checkpoint of epoch {epoch}"
            time.sleep(0.05)
        yield child, errors, deadline
    finally:
        os.kill(gcs.process.pid, signal.SIGCONT)
        if child.poll() is None:
            child.kill()
        reader.join(timeout=10)


def kept_local(line: str) -> list[str]:
    """The checkpoints a 'kept local: gs://...' line names, as bucket paths."""
    return [name.removeprefix(f"gs://{BUCKET}/") for name in line.split("kept local: ")[1].split(";")[0].split(", ")]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES_SECOND_HEAVY)
def test_sigterm_waits_for_uploads_a_bounded_time_and_resume_sends_the_rest(engine, tiny_folder, tmp_path, gcs):
    """SIGTERM (how SLURM, Kubernetes and spot instances stop a job) ended the run in 0.2 s, silent: no
    `.not-uploaded.json`, the bucket never got the checkpoints queued, the MLflow run stayed RUNNING."""
    from mlflow import MlflowClient

    from harness.artifacts.gcs import NOT_UPLOADED

    TERM_WAIT_S = 4  # TRAINBENCH_TERM_WAIT_S: the wait bounded as the default 20 s is, in a fifth of the time

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = bucket_run_command(engine, tiny_folder, tmp_path, 6, "--mlflow", store)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TRAINBENCH_")},
        "STORAGE_EMULATOR_HOST": gcs.url,
        "TRAINBENCH_TERM_WAIT_S": str(TERM_WAIT_S),
    }
    with stalled_bucket(command, env, gcs, tmp_path / "ckpt", 2) as (child, errors, _):
        child.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        child.wait(timeout=TERM_WAIT_S + 60)
        waited = time.monotonic() - sent
    assert child.returncode == 143 and "Traceback" not in "".join(errors), "".join(errors)
    assert TERM_WAIT_S - 1 <= waited <= TERM_WAIT_S + 30, f"waited {waited:.1f} s, not about {TERM_WAIT_S} s"
    first, second = [line.strip() for line in errors if line.strip()]
    assert first.startswith("terminated (SIGTERM): uploading ") and first.endswith(
        f"checkpoint(s) to gs://{BUCKET}/r for up to {TERM_WAIT_S:.0f} s, then leaving them local"
    ), first
    said = f"terminated (SIGTERM): not confirmed in the bucket after {TERM_WAIT_S:.0f} s, kept local: gs://"
    assert second.startswith(said), second
    assert second.endswith("; the next run with this bucket uploads them"), second
    left = kept_local(second)
    assert any(name.endswith(epoch_file(2)) for name in left), left
    (manifest,) = (tmp_path / "ckpt").rglob(NOT_UPLOADED)
    client = MlflowClient(store)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"

    done = subprocess.run([*command, "--resume"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checkpoint(s) an interrupted run left local" in done.stdout
    assert set(left) <= {b.name for b in storage.Client().list_blobs(BUCKET, prefix="r/")} and not manifest.exists()
    (result,) = (tmp_path / "results").glob("*/result.json")
    assert RunResult.load(result).extra["artifacts"]["checkpoints"]["resumed_from"]["epoch"] >= 2


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES_SECOND_HEAVY)
@pytest.mark.heavy
def test_a_second_ctrl_c_during_uploads_leaves_them_local_named_and_the_next_run_uploads_them(
    engine, tiny_folder, tmp_path, gcs
):
    """One Ctrl-C waited about 11 s in silence for the uploads; a second gave a threading traceback
    and left the bucket without checkpoints that existed locally."""
    from harness.artifacts.gcs import NOT_UPLOADED

    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRAINBENCH_")}, "STORAGE_EMULATOR_HOST": gcs.url}
    command = bucket_run_command(engine, tiny_folder, tmp_path, 20)
    sigint = {"preexec_fn": lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)}
    with stalled_bucket(command, env, gcs, tmp_path / "ckpt", 3, **sigint) as (child, errors, deadline):
        child.send_signal(signal.SIGINT)
        while not any("Ctrl-C again" in line for line in errors):
            assert child.poll() is None and time.monotonic() < deadline, "".join(errors)
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        child.wait(timeout=30)
    assert child.returncode == 130 and "Traceback" not in "".join(errors), "".join(errors)
    first, second = [line.strip() for line in errors if line.strip()]
    assert first.startswith("interrupted: uploading ") and first.endswith(
        f"checkpoint(s) to gs://{BUCKET}/r; Ctrl-C again to leave them local"
    )
    assert second.startswith("interrupted again: not confirmed in the bucket, kept local: gs://") and second.endswith(
        "; the next run with this bucket uploads them"
    )
    left = kept_local(second)
    (manifest,) = (tmp_path / "ckpt").rglob(NOT_UPLOADED)
    in_bucket = {b.name for b in storage.Client().list_blobs(BUCKET, prefix="r/")}
    # the upload in flight may still have landed; the queued ones did not
    assert len(set(left) - in_bucket) >= len(left) - 1

    another = bucket_run_command(engine, tiny_folder, tmp_path, 1)  # another run, the same bucket
    done = subprocess.run(another, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checkpoint(s) an interrupted run left local" in done.stdout
    assert set(left) <= {b.name for b in storage.Client().list_blobs(BUCKET, prefix="r/")} and not manifest.exists()
