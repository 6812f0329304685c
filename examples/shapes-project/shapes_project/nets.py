"""A model of this project's own: trainbench builds it as `tiny_convnet(num_classes)`."""

from __future__ import annotations

from torch import nn


def tiny_convnet(num_classes: int) -> nn.Module:
    """Three conv blocks and a linear head: input (N, 3, H, W), logits (N, num_classes)."""

    def block(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(), nn.MaxPool2d(2)
        )

    return nn.Sequential(
        block(3, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)
    )


# The input normalisation trainbench applies on the device (without these, ImageNet's): the shapes' pixels are
# spread around mid-grey
tiny_convnet.mean = (0.5, 0.5, 0.5)  # type: ignore[attr-defined]
tiny_convnet.std = (0.25, 0.25, 0.25)  # type: ignore[attr-defined]
