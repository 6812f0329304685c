"""A metric of this project's own: a torchmetrics Metric, built by trainbench as `BalancedAccuracy(num_classes)`."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class BalancedAccuracy(Metric):
    """The mean over the classes present of each class's recall, from logits (N, C) and targets (N,): in [0, 1].
    Its states are sums, so the processes of a DDP run add theirs (dist_reduce_fx="sum")."""

    higher_is_better = True  # the direction trainbench's gate reads
    full_state_update = False
    hits: torch.Tensor
    seen: torch.Tensor

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.add_state("hits", torch.zeros(num_classes), dist_reduce_fx="sum")
        self.add_state("seen", torch.zeros(num_classes), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        right = (logits.argmax(dim=1) == target).float()
        self.hits += torch.zeros_like(self.hits).index_add_(0, target, right)
        self.seen += torch.bincount(target, minlength=self.seen.numel()).float()

    def compute(self) -> torch.Tensor:
        present = self.seen > 0
        return (self.hits[present] / self.seen[present]).mean()
