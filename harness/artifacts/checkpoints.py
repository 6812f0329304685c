"""Per-epoch checkpoints: in every checkpoint folder and the bucket, atomic, loadable without code.

Layout, the same for both engines: `<folder>/<run-id>/epoch_NNN.ckpt` and `last.ckpt`; in the
bucket `PREFIX/<run-id>/epoch_NNN.ckpt` and `last.ckpt`. A checkpoint is a dict of tensors and
plain values (the engine's model and optimizer state, epoch, RNG states, the spec, the history so
far), saved with torch.save and always read with `torch.load(weights_only=True)`: loading a file
never runs code from it. A file appears under its final name only once complete (write to a
temporary name, then rename).

Saving does not hold training up: `save` copies the checkpoint's tensors to host memory (a
snapshot: training goes on changing the originals) and a background thread serialises and writes
it, one checkpoint at a time. A write that fails (a full disk) never costs the run: its partial file
is removed, and at the next `save` or at `wait` (which the run calls before it reports) one line
names the file and the cause (for a full disk, the space free against what a checkpoint needs), the
run goes on, and `failures` lists it for the record; a later checkpoint that can be written is. So a
run never ends with a checkpoint silently missing, nor lost for want of one.

The store counts the CPU seconds its writer thread used (`writer_cpu_s`): training pays them only
where no core is idle for them (a CPU-trained run). What the training thread itself pays is timed
around the engines' whole save (`RunArtifacts.checkpoint_timer`).
"""

from __future__ import annotations

import errno
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
from typing import Any, ClassVar

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
    # legacy=True is the default; numpy's stub types the call without it as the new dict form
    np_state = np.random.get_state(legacy=True)
    assert isinstance(np_state, tuple)  # the global RandomState is an MT19937, whose legacy state is this tuple
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np_state
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_kind,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
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


def tensor_bytes(value: Any) -> int:
    """The bytes of every tensor in a checkpoint: about what its file takes."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(tensor_bytes(v) for v in value)
    return 0


def _cause(error: OSError | RuntimeError, folder: Path, need: int) -> str:
    """Why a write failed, in the user's terms: a full disk says how much is free against `need`
    (torch.save reports one as `[enforce fail at inline_container.cc:...] . unexpected pos ...`)."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    if getattr(error, "errno", None) == errno.ENOSPC or (free is not None and free < need):
        shown = "?" if free is None else f"{free / 2**20:.1f}"
        return f"no space left on device: {shown} MiB free, a checkpoint needs {need / 2**20:.1f} MiB"
    return getattr(error, "strerror", None) or str(error).splitlines()[0]


@contextmanager
def _written_atomically(path: Path, need: int) -> Iterator[Path]:
    """`written_atomically`, with a failure reported as a CheckpointError that names the file and the
    cause (`need`: the bytes the file takes)."""
    try:
        with written_atomically(path) as tmp:
            yield tmp
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        reason = _cause(error, path.parent, need)
        raise CheckpointError(
            f"checkpoint {path} could not be written ({reason}); free space on that disk or choose another"
            " --checkpoint-dir"
        ) from None


def atomic_save(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a file this function opens and closes: on a failure torch.save's writer (kept
    alive by the traceback) would hold the removed partial file open, its space still in use."""
    with _written_atomically(path, tensor_bytes(obj)) as tmp, open(tmp, "wb") as file:
        torch.save(obj, file)


def atomic_copy(source: Path, path: Path, *, link: bool = False) -> None:
    """`path` becomes a copy of `source` (a hard link when asked and possible), never half-written."""
    with _written_atomically(path, source.stat().st_size) as tmp:
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
        shown = [
            f"{what}"
            f" {', '.join(keys[:KEYS_SHOWN])}{f' (+{len(keys) - KEYS_SHOWN} more)' if len(keys) > KEYS_SHOWN else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        raise ResumeError(
            f"{path} does not fit {type(model).__name__}: keys {'; '.join(shown)}; it holds another model or layout:"
            " move it out of the checkpoint folder, or drop --resume"
        )
    return cleaned


class CheckpointStore:
    """Writes each epoch's checkpoint to every folder (and the bucket); finds the latest to resume from."""

    # stores of this process, for `after_interrupt`
    live: ClassVar[weakref.WeakSet[CheckpointStore]] = weakref.WeakSet()

    def __init__(self, run_id: str, folders: Sequence[Path], bucket: BucketUploader | None) -> None:
        if not folders:
            raise ValueError(
                "a checkpoint store needs at least one local folder: the local copy is what a bucket failure must never"
                " lose"
            )
        self.run_id = run_id
        self.folders = list(
            dict.fromkeys(Path(f).resolve() / run_id for f in folders)
        )  # a folder given twice is one folder
        self.bucket = bucket
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-writer")
        self._pending: Future | None = None
        self.last: Path | None = None  # the newest epoch file written (in the first folder that took it)
        self.failures: list[dict[str, Any]] = []  # {"epoch", "message"} per checkpoint file that could not be written
        self.writer_cpu_s = 0.0  # the writer thread's CPU time (serialise, copy, link); final after `wait`
        CheckpointStore.live.add(self)
        for stale in (tmp for folder in self.folders if folder.is_dir() for tmp in folder.glob(".*.tmp")):
            stale.unlink(missing_ok=True)  # a save of this run that was interrupted; never a checkpoint
            print(f"[trainbench] removed {stale}, left by an interrupted save", flush=True)

    def save(self, epoch: int, checkpoint: dict[str, Any]) -> None:
        """Snapshot `checkpoint` and return; in the background, write it as epoch_NNN.ckpt and
        last.ckpt in every folder and queue the uploads."""
        self.wait()  # the previous write's failures surface here; one snapshot in memory at a time
        frozen = snapshot(checkpoint)
        self._pending = self._writer.submit(self._write, epoch, frozen)

    def wait(self) -> None:
        """Until the last checkpoint is written; each file of it that could not be, printed in one
        line and added to `failures` (never raised: the run goes on without it)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        epoch, errors = pending.result()
        for error in errors:
            kept = f"newest checkpoint kept: {self.last.name}" if self.last else "no checkpoint of this run is kept yet"
            print(f"[trainbench] warning: {error}; the run goes on without it ({kept})", flush=True)
            self.failures.append({"epoch": epoch, "message": error})

    def _write(self, epoch: int, checkpoint: dict[str, Any]) -> tuple[int, list[str]]:
        cpu = time.thread_time()
        try:
            return epoch, self._write_everywhere(epoch, checkpoint)
        finally:
            self.writer_cpu_s += time.thread_time() - cpu

    def _write_everywhere(self, epoch: int, checkpoint: dict[str, Any]) -> list[str]:
        """epoch_NNN.ckpt and last.ckpt in each folder (the first folder that took it serialises, the
        others copy: they may be other disks), then the upload; a folder that fails costs no other."""
        errors: list[str] = []  # messages, not the errors: their tracebacks would keep the snapshot alive
        written: Path | None = None
        for folder in self.folders:
            target = folder / epoch_file(epoch)
            try:
                if written is None:
                    atomic_save(checkpoint, target)
                else:
                    atomic_copy(written, target)
                written = written or target
                atomic_copy(target, folder / LAST, link=True)
            except CheckpointError as error:
                errors.append(str(error))
        if written is not None:
            self.last = written
            if self.bucket is not None:  # epoch files never change, so they are safe to upload later
                self.bucket.upload(written, f"{self.run_id}/{epoch_file(epoch)}", copies=(f"{self.run_id}/{LAST}",))
        return errors

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
            shown = ", ".join(str(p) for p in damaged[:3]) + (
                f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
            )
            raise ResumeError(
                f"every checkpoint of {self.run_id} is damaged ({shown}); remove them to start over, or drop --resume"
                " and give another --run-id"
            )
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
                print(
                    f"[trainbench] {path} is unreadable ({type(error).__name__}); trying an older checkpoint",
                    flush=True,
                )
                damaged.append(path)
                continue
            if not isinstance(content, dict) or not isinstance(content.get(HARNESS_KEY), dict):
                raise ResumeError(
                    f"{path} holds no trainbench state (no '{HARNESS_KEY}' entry: written by another tool or by hand);"
                    f" move it out of {folder}, or drop --resume"
                )
            found = int(content[HARNESS_KEY]["epoch"]), path
            if path.name != LAST and (folder / LAST).is_file():
                print(f"[trainbench] resuming from {path.name} instead of the damaged {LAST}", flush=True)
            return found
        return None
