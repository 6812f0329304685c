"""Models through timm's own factory and its own pretrained loading.

Pretrained weights come, in order, from a file in the weights folder (timm's
`pretrained_cfg_overlay=dict(file=...)`), else from the hub cache or the hub (when allowed). The
classifier is replaced whenever the file's class count differs from the task's, exactly as timm
does for ImageNet weights, so a file trained on any dataset is a valid starting point.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from pathlib import Path

import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from harness.data.transforms import Stats

WEIGHT_FILE_NAMES = ("{model}.safetensors", "{model}.pth", "{model}.bin", "{model}/model.safetensors", "{model}/pytorch_model.bin")


class ModelError(ValueError):
    """An unknown model name or unusable weights; the message names the fix."""


class WeightsNotFound(ModelError):
    """No pretrained weights where the harness looked; the message lists every place."""


def check_name(model: str) -> None:
    if model in timm.list_models():
        return
    close = difflib.get_close_matches(model, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    raise ModelError(f"unknown timm model {model!r}{hint}")


def data_stats(model: str) -> Stats:
    """The normalisation mean/std the model was pretrained with (timm's pretrained config)."""
    check_name(model)
    cfg = timm.get_pretrained_cfg(model)
    return tuple(cfg.mean), tuple(cfg.std)


def weight_file_candidates(model: str, weights_dir: Path) -> list[Path]:
    return [weights_dir / pattern.format(model=model) for pattern in WEIGHT_FILE_NAMES]


def find_weight_file(model: str, weights_dir: Path) -> Path | None:
    return next((p for p in weight_file_candidates(model, weights_dir) if p.is_file()), None)


def _classifier_classes(model: str, file: Path) -> int:
    """How many classes the file's classifier has (so timm knows whether to keep it)."""
    key = f"{timm.get_pretrained_cfg(model).classifier}.weight"
    if file.suffix == ".safetensors":
        with safe_open(str(file), framework="pt") as handle:
            if key in handle.keys():
                return handle.get_slice(key).get_shape()[0]
    else:
        state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
        state = state.get("state_dict", state)
        if key in state:
            return state[key].shape[0]
    raise ModelError(f"{file} has no classifier tensor {key!r}; is it a checkpoint of {model}?")


def create(model: str, num_classes: int, weights: str, weights_dir: Path, *, allow_hub: bool) -> nn.Module:
    """A timm model with `num_classes` outputs, random or pretrained."""
    check_name(model)
    if weights == "random":
        return timm.create_model(model, pretrained=False, num_classes=num_classes)
    file = find_weight_file(model, weights_dir)
    if file is not None:
        overlay = dict(file=str(file), num_classes=_classifier_classes(model, file))
        return timm.create_model(model, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
    looked = ", ".join(str(p) for p in weight_file_candidates(model, weights_dir))
    if not allow_hub:
        raise WeightsNotFound(f"no pretrained weights for {model}: looked for {looked}")
    try:
        return timm.create_model(model, pretrained=True, num_classes=num_classes)
    except Exception as error:  # timm/huggingface_hub raise many kinds when offline or unauthorised
        raise WeightsNotFound(
            f"no pretrained weights for {model}: looked for {looked}, then the Hugging Face hub and its cache "
            f"({type(error).__name__}: {error}); put a weights file in --weights-dir"
        ) from None


def weights_source(model: str, weights: str, weights_dir: Path, *, allow_hub: bool) -> dict[str, str]:
    """Where a run's starting weights come from, precisely enough to tell two sources apart.

    A file is named by its path and sha256 (and, for a generated stand-in, what generated it and
    the accuracy it reached on its source data); hub weights by the hub id timm would load.
    """
    if weights == "random":
        return {"kind": "random"}
    file = find_weight_file(model, weights_dir)
    if file is not None:
        source = {"kind": "file", "path": str(file.resolve()), "sha256": _sha256(file)}
        if file.suffix == ".safetensors":
            with safe_open(str(file), framework="pt") as handle:
                metadata = handle.metadata() or {}
            if metadata.get("generated_by"):
                source.update(kind="generated stand-in", **{k: metadata[k] for k in sorted(metadata)})
        return source
    if not allow_hub:
        raise WeightsNotFound(f"no pretrained weights for {model}: looked for {', '.join(str(p) for p in weight_file_candidates(model, weights_dir))}")
    cfg = timm.get_pretrained_cfg(model)
    return {"kind": "hub", "id": cfg.hf_hub_id or f"timm/{model}"}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Save a state dict as safetensors, atomically (write a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, path)
