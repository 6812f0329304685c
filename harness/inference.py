"""Inference-time checks: structural reparameterization (FastViT, MobileOne, RepVGG ...).

`timm.utils.reparameterize_model` fuses train-time branches (conv + BN + skip) into single convs.
The fused model must predict what the unfused one does; the check records the largest logit
difference, the top-1 agreement and the inference images/s of both on the test set.
Tolerance: fused logits within REL_TOLERANCE of the logit scale, and identical top-1 on every image.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from timm.utils import reparameterize_model
from torch import nn

REL_TOLERANCE = 1e-3


def is_reparameterizable(model: nn.Module) -> bool:
    return any(hasattr(m, "reparameterize") for m in model.modules())


@torch.inference_mode()
def _predict(model: nn.Module, batches: list[torch.Tensor], device: torch.device) -> tuple[torch.Tensor, float]:
    model.eval().to(device)
    model(batches[0].to(device))  # warm-up, not timed
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = [model(x.to(device)).float().cpu() for x in batches]
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    images = sum(len(x) for x in batches)
    return torch.cat(out), images / seconds


def reparameterization_check(
    model: nn.Module, loader, normalize: Callable[[torch.Tensor], torch.Tensor], device: torch.device
) -> dict[str, float]:
    """Compare the fused model against `model` on every batch of `loader` (decoded and normalised once, up front)."""
    batches = [normalize(x) for x, _ in loader]
    unfused, unfused_rate = _predict(model, batches, device)
    fused_model = reparameterize_model(model, inplace=False)
    fused, fused_rate = _predict(fused_model, batches, device)
    scale = max(1.0, float(unfused.abs().max()))
    max_diff = float((fused - unfused).abs().max())
    return {
        "max_abs_logit_diff": max_diff,
        "tolerance": REL_TOLERANCE * scale,
        "top1_agreement": float((fused.argmax(1) == unfused.argmax(1)).float().mean()),
        "unfused_images_per_s": unfused_rate,
        "fused_images_per_s": fused_rate,
        "within_tolerance": float(max_diff <= REL_TOLERANCE * scale),
    }
