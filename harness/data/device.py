"""Batches travel as uint8 and become model input on the device.

A uint8 batch is a quarter of the float32 bytes through the loader's shared memory, the pinned copy
and the host-to-device transfer, and the per-pixel float work runs on the accelerator instead of
in the loader workers. Every engine (and the plain reference loop) calls the same `DeviceNormalize`,
so they feed the model identical tensors: `(x - 255 mean) / (255 std)` in float32, the same
arithmetic as albumentations' Normalize with max_pixel_value 255, in `channels_last` on GPUs,
where convolutions under autocast run faster in that layout.
"""

from __future__ import annotations

import torch

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]


class DeviceNormalize:
    """uint8 NCHW batch (on any device) -> float32 normalised model input on the same device."""

    def __init__(self, stats: Stats, channels_last: bool = False) -> None:
        mean, std = stats
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.channels_last = channels_last
        self._on: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        if batch.dtype != torch.uint8:
            raise TypeError(f"DeviceNormalize expects the loader's uint8 batches, got {batch.dtype}")
        if batch.device not in self._on:
            self._on[batch.device] = (self.mean.to(batch.device), self.std.to(batch.device))
        mean, std = self._on[batch.device]
        out = (batch.float() - mean) / std
        return out.contiguous(memory_format=torch.channels_last) if self.channels_last else out


def channels_last_helps(device: torch.device | str) -> bool:
    """channels_last where it pays: CUDA convolutions (tensor cores under autocast); on CPUs it is
    not reliably faster, so batches stay contiguous there."""
    return torch.device(device).type == "cuda"
