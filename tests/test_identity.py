"""Run identity: runs that differ in anything that determines the result never share a record or a
checkpoint folder; an identical run becomes a new attempt; the record says what produced it."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file

from harness import models, pretrain, runner
from harness.artifacts import ResumeError
from harness.preflight import PreflightError
from harness.results.record import load_all
from harness.settings import REPO_ROOT, RunSettings
from harness.spec import SpecError
from tests.conftest import TINY_MODEL, make_image_folder, tiny_spec


@pytest.mark.slow
def test_lr_and_seed_sweeps_keep_every_record_and_report_shows_them_all(tiny_folder, settings):
    settings = settings.replace(data_root=tiny_folder)
    specs = [tiny_spec().with_recipe(lr=lr) for lr in (1e-3, 3e-3)] + [
        tiny_spec().with_recipe(seed=seed) for seed in (1, 2)
    ]
    run_ids = [runner.run(spec, settings).run_id for spec in specs]
    assert len(set(run_ids)) == 4 and all(r.startswith(tiny_spec().id + "-") for r in run_ids)
    assert sorted(r.run_id for r in load_all(settings.results_dir)) == sorted(run_ids)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(settings.results_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert all(run_id in done.stdout for run_id in run_ids)
    assert "lr 0.001" in done.stdout and "lr 0.003" in done.stdout and "seed 2" in done.stdout


def test_an_identical_run_is_a_new_attempt_beside_the_first(tiny_folder, settings):
    settings = settings.replace(data_root=tiny_folder)
    first = runner.run(tiny_spec(), settings)
    before = (settings.results_dir / first.run_id / "result.json").read_bytes()
    second = runner.run(tiny_spec(), settings)
    assert second.run_id == f"{first.run_id}-attempt2" and second.fingerprint == first.fingerprint
    assert (settings.results_dir / first.run_id / "result.json").read_bytes() == before
    assert len(load_all(settings.results_dir)) == 2


@pytest.mark.slow
@pytest.mark.heavy
def test_two_runs_started_at_once_claim_two_attempts(tiny_folder, tmp_path):
    """The same command twice, 0.5 s apart, into one results folder: both exited 0, both printed the
    same result.json, one record survived, and both wrote into one checkpoint folder."""
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--model",
        TINY_MODEL,
        "--data",
        str(tiny_folder),
        "--weights",
        "random",
        "--epochs",
        "4",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "results"),
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    runner.prepare(
        tiny_spec(), RunSettings(results_dir=tmp_path / "results", cache_dir=tmp_path / "cache", data_root=tiny_folder)
    )  # the decode pass once, not raced
    first = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)
    second = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    printed = [next(line for line in out.splitlines() if line.startswith("record: ")) for out in outputs]
    assert len(set(printed)) == 2, printed
    records = load_all(tmp_path / "results")
    assert len(records) == 2 and len({r.run_id for r in records}) == 2 and len({r.fingerprint for r in records}) == 1
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted(r.run_id for r in records)
    assert all(len(list((tmp_path / "ckpt" / r.run_id).glob("epoch_*.ckpt"))) == 4 for r in records)


@pytest.mark.slow
@pytest.mark.ddp
@pytest.mark.heavy
def test_the_processes_lightning_starts_write_under_the_attempt_their_rank_0_claimed(tiny_folder, tmp_path):
    """`python -m harness run --devices 2`: Lightning starts rank 1 from the same command line, without
    --run-id, while rank 0 holds the first attempt; rank 1 must not claim a second one."""
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--model",
        TINY_MODEL,
        "--engine",
        "lightning",
        "--devices",
        "2",
        "--data",
        str(tiny_folder),
        "--weights",
        "random",
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "results"),
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
    ]
    done = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = load_all(tmp_path / "results")
    assert [p.name for p in (tmp_path / "results").iterdir() if p.is_dir()] == [record.run_id]
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == [record.run_id]


def test_same_folder_name_elsewhere_is_another_dataset_and_resume_never_crosses(tmp_path, settings, capfd):
    a = make_image_folder(tmp_path / "a" / "tiny", dict.fromkeys("abcd", 6))
    b = make_image_folder(tmp_path / "b" / "tiny", dict.fromkeys("abcd", 6), size=(44, 44))
    ckpt = (tmp_path / "ckpt",)
    first = runner.run(tiny_spec(), settings.replace(data_root=a, checkpoint_dirs=ckpt))
    record = settings.results_dir / first.run_id / "result.json"
    kept = record.read_bytes()
    record.unlink()  # as if the first run had been interrupted: a run --resume could continue
    with pytest.raises(
        ResumeError,
        match=(
            rf"was trained with other settings: data folder {a.resolve()} \(now {b.resolve()}\); the images' content"
            r" \(same file count\)"
        ),
    ):
        runner.run(tiny_spec(), settings.replace(data_root=b, checkpoint_dirs=ckpt, resume=True))
    record.write_bytes(kept)  # finished after all: nothing of it to continue
    other = runner.run(tiny_spec(), settings.replace(data_root=b, checkpoint_dirs=ckpt, resume=True))
    assert other.run_id != first.run_id and other.data["path"] == str(b.resolve())
    assert f"no checkpoint of {other.run_id} found" in capfd.readouterr().out
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == sorted([first.run_id, other.run_id])
    assert {r.run_id for r in load_all(settings.results_dir)} == {first.run_id, other.run_id}


def test_fingerprint_follows_content_not_where_or_when_files_were_written(tiny_folder, settings, tmp_path):
    settings = settings.replace(data_root=tiny_folder)
    spec = tiny_spec()
    before = runner.prepare(spec, settings)
    assert runner.prepare(spec, settings) == before  # stable
    copy = tmp_path / "fresh-machine" / "tiny"
    shutil.copytree(tiny_folder, copy)  # new path, new modification times: the same data
    image = next(copy.glob("a/*.png"))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert runner.prepare(spec, settings.replace(data_root=copy)).run_id == before.run_id
    Image.open(image).transpose(Image.Transpose.ROTATE_180).save(image)  # other content, same name
    edited = runner.prepare(spec, settings.replace(data_root=copy, cache_dir=tmp_path / "cache2"))
    assert edited.fingerprint != before.fingerprint and edited.data.files == before.data.files
    pretrained = spec.replace(weights="pretrained")
    models.save_weights(
        timm.create_model(TINY_MODEL, num_classes=3), settings.resolved_weights_dir / f"{TINY_MODEL}.safetensors", {}
    )
    first_file = runner.prepare(pretrained, settings)
    models.save_weights(
        timm.create_model(TINY_MODEL, num_classes=4), settings.resolved_weights_dir / f"{TINY_MODEL}.safetensors", {}
    )
    assert runner.prepare(pretrained, settings).fingerprint != first_file.fingerprint


def test_record_says_what_produced_it(tiny_folder, settings):
    settings = settings.replace(data_root=tiny_folder)
    path = settings.resolved_weights_dir / f"{TINY_MODEL}.safetensors"
    stand_in = {
        "generated_by": "trainbench source pretraining",
        "source_test_acc": "0.9000",
        "stand_in_version": pretrain.STAND_IN_VERSION,
    }
    models.save_weights(timm.create_model(TINY_MODEL, num_classes=3), path, stand_in)
    spec = tiny_spec(weights="pretrained", target_accuracy=0.5, target_source="--target-acc")
    record = runner.run(spec, settings)
    assert (
        record.data["path"] == str(tiny_folder.resolve())
        and record.data["files"] == 72
        and len(record.data["fingerprint"]) == 16
    )
    assert record.data["classes"] == list("abcdef") and record.data["split"] == {
        "train": 36,
        "val": 18,
        "test": 18,
        "unused": 0,
        "by": "the recipe",
    }
    assert record.weights == {
        "kind": "generated stand-in",
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "generated_by": "trainbench source pretraining",
        "source_test_acc": "0.9000",
        "stand_in_version": pretrain.STAND_IN_VERSION,
    }
    assert record.batch == {"global": 8, "processes": 1, "per_process": 8, "per_device": 8}
    assert record.target == {"accuracy": 0.5, "source": "--target-acc"}
    assert record.environment["cuda"] is None and record.environment["device"].startswith("cpu")
    assert {"lightning", "poutyne", "torchmetrics"} <= set(record.environment)
    assert runner.run(tiny_spec(), settings).weights == {"kind": "random"}


def test_several_nodes_must_be_given_one_run_id(tiny_folder, settings, monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "as-under-torchrun")
    spec = tiny_spec(engine="lightning", num_nodes=2)
    with pytest.raises(
        PreflightError, match="every node must write under one run id; give each node the same --run-id"
    ):
        runner.run(spec, settings.replace(data_root=tiny_folder))


def test_global_batch_must_divide_over_the_processes():
    assert tiny_spec(engine="lightning", devices=2).per_process_batch == 4
    assert tiny_spec(engine="poutyne", devices=2).per_process_batch == 8  # one process, a device list
    with pytest.raises(SpecError, match=r"batch size 41 is the global batch .* 2 processes .*--batch-size 40 or 42"):
        tiny_spec(engine="lightning", devices=2).with_recipe(batch_size=41)


@pytest.mark.slow
def test_a_stand_in_of_an_older_pretraining_is_made_again_and_a_users_file_never(tiny_folder, settings, monkeypatch):
    monkeypatch.setattr(pretrain, "SOURCE_EPOCHS", 1)  # which file is made again, not how well it pretrains
    settings = settings.replace(data_root=tiny_folder)
    path = settings.resolved_weights_dir / f"{TINY_MODEL}.safetensors"
    models.save_weights(timm.create_model(TINY_MODEL, num_classes=3), path, {})  # a user's own file
    users = path.read_bytes()
    runner.prepare(tiny_spec(weights="pretrained"), settings)
    assert path.read_bytes() == users
    models.save_weights(
        timm.create_model(TINY_MODEL, num_classes=3),
        path,
        {"generated_by": "trainbench source pretraining", "epochs": "6"},
    )
    runner.prepare(tiny_spec(weights="pretrained"), settings)
    assert (
        models.stand_in_metadata(TINY_MODEL, settings.resolved_weights_dir)["stand_in_version"]
        == pretrain.STAND_IN_VERSION
    )


@pytest.mark.slow
def test_the_stand_in_does_not_depend_on_what_ran_before_it(settings, tmp_path, monkeypatch):
    """Generated in a process whose RNG others have used, the stand-in holds the same weights (after one epoch of
    its pretraining: where the RNG is seeded does not depend on how many follow)."""
    monkeypatch.setattr(pretrain, "SOURCE_EPOCHS", 1)
    weights = []
    for k, state in enumerate((1, 2)):
        torch.manual_seed(state)  # whatever trained before in this process
        path = pretrain.generate(
            tiny_spec(weights="pretrained"), settings.replace(weights_dir=tmp_path / f"weights-{k}")
        )
        weights.append(load_file(path))
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])
