"""Models through timm's own factory and its own pretrained loading.

Pretrained weights come, in order, from a file in the weights folder (timm's
`pretrained_cfg_overlay=dict(file=...)`), else (when the hub is allowed) from the Hugging Face
cache, else from the hub itself after one short reachability probe: offline, huggingface_hub's
own retries took about 55 s before they failed. The
classifier is replaced whenever the file's class count differs from the task's, exactly as timm
does for ImageNet weights, so a file trained on any dataset is a valid starting point. A file is
checked by its tensors' names as timm reads them (`_tensor_shapes`): saved from a compiled or
DDP-wrapped model, or a training checkpoint holding its state under a key, it loads as timm loads it.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from timm.models import PretrainedCfg, clean_state_dict
from torch import nn

from harness.atomic import written_atomically
from harness.data.device import Stats
from harness.errors import ExtensionError, ModelError, WeightsNotFound
from harness.extensions import call, is_import_path, resolve_callable

HUB_PROBE_S = 3.0  # one TCP connect to the hub's host; a reachable hub answers in well under a second
HUB_FILE_NAMES = ("model.safetensors", "pytorch_model.bin")  # what timm downloads from a hub repo, in its order
STATE_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")  # a checkpoint's state, in timm's order
WEIGHT_FILE_NAMES = (
    "{model}.safetensors",
    "{model}.pth",
    "{model}.bin",
    "{model}/model.safetensors",
    "{model}/pytorch_model.bin",
)


IMAGENET_STATS: Stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # timm's IMAGENET_DEFAULT_MEAN/STD


def check_name(model: str) -> None:
    """A timm model name, or a model of one's own by import path (`package.module:factory`, called with
    `num_classes`); an unknown one is a ModelError (an ExtensionError for an import path) naming the fix."""
    if is_import_path(model):
        resolve_callable(model, "model")
        return
    if model in timm.list_models():
        return
    close = difflib.get_close_matches(model, timm.list_models(), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    raise ModelError(
        f"unknown timm model {model!r}{hint} (a model of your own, registered with timm or not: name it by import"
        f" path, package.module:{model}, so that every process imports its module)"
    )


def data_stats(model: str) -> Stats:
    """The normalisation mean/std the model was pretrained with (timm's pretrained config); for a model of one's
    own, its factory's `mean` and `std` attributes when it has them, else ImageNet's (`normalisation_source`)."""
    check_name(model)
    if is_import_path(model):
        return _own_stats(model) or IMAGENET_STATS
    cfg = pretrained_cfg(model)
    return cast(Stats, (tuple(cfg.mean), tuple(cfg.std)))  # RGB models: three of each (timm: tuple[float, ...])


def normalisation_source(model: str) -> str:
    """Where `data_stats(model)` comes from, in words for the start-up line and the record."""
    if not is_import_path(model):
        return "timm's pretrained config"
    if _own_stats(model):
        return "the model's mean and std"
    return "ImageNet's (the model gives no mean and std attributes)"


def _own_stats(model: str) -> Stats | None:
    """A model of one's own's `mean` and `std`, its factory's attributes (None: it gives none)."""
    factory = resolve_callable(model, "model")
    mean, std = getattr(factory, "mean", None), getattr(factory, "std", None)
    if mean is None or std is None:
        return None
    return cast(Stats, (tuple(float(v) for v in mean), tuple(float(v) for v in std)))


def pretrained_cfg(model: str) -> PretrainedCfg:
    """timm's pretrained config of `model`; for an architecture with none registered, timm's defaults,
    as `timm.create_model` uses then (it was an AttributeError on None)."""
    return timm.get_pretrained_cfg(model) or PretrainedCfg()


def weight_file_candidates(model: str, weights_dir: Path) -> list[Path]:
    return [weights_dir / pattern.format(model=model) for pattern in WEIGHT_FILE_NAMES]


def find_weight_file(model: str, weights_dir: Path) -> Path | None:
    return next((p for p in weight_file_candidates(model, weights_dir) if p.is_file()), None)


def _tensor_shapes(model: str, file: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a weights file, read without loading the tensors, named as
    timm's `load_state_dict` names them when it loads the file: from the state its checkpoint keys
    hold, if any (`STATE_KEYS`), with the prefixes of a compiled or DDP-wrapped model removed
    (`clean_state_dict`, which the checkpoints' resume uses too)."""
    if file.suffix == ".safetensors":
        with safe_open(str(file), framework="pt") as handle:
            names = handle.keys()  # a safe_open handle is not iterable: `keys()` is how it lists its tensors
            return clean_state_dict({k: tuple(handle.get_slice(k).get_shape()) for k in names})
    state = torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, dict):
        raise ModelError(
            f"weights file {file} holds a {type(state).__name__}, not a state dict; give a {model} state dict"
        )
    state = next((state[key] for key in STATE_KEYS if isinstance(state.get(key), dict)), state)
    return clean_state_dict({k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)})


def check_fits(model: str, file: Path) -> int:
    """The file's classifier class count, once every other tensor of `model` is in the file by name
    and shape. timm loads a file non-strictly whenever the class count differs (the classifier is
    replaced), so without this check a file of another architecture would load half its tensors
    in silence."""
    shapes = _tensor_shapes(model, file)
    classifier = pretrained_cfg(model).classifier
    key = f"{classifier}.weight"
    if key not in shapes:
        raise ModelError(
            f"weights file {file} has no classifier tensor {key!r}: is it a checkpoint of {model}? Give a {model} state"
            " dict or remove the file"
        )
    with (
        torch.random.fork_rng(devices=[]),
        torch.device("meta"),
    ):  # shapes only: no memory, and the run's RNG is left untouched
        expected = {
            k: tuple(v.shape) for k, v in timm.create_model(model, num_classes=shapes[key][0]).state_dict().items()
        }

    def body(names) -> set[str]:
        return {n for n in names if not n.startswith(f"{classifier}.") and not n.endswith("num_batches_tracked")}

    missing, unexpected = sorted(body(expected) - body(shapes)), sorted(body(shapes) - body(expected))
    reshaped = sorted(n for n in body(expected) & body(shapes) if expected[n] != shapes[n])
    if missing or unexpected or reshaped:
        example = (missing or unexpected or reshaped)[0]
        raise ModelError(
            f"weights file {file} does not fit {model}: its tensors do not fit this architecture ({len(missing)}"
            f" missing, {len(unexpected)} unexpected, {len(reshaped)} of another shape; e.g. {example}); give a {model}"
            " state dict or remove the file"
        )
    return shapes[key][0]


def create(
    model: str,
    num_classes: int,
    weights: str,
    weights_dir: Path,
    *,
    allow_hub: bool,
    head_init_std: float | None = None,
) -> nn.Module:
    """A timm model with `num_classes` outputs, random or pretrained; its new classifier drawn at
    `head_init_std` when given (`init_classifier`)."""
    net = _create(model, num_classes, weights, weights_dir, allow_hub=allow_hub)
    if head_init_std is not None:
        init_classifier(net, head_init_std)
    return net


def _create(model: str, num_classes: int, weights: str, weights_dir: Path, *, allow_hub: bool) -> nn.Module:
    check_name(model)
    if is_import_path(model):
        return _own(model, num_classes)
    if weights == "random":
        return timm.create_model(model, pretrained=False, num_classes=num_classes)
    file = find_weight_file(model, weights_dir) or (hub_cached_file(model) if allow_hub else None)
    if file is not None:
        try:
            overlay = dict(file=str(file), num_classes=check_fits(model, file))
            return timm.create_model(model, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
        except ModelError:
            raise
        except Exception as error:  # safetensors, pickle and zip each raise their own kinds
            raise ModelError(
                f"weights file {file} cannot be read: {_load_problem(error)}; replace it with a {model} state dict"
            ) from None
    check_hub(model, weights_dir, allow_hub)
    try:
        return timm.create_model(model, pretrained=True, num_classes=num_classes)
    except Exception as error:  # timm/huggingface_hub raise many kinds when unauthorised or interrupted
        raise WeightsNotFound(
            f"no pretrained weights for {model}: looked for {_looked(model, weights_dir)}, then the Hugging Face hub "
            f"({type(error).__name__}: {_load_problem(error)}); put a weights file in --weights-dir"
        ) from None


def _own(model: str, num_classes: int) -> nn.Module:
    """A model of one's own: its factory called as `factory(num_classes=N)` (so a timm entry point of one's own,
    `@register_model`, is one too: its module registers it wherever it is imported); its weights are its factory's
    to load (the spec refuses `pretrained` for it)."""
    net = call(model, "model", "factory(num_classes=N) -> nn.Module", num_classes=num_classes)
    if not isinstance(net, nn.Module):
        raise ExtensionError(
            f"model {model!r} returned a {type(net).__name__}, not a torch.nn.Module; return the network"
        )
    return net


def _looked(model: str, weights_dir: Path) -> str:
    return ", ".join(str(p) for p in weight_file_candidates(model, weights_dir))


def hub_id(model: str) -> str:
    return pretrained_cfg(model).hf_hub_id or f"timm/{model}"


def hub_cached_file(model: str) -> Path | None:
    """The weights file of `model` already in the Hugging Face cache (HF_HUB_CACHE), if any."""
    from huggingface_hub import try_to_load_from_cache

    for filename in HUB_FILE_NAMES:
        found = try_to_load_from_cache(hub_id(model), filename)
        if isinstance(found, str):  # None: unknown; a sentinel object: known to be absent
            return Path(found)
    return None


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def hub_reachable(timeout_s: float = HUB_PROBE_S) -> bool:
    """Whether the hub can be asked at all: HF_HUB_OFFLINE unset and one TCP connect to its host within `timeout_s`."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(hub_endpoint())
    try:
        socket.create_connection(
            (url.hostname or "", url.port or (443 if url.scheme == "https" else 80)), timeout=timeout_s
        ).close()
        return True
    except OSError:
        return False


def check_hub(model: str, weights_dir: Path, allow_hub: bool) -> None:
    """Weights must come from the hub: refuse in seconds, saying what to do, when it cannot be asked."""
    where = f"no pretrained weights for {model}: looked for {_looked(model, weights_dir)}"
    if not allow_hub:
        raise WeightsNotFound(where)
    if not hub_reachable():
        offline = (
            "HF_HUB_OFFLINE is set"
            if os.environ.get("HF_HUB_OFFLINE")
            else f"the Hugging Face hub ({hub_endpoint()}) did not answer within {HUB_PROBE_S:g} s"
        )
        raise WeightsNotFound(
            f"{where} and in the Hugging Face cache, and {offline}; put {model}.safetensors in --weights-dir (e.g."
            f" `huggingface-cli download {hub_id(model)} model.safetensors` where there is network), or use --profile"
            " smoke, whose pretrained weights are a generated stand-in"
        )


def init_classifier(model: nn.Module, std: float) -> None:
    """Draw the classifier's weights from N(0, std) and zero its bias.

    timm initialises EfficientNet's new classifier TensorFlow-style, uniform in +-1/sqrt(classes):
    0.41 for 6 classes (FastViT's starts at std 0.02), so its first logits are large, the first
    epoch's loss lies far above the chance loss ln(classes), and short runs are unstable.
    """
    # a timm model's method (torch types an nn.Module's unknown attributes as Tensor | Module)
    head = cast(Callable[[], nn.Module], model.get_classifier)()
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ModelError(
            f"{type(model).__name__} has no classifier with weights to initialise; drop head_init_std from the recipe"
        )
    with torch.no_grad():
        weight.normal_(0.0, std)
        bias = getattr(head, "bias", None)
        if bias is not None:
            bias.zero_()


def _load_problem(error: Exception) -> str:
    """One line for a file that cannot be read (safetensors, pickle or zip errors can be long)."""
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:300]


def weights_source(model: str, weights: str, weights_dir: Path, *, allow_hub: bool) -> dict[str, str]:
    """Where a run's starting weights come from, precisely enough to tell two sources apart.

    A file is named by its path and sha256 (and, for a generated stand-in, what generated it and
    the accuracy it reached on its source data); hub weights by the hub id timm would load, and
    by the cached file's path and sha256 when the Hugging Face cache already holds them.
    """
    if weights == "random":
        return {"kind": "random"}
    file = find_weight_file(model, weights_dir)
    cached = hub_cached_file(model) if file is None and allow_hub else None
    if cached is not None:
        return {"kind": "hub cache", "id": hub_id(model), "path": str(cached), "sha256": _sha256(cached)}
    if file is not None:
        source = {"kind": "file", "path": str(file.resolve()), "sha256": _sha256(file)}
        if file.suffix == ".safetensors":
            try:
                with safe_open(str(file), framework="pt") as handle:
                    metadata = handle.metadata() or {}
            except Exception as error:  # SafetensorError: not a safetensors file
                raise ModelError(
                    f"weights file {file} cannot be read: {_load_problem(error)}; replace it with a {model} checkpoint"
                ) from None
            if metadata.get("generated_by"):
                source.update(kind="generated stand-in", **{k: metadata[k] for k in sorted(metadata)})
        return source
    check_hub(model, weights_dir, allow_hub)
    return {"kind": "hub", "id": hub_id(model)}


def stand_in_metadata(model: str, weights_dir: Path) -> dict[str, str] | None:
    """The metadata of a generated stand-in weights file of `model` (None: no file, or not one we generated)."""
    file = find_weight_file(model, weights_dir)
    if file is None or file.suffix != ".safetensors":
        return None
    try:
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:  # not ours to judge here: weights_source names an unreadable file
        return None
    return metadata if metadata.get("generated_by") else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Save a state dict as safetensors, atomically (write a temporary file, then rename)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with written_atomically(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
