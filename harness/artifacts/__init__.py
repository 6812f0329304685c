"""What a run leaves besides its record: checkpoints (folders + bucket), a wandb run and an MLflow run.

Engines talk to one `RunArtifacts` per run, on rank 0 only: `track` and `save_checkpoint` after
every epoch; the runner calls `finish`, then `publish` once the record is saved. Resume goes through
`resume_path` on every rank. Each engine runs its whole checkpoint step (building the checkpoint
included) inside `checkpoint_timer`, so the record says what saving took from training, the same way for both.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.rank_zero import rank_zero_only

from harness.artifacts import resume
from harness.artifacts.checkpoints import (
    HARNESS_KEY,
    LAST,
    CheckpointStore,
    load,
    rng_state,
)
from harness.artifacts.gcs import BucketUploader, wait_after_interrupt
from harness.artifacts.tracking import WandbTracker
from harness.errors import ResumeError
from harness.results.mlflow_runs import MlflowTracker
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec

__all__ = ["HARNESS_KEY", "ResumeError", "RunArtifacts", "after_interrupt", "harness_state", "load"]


def process_rank() -> int:
    """This process's global rank (0 without a launcher), as Lightning keeps it on `rank_zero_only`."""
    return rank_zero_only.rank  # type: ignore[attr-defined]  # Lightning sets it at import; its types omit it


def after_interrupt() -> None:
    """After a Ctrl-C: finish the checkpoint being written (it queues its upload), then wait for the
    uploads, saying so; a second Ctrl-C leaves them local and named (`gcs.wait_after_interrupt`)."""
    try:
        for store in list(CheckpointStore.live):
            store.wait()
    except KeyboardInterrupt:  # a second Ctrl-C while a checkpoint was being written: see to the uploads queued so far
        pass
    wait_after_interrupt()


def harness_state(artifacts: RunArtifacts, epoch: int, history: list[dict[str, float]]) -> dict[str, Any]:
    """The engine-neutral part of every checkpoint, with the identity of the run that wrote it (its
    spec, fingerprint and data: file count, classes), so a refused resume can say what differs, and
    its wandb and MLflow runs, which a resume continues and ends KILLED."""
    spec = artifacts.spec
    return {
        "format": 2,
        "engine": spec.engine,
        "epoch": epoch,
        "spec": spec.to_dict(),
        "fingerprint": artifacts.fingerprint,
        "data": artifacts.data,
        "execution": artifacts.execution,
        "history": [dict(r) for r in history],
        "rng": rng_state(),
        "tracking": {
            "wandb": artifacts.tracker.run.id if artifacts.tracker.run is not None else None,
            "mlflow": artifacts.mlflow.mlflow_run_id,
        },
    }


class RunArtifacts:
    def __init__(
        self,
        spec: BenchmarkSpec,
        settings: RunSettings,
        run_id: str,
        fingerprint: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.spec, self.settings, self.run_id, self.fingerprint = spec, settings, run_id, fingerprint
        self.data = data  # the data's identity (DataIdentity.as_dict), kept in every checkpoint
        self.execution = [
            self._execution_from(1)
        ]  # how each stretch of epochs ran; a resume adds one when it runs another way
        self.bucket = BucketUploader(settings.gcs_bucket, settings.gcs_retry_s) if settings.gcs_bucket else None
        folders = list(settings.checkpoint_dirs)
        if self.bucket is not None and not folders:  # the local copy a failing bucket must never lose
            folders = [settings.results_dir / "checkpoints"]
        self.store = CheckpointStore(run_id, folders, self.bucket) if folders else None
        if self.bucket is not None and process_rank() == 0:  # one process catches up for all
            self.bucket.catch_up(folders)
        self.tracker = WandbTracker(settings.wandb, settings.wandb_project, spec, run_id, settings.results_dir)
        self.mlflow = MlflowTracker(settings.mlflow, spec, run_id, settings.results_dir)
        self.resumed_from: dict[str, Any] | None = None  # the checkpoint this run continued from, for its record
        self.checkpoint_blocked_s = 0.0  # the training thread's time in this process's checkpoint steps

    @property
    def checkpointing(self) -> bool:
        return self.store is not None

    def resume_path(self) -> Path | None:
        """The checkpoint to continue from when --resume is set (local first, else the bucket)."""
        if not (self.settings.resume and self.store):
            return None
        path = self.store.latest()
        if path is None:
            print(f"[trainbench] --resume: no checkpoint of {self.run_id} found; starting from epoch 1", flush=True)
            return None
        saved = load(path)[HARNESS_KEY]
        if saved.get("fingerprint") != self.fingerprint:
            raise ResumeError(resume.refusal(path, saved, self.spec, self.data))
        print(f"[trainbench] resuming {self.run_id} from {path} (epoch {saved['epoch']})", flush=True)
        before = saved.get("execution") or [
            {"from_epoch": 1, "compile": None, "fused_optimizer": None}
        ]  # checkpoints before it did not say
        now = self._execution_from(int(saved["epoch"]) + 1)
        same = {k: v for k, v in before[-1].items() if k != "from_epoch"} == {
            k: v for k, v in now.items() if k != "from_epoch"
        }
        self.execution = list(before) if same else [*before, now]
        local = any(path.is_relative_to(folder) for folder in self.store.folders)
        source = (
            str(path)
            if local or self.bucket is None
            else f"gs://{self.bucket.bucket_name}/{self.bucket.object_name(f'{self.run_id}/{LAST}')}"
        )
        self.resumed_from = {"checkpoint": source, "epoch": int(saved["epoch"])}
        tracked = saved.get("tracking") or {}  # checkpoints before it did not say
        self.tracker.resume_id, self.mlflow.killed = tracked.get("wandb"), tracked.get("mlflow")
        return path

    def _execution_from(self, epoch: int) -> dict[str, Any]:
        return {"from_epoch": epoch, "compile": self.settings.compile, "fused_optimizer": self.settings.fused_optimizer}

    def track(self, row: dict[str, float]) -> None:
        """Log one epoch's row to the wandb and MLflow runs."""
        self.tracker.log_epoch(row)
        self.mlflow.log_epoch(row)

    @contextmanager
    def checkpoint_timer(self) -> Iterator[None]:
        """Around an engine's checkpoint step: building the checkpoint, the snapshot, any wait for
        the previous write. Every epoch pays this time; the record reports it."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.checkpoint_blocked_s += time.perf_counter() - started

    def save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store an epoch's checkpoint (its epoch is in checkpoint[HARNESS_KEY])."""
        if self.store is not None:
            self.store.save(int(checkpoint[HARNESS_KEY]["epoch"]), checkpoint)

    def replay(self, history: list[dict[str, float]]) -> None:
        """After a resume: give the tracker the epochs that ran before the interruption."""
        for row in history:
            self.track(row)

    def finish(self, history: list[dict[str, float]], test: dict[str, float]) -> dict[str, Any]:
        """Await the last checkpoint write and the uploads, close tracking; the report goes into
        result.json (never credentials). Checkpoints that could not be written are listed there
        (`checkpoints.failures`) and were printed: the trained result is still recorded."""
        report: dict[str, Any] = {"wandb": self.tracker.finish(history, test), "mlflow": self.mlflow.finish()}
        waiting = time.perf_counter()
        if self.store is not None:
            self.store.wait()
            last = str(self.store.last) if self.store.last is not None else None
            report["checkpoints"] = {
                "folders": [str(f) for f in self.store.folders],
                "last": last,
                "resumed_from": self.resumed_from,
                "failures": self.store.failures,
            }
        if self.bucket is not None:
            failures = self.bucket.finish()
            report["gcs"] = {
                "bucket": f"gs://{self.bucket.bucket_name}/{self.bucket.prefix}",
                "failures": [f.as_dict() for f in failures],
            }
        if self.store is not None or self.bucket is not None:
            report["checkpoint_wait_s"] = round(
                time.perf_counter() - waiting, 3
            )  # paid once per run, after training: the last write and uploads
        # what the epochs paid: the training thread's time saving, the background threads' CPU
        if self.store is not None:
            report.update(
                checkpoint_blocked_s=round(self.checkpoint_blocked_s, 3),
                checkpoint_writer_cpu_s=round(self.store.writer_cpu_s, 3),
                checkpoint_upload_cpu_s=round(self.bucket.cpu_s, 3) if self.bucket is not None else 0.0,
            )
        return report

    def publish(self, record: Any, run_dir: Path) -> None:
        """Once the record is saved: the MLflow run completed from it (test metrics, tags, artifacts)."""
        self.mlflow.publish(record, run_dir)

    def abandon(self, error: BaseException) -> None:
        """The run ends without a record: its MLflow run ends KILLED (Ctrl-C) or FAILED."""
        self.mlflow.abandon("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
