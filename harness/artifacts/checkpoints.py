"""Per-epoch checkpoints: in every checkpoint folder and the bucket, atomic, loadable without code.

Layout, the same for both engines: `<folder>/<run-id>/epoch_NNN.ckpt` and `last.ckpt`; in the
bucket `PREFIX/<run-id>/epoch_NNN.ckpt` and `last.ckpt`. A checkpoint is a dict of tensors and
plain values (the engine's model and optimizer state, epoch, RNG states, the spec, the history so
far), saved with torch.save and always read with `torch.load(weights_only=True)`: loading a file
never runs code from it. A file appears under its final name only once complete (write to a
temporary name, then rename).

Saving does not hold training up: `save` copies the checkpoint's tensors to host memory (a
snapshot: training goes on changing the originals) and a background thread serialises and writes
it, one checkpoint at a time. A failed write (a full disk) is raised, naming the file, at the next
`save` or at `wait`, which the run calls before it reports; so a run never ends with a checkpoint
silently missing.

The store counts the CPU seconds its writer thread used (`writer_cpu_s`): training pays them only
where no core is idle for them (a CPU-trained run). What the training thread itself pays is timed
around the engines' whole save (`RunArtifacts.checkpoint_timer`).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.models import clean_state_dict
from torch import nn

from harness.artifacts.gcs import BucketUploader
from harness.atomic import written_atomically
from harness.errors import CheckpointError, ResumeError

LAST = "last.ckpt"
HARNESS_KEY = "trainbench"  # our part of a checkpoint; Lightning keeps its own keys beside it


def epoch_file(epoch: int) -> str:
    return f"epoch_{epoch:03d}.ckpt"


def rng_state() -> dict[str, Any]:
    """Every global RNG a training step may draw from, as tensors and plain values."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": np_kind, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def _written_atomically(path: Path) -> Iterator[Path]:
    """`written_atomically`, with a failure reported as a CheckpointError that names the file."""
    try:
        with written_atomically(path) as tmp:
            yield tmp
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise CheckpointError(f"checkpoint {path} could not be written ({reason}); free space on that disk or choose another --checkpoint-dir") from None


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    with _written_atomically(path) as tmp:
        torch.save(obj, tmp)


def atomic_copy(source: Path, path: Path, *, link: bool = False) -> None:
    """`path` becomes a copy of `source` (a hard link when asked and possible), never half-written."""
    with _written_atomically(path) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            if not link:
                raise OSError("copy asked for")
            os.link(source, tmp)  # epoch files never change, so last.ckpt may share their bytes
        except OSError:
            shutil.copyfile(source, tmp)


def snapshot(value: Any) -> Any:
    """A copy of a checkpoint that training cannot change any more: tensors copied to host memory,
    containers rebuilt, plain values as they are."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(snapshot(v) for v in value)
    return value


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint without executing anything from it."""
    return torch.load(path, map_location="cpu", weights_only=True)


KEYS_SHOWN = 3


def model_state(state: dict[str, torch.Tensor], model: nn.Module, path: Path | str) -> dict[str, torch.Tensor]:
    """`state` as `model` names its tensors: the prefixes of a torch.compile'd (`_orig_mod.`) or
    DDP/DataParallel-wrapped (`module.`) model removed, as timm's `clean_state_dict` removes them. A
    state that still does not fit is a ResumeError naming the file and the first mismatching keys."""
    cleaned = clean_state_dict(state)
    expected = model.state_dict().keys()
    missing, unexpected = [k for k in expected if k not in cleaned], [k for k in cleaned if k not in expected]
    if missing or unexpected:
        shown = [f"{what} {', '.join(keys[:KEYS_SHOWN])}{f' (+{len(keys) - KEYS_SHOWN} more)' if len(keys) > KEYS_SHOWN else ''}"
                 for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]  # fmt: skip
        raise ResumeError(f"{path} does not fit {type(model).__name__}: keys {'; '.join(shown)}; it holds another model or layout: move it out of the checkpoint folder, or drop --resume")
    return cleaned


class CheckpointStore:
    """Writes each epoch's checkpoint to every folder (and the bucket); finds the latest to resume from."""

    live: weakref.WeakSet[CheckpointStore] = weakref.WeakSet()  # stores of this process, for `after_interrupt`

    def __init__(self, run_id: str, folders: Sequence[Path], bucket: BucketUploader | None) -> None:
        if not folders:
            raise ValueError("a checkpoint store needs at least one local folder: the local copy is what a bucket failure must never lose")
        self.run_id = run_id
        self.folders = list(dict.fromkeys(Path(f).resolve() / run_id for f in folders))  # a folder given twice is one folder
        self.bucket = bucket
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: Future | None = None
        self.writer_cpu_s = 0.0  # the writer thread's CPU time (serialise, copy, link); final after `wait`
        CheckpointStore.live.add(self)
        for stale in (tmp for folder in self.folders if folder.is_dir() for tmp in folder.glob(".*.tmp")):
            stale.unlink(missing_ok=True)  # a save of this run that was interrupted; never a checkpoint
            print(f"[trainbench] removed {stale}, left by an interrupted save", flush=True)

    def save(self, epoch: int, checkpoint: dict[str, Any]) -> Path:
        """Snapshot `checkpoint` and return; in the background, write it as epoch_NNN.ckpt and
        last.ckpt in every folder and queue the uploads. Returns the first folder's epoch file."""
        self.wait()  # the previous write's failure surfaces here; one snapshot in memory at a time
        frozen = snapshot(checkpoint)
        self._pending = self._writer.submit(self._write, epoch, frozen)
        return self.folders[0] / epoch_file(epoch)

    def wait(self) -> None:
        """Until the last checkpoint is written; raises its CheckpointError if it failed."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _write(self, epoch: int, checkpoint: dict[str, Any]) -> Path:
        cpu = time.thread_time()
        try:
            return self._write_everywhere(epoch, checkpoint)
        finally:
            self.writer_cpu_s += time.thread_time() - cpu

    def _write_everywhere(self, epoch: int, checkpoint: dict[str, Any]) -> Path:
        first = self.folders[0] / epoch_file(epoch)
        atomic_save(checkpoint, first)
        for folder in self.folders[1:]:  # other folders may be other disks (a mounted drive): real copies
            atomic_copy(first, folder / epoch_file(epoch))
        for folder in self.folders:
            atomic_copy(folder / epoch_file(epoch), folder / LAST, link=True)
        if self.bucket is not None:  # epoch files never change, so they are safe to upload later
            self.bucket.upload(first, f"{self.run_id}/{epoch_file(epoch)}", copies=(f"{self.run_id}/{LAST}",))
        return first

    def latest(self) -> Path | None:
        """The newest readable local checkpoint across folders (last.ckpt, or the newest readable
        epoch file when last.ckpt is damaged), else the bucket's last.ckpt (downloaded), else None.
        Checkpoints that exist but none of which loads are a ResumeError, never a silent restart."""
        damaged: list[Path] = []
        local = [found for found in (self._newest_readable(folder, damaged) for folder in self.folders) if found]
        if local:
            return max(local)[1]
        if self.bucket is not None:
            target = Path(tempfile.mkdtemp(prefix="trainbench-resume-")) / LAST
            if self.bucket.download(f"{self.run_id}/{LAST}", target):
                return target
        if damaged:
            shown = ", ".join(str(p) for p in damaged[:3]) + (f" and {len(damaged) - 3} more" if len(damaged) > 3 else "")
            raise ResumeError(f"every checkpoint of {self.run_id} is damaged ({shown}); remove them to start over, or drop --resume and give another --run-id")
        return None

    @staticmethod
    def _newest_readable(folder: Path, damaged: list[Path]) -> tuple[int, Path] | None:
        """(epoch, path) of last.ckpt, or of the newest epoch file that loads when last.ckpt does not;
        every file that does not load is added to `damaged`."""
        for path in [folder / LAST, *sorted(folder.glob("epoch_*.ckpt"), reverse=True)]:
            if not path.is_file():
                continue
            try:
                content = load(path)
            except Exception as error:  # a truncated zip, a pickle error, a foreign file
                print(f"[trainbench] {path} is unreadable ({type(error).__name__}); trying an older checkpoint", flush=True)
                damaged.append(path)
                continue
            if not isinstance(content, dict) or not isinstance(content.get(HARNESS_KEY), dict):
                raise ResumeError(f"{path} holds no trainbench state (no '{HARNESS_KEY}' entry: written by another tool or by hand); move it out of {folder}, or drop --resume")
            found = int(content[HARNESS_KEY]["epoch"]), path
            if path.name != LAST and (folder / LAST).is_file():
                print(f"[trainbench] resuming from {path.name} instead of the damaged {LAST}", flush=True)
            return found
        return None
