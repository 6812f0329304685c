"""FLOPs per image of a model, counted once per (model, image size, classes) with torch's own
`torch.utils.flop_counter.FlopCounterMode` on one forward pass, and cached.

Conventions: one multiply-add is 2 FLOPs (as FlopCounterMode counts; papers' "MACs" or "FLOPs" in
the GMACs sense are half of `forward_per_image`). Training is counted as 3 x forward (forward, and a
backward of about twice its cost: Kaplan et al. 2020, "Scaling laws", section 2.1; the MFU of
Chowdhery et al. 2022, PaLM, appendix B). Counting the backward pass with the same counter is not
used: it overcounts grouped and depthwise convolutions (measured with torch 2.x: fastvit_t8's
backward 12.5x its forward, tf_efficientnetv2_b2's 14.6x, resnet18's a plausible 2.9x).

Checked against the papers (tests/test_efficiency.py): ResNet-18 at 224 px, 1.8 G multiply-adds (He
et al. 2016, Table 1), counted 1.814 G; FastViT-T8 at 256 px, 0.7 G (Vasu et al. 2023, Table 2),
counted 0.690 G.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from harness.efficiency.cache import json_cached

TRAIN_TO_FORWARD = 3.0
CACHE_FILE = "flops.json"


@dataclass(frozen=True)
class Flops:
    """FLOPs of one image through the model: a forward pass, and a training step (3 x forward)."""

    forward_per_image: float
    train_per_image: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def count(model: nn.Module, image_size: int) -> Flops:
    """One image of `image_size` px through `model` (in eval mode, without gradients; its mode is
    restored), on the device its parameters are on."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        model.train(was_training)
    forward = float(counter.get_total_flops())
    return Flops(forward, TRAIN_TO_FORWARD * forward)


def cached(model: nn.Module, name: str, image_size: int, num_classes: int, cache_dir: Path) -> Flops:
    """`count`, read from `cache_dir/flops.json` when this (model name, size, classes) was counted before."""
    return json_cached(
        Path(cache_dir) / CACHE_FILE,
        f"{name}@{image_size}px/{num_classes}",
        lambda: count(model, image_size).as_dict(),
        lambda raw: Flops(**raw),
    )
