"""What stands between `--resume` and a checkpoint of another run of the same case, said in the
user's terms, before any data is decoded.

Checkpoint folders are named by run id (case id + fingerprint), so after a change (an lr, a class
folder added) `--resume` finds no checkpoint under the new fingerprint while the old run's sit
beside it. `check` looks for them first: when this run has no checkpoint and the case has some under
another fingerprint (or the `--run-id` given holds another run's), it refuses in one line that names
each difference (recipe values, engine, precision, devices, data files and classes) and the two ways
on: resume with the values the checkpoint was trained with, or start fresh without `--resume`.
Only an unfinished run of the same case and seed counts (another seed of the experiment, or a run
that wrote its record, is not one to continue). Local checkpoint folders are searched; the bucket
is read only by the resume itself.

`finished` answers the other way `--resume` can have nothing to do: the run it would continue
already wrote its record. The runner then says so in one line and reports that record (exit 0, so
a pipeline that retries with `--resume` is done) instead of training a new attempt from epoch 1.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.artifacts.checkpoints import HARNESS_KEY, LAST, load
from harness.errors import ResumeError, SpecError
from harness.results.record import RESULT_FILE
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec, value_text

SPEC_FIELDS = ("model", "dataset", "engine", "weights", "precision", "devices", "num_nodes", "profile", "limit_batches")


def differences(saved: dict[str, Any], spec: BenchmarkSpec, data: dict[str, Any] | None) -> list[str]:
    """`lr 0.001 (now 0.003)`, `classes added: d`: what the checkpoint's run had that this run has not."""
    found = []
    try:
        before = BenchmarkSpec.from_dict(saved["spec"])
    except (KeyError, TypeError, ValueError, SpecError):
        before = None
    if before is not None:
        for name in SPEC_FIELDS:
            if getattr(before, name) != getattr(spec, name):
                found.append(f"{name} {value_text(getattr(before, name))} (now {value_text(getattr(spec, name))})")
        for field in dataclasses.fields(spec.recipe):
            old, new = getattr(before.recipe, field.name), getattr(spec.recipe, field.name)
            if old != new:
                found.append(f"{field.name} {value_text(old)} (now {value_text(new)})")
    old_data = saved.get("data") or {}
    if data and old_data and old_data.get("fingerprint") != data.get("fingerprint"):
        if old_data.get("path") != data.get("path"):
            found.append(f"data folder {old_data.get('path')} (now {data.get('path')})")
        if old_data.get("files") != data.get("files"):
            found.append(f"data {old_data.get('files')} image files (now {data.get('files')})")
        added = sorted(set(data.get("classes", ())) - set(old_data.get("classes", ())))
        removed = sorted(set(old_data.get("classes", ())) - set(data.get("classes", ())))
        if added:
            found.append(f"classes added: {', '.join(added)}")
        if removed:
            found.append(f"classes removed: {', '.join(removed)}")
        if not (added or removed) and old_data.get("files") == data.get("files"):
            found.append("the images' content (same file count)")
    return found or ["the weights or the data's content (the checkpoint does not record which)"]


def refusal(path: Path, saved: dict[str, Any], spec: BenchmarkSpec, data: dict[str, Any] | None) -> str:
    return (
        f"--resume: {path} (epoch {saved.get('epoch', '?')}) was trained with other settings:"
        f" {'; '.join(differences(saved, spec, data))}; resume it with the values it was trained with, or drop --resume"
        " to start this run fresh"
    )


def _own(name: str, run_id: str) -> bool:
    return name == run_id or re.fullmatch(re.escape(run_id) + r"-attempt\d+", name) is not None


def _has_checkpoint(folder: Path) -> bool:
    return (folder / LAST).is_file() or any(folder.glob("epoch_*.ckpt"))


def saved_state(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in a run's folder that loads and holds trainbench's state, and that
    state; quietly None when there is none (the resume itself reports damaged files)."""
    for path in [folder / LAST, *sorted(folder.glob("epoch_*.ckpt"), reverse=True)]:
        if path.is_file():
            try:
                content = load(path)
            except Exception:  # damaged or foreign: not a run this one could continue
                continue
            if isinstance(content, dict) and isinstance(content.get(HARNESS_KEY), dict):
                return path, content[HARNESS_KEY]
    return None


def _folders(settings: RunSettings) -> list[Path]:
    """The local checkpoint folders a run writes to (the bucket's local copy when only a bucket is given)."""
    bucket_copy = [settings.results_dir / "checkpoints"] if settings.gcs_bucket else []
    return [Path(f).resolve() for f in settings.checkpoint_dirs] or bucket_copy


def finished(settings: RunSettings, attempt: Callable[[int], str], run_id: str | None) -> Path | None:
    """Under --resume, the record of the run it would continue when that run already finished: the
    `--run-id` given has a record; or, without one, the attempt a run would claim (the first without a
    record, `attempt(n)` naming the n-th) has no checkpoint while the one before it has its record."""
    if not settings.resume:
        return None
    if run_id is not None:
        path = settings.results_dir / run_id / RESULT_FILE
        return path if path.is_file() else None
    number = 1
    while (settings.results_dir / attempt(number) / RESULT_FILE).is_file():
        number += 1
    if number == 1 or any(_has_checkpoint(folder / attempt(number)) for folder in _folders(settings)):
        return None
    return settings.results_dir / attempt(number - 1) / RESULT_FILE


def check(
    spec: BenchmarkSpec, settings: RunSettings, run_id: str, fingerprint: str, data: dict[str, Any] | None, given: bool
) -> None:
    """Before the decode pass (module docstring). `run_id` is this run's (the `--run-id` when
    `given`, else its first attempt's), `fingerprint` the one its checkpoints must carry.

    Without `--run-id`, only an unfinished run (no record in the results folder) of the same case
    and seed counts: another seed of the experiment, or a run that finished, is not this run."""
    if not settings.resume:
        return
    runs = [d for folder in _folders(settings) if folder.is_dir() for d in folder.iterdir() if d.is_dir()]
    if given:
        candidates = [d for d in runs if d.name == run_id]
    else:
        if any(_own(d.name, run_id) and _has_checkpoint(d) for d in runs):
            return
        pattern = re.escape(spec.id) + r"-[0-9a-f]{8}(-attempt\d+)?"
        candidates = [
            d
            for d in runs
            if re.fullmatch(pattern, d.name) and not (settings.results_dir / d.name / RESULT_FILE).is_file()
        ]
    found = []
    for folder in candidates:
        state = saved_state(folder)
        if state is None:
            continue
        seed = state[1].get("spec", {}).get("recipe", {}).get("seed")
        if given or seed == spec.recipe.seed:
            found.append(state)
    if not found:
        return
    path, saved = max(found, key=lambda state: state[0].stat().st_mtime)
    if saved.get("fingerprint") != fingerprint:
        raise ResumeError(refusal(path, saved, spec, data))
