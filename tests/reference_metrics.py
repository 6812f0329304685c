"""The metrics computed by hand with numpy, independently of torchmetrics, as the tests' yardstick."""

from __future__ import annotations

import numpy as np


def reference_metrics(logits: np.ndarray, target: np.ndarray, num_classes: int) -> dict[str, float]:
    """loss (mean cross-entropy), acc, macro F1 (over classes seen in target or prediction), top-3, top-5."""
    logits, target = np.asarray(logits, dtype=np.float64), np.asarray(target)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    predicted = logits.argmax(axis=1)
    out = {"loss": float(-log_probs[np.arange(len(target)), target].mean()), "acc": float((predicted == target).mean())}
    scores = []
    for c in range(num_classes):
        tp = np.sum((predicted == c) & (target == c))
        fp = np.sum((predicted == c) & (target != c))
        fn = np.sum((predicted != c) & (target == c))
        if tp + fp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    out["f1"] = float(np.mean(scores))
    rank = (logits > logits[np.arange(len(target)), target][:, None]).sum(axis=1)  # classes scored above the target
    for k in (3, 5):
        if k < num_classes:
            out[f"top{k}"] = float((rank < k).mean())
    return out


def scripted_batches(num_classes: int, batches: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and targets whose first batch is all correct at top-1 and whose later batches are random.

    An all-correct first batch makes top-1, top-3 and top-5 states equal after one update: the case
    in which torchmetrics' compute groups merged them and reported accuracy as top-k.
    """
    rng = np.random.default_rng(seed)
    target = rng.integers(0, num_classes, size=batches * batch_size)
    logits = rng.normal(size=(len(target), num_classes)).astype(np.float32)
    first = np.arange(batch_size)
    logits[first, target[first]] = logits[first].max(axis=1) + 1.0
    return logits, target
