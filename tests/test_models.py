"""timm loading: a local weights file is really loaded; unknown names and missing weights are clear;
offline, the hub is refused in seconds and its cache is used."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from harness import models
from harness.runner import obtain_model
from harness.settings import REPO_ROOT
from harness.spec import SpecError
from tests.conftest import TINY_MODEL, tiny_spec


def test_local_weights_file_is_really_loaded(tmp_path):
    source = timm.create_model(TINY_MODEL, num_classes=10)
    models.save_weights(source, tmp_path / f"{TINY_MODEL}.safetensors", {"note": "test"})
    loaded = models.create(TINY_MODEL, 10, "pretrained", tmp_path, allow_hub=False)
    for (name, expected), (_, got) in zip(source.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(expected, got), name


def test_classifier_is_replaced_when_class_count_differs(tmp_path):
    source = timm.create_model(TINY_MODEL, num_classes=10)
    torch.save(source.state_dict(), tmp_path / f"{TINY_MODEL}.pth")
    loaded = models.create(TINY_MODEL, 4, "pretrained", tmp_path, allow_hub=False)
    assert loaded.get_classifier().out_features == 4
    assert torch.equal(loaded.conv_stem.weight, source.conv_stem.weight)


WRAPPED = {
    "compiled": lambda net: torch.compile(net),  # keys `_orig_mod.`; nothing is compiled until it is called
    "data-parallel": nn.DataParallel,  # keys `module.`, as DDP's
    "compiled-data-parallel": lambda net: torch.compile(nn.DataParallel(net)),
}


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("wrapper", WRAPPED)
def test_weights_saved_from_a_compiled_or_wrapped_model_load_as_timm_loads_them(tmp_path, wrapper, suffix):
    """Refused before as "no classifier tensor 'classifier.weight'", though timm loads such a file."""
    source = timm.create_model(TINY_MODEL, num_classes=5)
    state = {k: v.detach().clone().contiguous() for k, v in WRAPPED[wrapper](source).state_dict().items()}
    assert not any(k.startswith("classifier.") for k in state)
    file = tmp_path / f"{TINY_MODEL}{suffix}"
    save_file(state, str(file)) if suffix == ".safetensors" else torch.save(state, file)
    loaded = models.create(TINY_MODEL, 5, "pretrained", tmp_path, allow_hub=False)
    for name, expected in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], expected), name


@pytest.mark.parametrize("key", ["model", "state_dict"])
def test_a_training_checkpoint_holding_the_state_under_a_key_loads_as_timm_loads_it(tmp_path, key):
    source = timm.create_model(TINY_MODEL, num_classes=5)
    torch.save({key: source.state_dict(), "epoch": 3}, tmp_path / f"{TINY_MODEL}.pth")
    loaded = models.create(TINY_MODEL, 5, "pretrained", tmp_path, allow_hub=False)
    assert torch.equal(loaded.conv_stem.weight, source.conv_stem.weight)


def test_random_weights_differ_from_file(tmp_path):
    source = timm.create_model(TINY_MODEL, num_classes=3)
    models.save_weights(source, tmp_path / f"{TINY_MODEL}.safetensors", {})
    fresh = models.create(TINY_MODEL, 3, "random", tmp_path, allow_hub=False)
    assert not torch.equal(fresh.conv_stem.weight, source.conv_stem.weight)


def test_unknown_model_suggests_names():
    with pytest.raises(models.ModelError, match=r"unknown timm model 'efficientnetv2_b22'.*did you mean"):
        models.check_name("efficientnetv2_b22")


def test_missing_weights_list_every_place_looked(tmp_path):
    with pytest.raises(models.WeightsNotFound, match=f"looked for .*{TINY_MODEL}.safetensors.*{TINY_MODEL}.pth"):
        models.create(TINY_MODEL, 3, "pretrained", tmp_path, allow_hub=False)


def test_full_profile_missing_weights_is_an_error_not_generated(settings, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = tiny_spec(weights="pretrained", profile="full")
    with pytest.raises(
        models.WeightsNotFound,
        match=r"HF_HUB_OFFLINE is set; put test_efficientnet\.safetensors in --weights-dir .* or use --profile smoke",
    ):
        obtain_model(spec, settings, 3)
    assert not settings.resolved_weights_dir.exists()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the probe is closed


def full_pretrained_run(folder, tmp_path, hub_cache):
    """`run --profile full --weights pretrained` of the tiny model with the hub unreachable (a closed loopback port)."""
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HUB_CACHE": str(hub_cache)}
    env.pop("HF_HUB_OFFLINE", None)
    (tmp_path / "weights").mkdir(exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "--profile",
        "full",
        "--weights",
        "pretrained",
        "--model",
        TINY_MODEL,
        "--data",
        str(folder),
        "--epochs",
        "1",
        "--image-size",
        "32",
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--wandb",
        "off",
        "--results-dir",
        str(tmp_path / "r"),
        "--weights-dir",
        str(tmp_path / "weights"),
    ]
    start = time.perf_counter()
    done = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    return done, time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.heavy  # a run of its own process; make test: weights from a file and the stand-in
def test_an_unreachable_hub_is_refused_before_the_data_pass_saying_what_to_do(tiny_folder, tmp_path):
    done, seconds = full_pretrained_run(tiny_folder, tmp_path, tmp_path / "empty-hub-cache")
    print(f"refused in {seconds:.1f} s")  # the hub's own retries took about 55 s
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "did not answer within 3 s; put test_efficientnet.safetensors in --weights-dir" in line
    assert (
        "huggingface-cli download timm/test_efficientnet.r160_in1k model.safetensors" in line
        and "--profile smoke" in line
    )
    assert "decoding" not in done.stdout  # refused before the data's decode pass


@pytest.mark.slow
@pytest.mark.heavy  # a run of its own process; make test: weights from a file and the stand-in
def test_weights_in_the_hub_cache_train_offline_and_the_record_names_them(tiny_folder, tmp_path):
    """The cache laid out as huggingface_hub writes it: refs/main names the snapshot holding model.safetensors."""
    repo = tmp_path / "hub" / "models--timm--test_efficientnet.r160_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    cached = repo / "snapshots" / ("0" * 40) / "model.safetensors"
    models.save_weights(timm.create_model(TINY_MODEL), cached, {})
    done, _ = full_pretrained_run(tiny_folder, tmp_path, tmp_path / "hub")
    assert done.returncode == 0, done.stderr
    (record,) = (tmp_path / "r").glob("*/result.json")
    weights = json.loads(record.read_text())["weights"]
    assert (
        weights["kind"] == "hub cache"
        and weights["id"] == "timm/test_efficientnet.r160_in1k"
        and weights["path"] == str(cached)
    )
    assert f"weights: hub cache {cached}" in done.stdout


def test_a_recipe_can_draw_the_new_classifier_small(settings):
    """timm starts EfficientNet's 6-class head uniform in +-0.41; head_init_std draws it from N(0, std)."""
    default = obtain_model(tiny_spec(), settings, num_classes=6).get_classifier()
    assert default.weight.abs().max() > 0.3  # TensorFlow-style 1/sqrt(6)
    head = obtain_model(tiny_spec().with_recipe(head_init_std=0.01), settings, num_classes=6).get_classifier()
    assert 0.005 < head.weight.std().item() < 0.015 and torch.count_nonzero(head.bias) == 0
    with pytest.raises(SpecError, match="head_init_std must be a positive number"):
        tiny_spec().with_recipe(head_init_std=-1.0)
