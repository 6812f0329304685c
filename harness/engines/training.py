"""The recipe's loss, optimizer and learning-rate schedule: one definition for every engine (and for
the plain reference loop and the throughput probe, so that they train what the engines train).

Each is a built-in name or an extension by import path (`harness.extensions`), so a spec stays JSON
and a DDP child resolves the same object:

- loss: `cross_entropy`, or `package.module:attribute` called with no arguments, giving a callable
  `(logits (N, C), targets (N,)) -> mean loss (scalar)`; e.g. `torch.nn:CrossEntropyLoss`.
- optimizer: `adam`, `adamw`, `sgd` (momentum 0.9), or `package.module:attribute` called as
  `(params, lr=..., weight_decay=...) -> torch.optim.Optimizer`; e.g. `torch.optim:RMSprop`.
- scheduler: the learning rate of each epoch is the recipe's lr times a factor of the epoch, set
  when the epoch starts, so a resumed run continues the same curve. Epochs count from 0 here.
  `none`: 1. `cosine`: after `warmup_epochs`, half a cosine from 1 down, which reaches 0 one epoch
  after the last (Loshchilov & Hutter 2017, SGDR, without restarts; FastViT trains with warm-up and
  cosine). `step`: after the warm-up, `gamma` every `step_size` epochs (torch's StepLR). The warm-up
  of either is linear, `(epoch + 1) / (warmup_epochs + 1)`. `package.module:attribute` names a
  function `(epoch, epochs) -> factor`, as torch's LambdaLR takes (its warm-up is its own).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F

from harness.errors import ExtensionError
from harness.extensions import call, is_import_path, resolve_callable
from harness.spec import Recipe

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
INITIAL_LR = "initial_lr"  # a param group's lr before any schedule, as torch's schedulers keep it


def loss_for(recipe: Recipe, device: torch.device | None = None) -> LossFunction:
    """The recipe's loss: `(logits, targets) -> the batch's mean loss`; one of one's own that is a module (which may
    hold tensors: class weights) moved to `device` when given (the engines move it with the model)."""
    if not is_import_path(recipe.loss):
        return F.cross_entropy
    loss = call(recipe.loss, "loss", "loss() -> (logits, targets) -> mean loss")
    if not callable(loss):
        raise ExtensionError(f"loss {recipe.loss!r} returned a {type(loss).__name__}; it must return a loss to call")
    if isinstance(loss, torch.nn.Module) and device is not None:
        loss.to(device)
    return loss


def optimizer_for(recipe: Recipe, params: Iterable[Any], *, fused: bool = False) -> torch.optim.Optimizer:
    """The recipe's optimizer. `fused` (--fused-optimizer) picks torch's single-kernel implementation
    of a built-in one: the same update, fewer kernel launches per step."""
    if is_import_path(recipe.optimizer):
        optimizer = call(
            recipe.optimizer,
            "optimizer",
            "optimizer(params, lr=, weight_decay=)",
            params,
            lr=recipe.lr,
            weight_decay=recipe.weight_decay,
        )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ExtensionError(
                f"optimizer {recipe.optimizer!r} returned a {type(optimizer).__name__}, not a torch.optim.Optimizer"
            )
        return optimizer
    kind = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(recipe.optimizer)
    implementation = {"fused": True} if fused else {}
    if kind is not None:
        return kind(params, lr=recipe.lr, weight_decay=recipe.weight_decay, **implementation)
    return torch.optim.SGD(params, lr=recipe.lr, weight_decay=recipe.weight_decay, momentum=0.9, **implementation)


def lr_factor(recipe: Recipe, epoch: int) -> float:
    """The factor on the recipe's lr in `epoch` (0-based) of `recipe.epochs` (module docstring)."""
    if is_import_path(recipe.scheduler):
        factor = float(call(recipe.scheduler, "scheduler", "scheduler(epoch, epochs) -> factor", epoch, recipe.epochs))
        if not math.isfinite(factor) or factor < 0:
            raise ExtensionError(
                f"scheduler {recipe.scheduler!r} gave the factor {factor} for epoch {epoch}; give 0 or more"
            )
        return factor
    warmup = recipe.warmup_epochs
    if recipe.scheduler == "none":
        return 1.0
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if recipe.scheduler == "cosine":
        return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(1, recipe.epochs - warmup)))
    return recipe.gamma ** ((epoch - warmup) // recipe.step_size)  # step


def set_epoch_lr(optimizer: torch.optim.Optimizer, recipe: Recipe, epoch: int) -> None:
    """Each param group's lr for `epoch` (0-based): its initial lr times `lr_factor` (a group's own
    initial lr is kept, as torch's schedulers keep it, and travels in the optimizer's checkpoint)."""
    factor = lr_factor(recipe, epoch)
    for group in optimizer.param_groups:
        group.setdefault(INITIAL_LR, group["lr"])
        group["lr"] = group[INITIAL_LR] * factor


def check_recipe_extensions(recipe: Recipe, where: str) -> None:
    """Every import path the recipe names resolves to something callable; a wrong one is a one-line
    error naming `where` the recipe came from, before any data is read."""
    for field, what in (("loss", "loss"), ("optimizer", "optimizer"), ("scheduler", "scheduler")):
        path = getattr(recipe, field)
        if is_import_path(path):
            try:
                resolve_callable(path, what)
            except ExtensionError as error:
                raise ExtensionError(f"{where}: {error}") from None
