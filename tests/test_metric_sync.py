"""Metrics of a multi-process run are global: two real gloo processes, each with its own batches."""

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.functional import one_hot

from harness.artifacts.emulator import free_port
from harness.metrics import ClassificationMetrics
from tests.reference_metrics import reference_metrics, scripted_batches

pytestmark = pytest.mark.slow  # every test here trains or starts a process (make test-fast leaves them out)

TARGET = torch.tensor([0, 1, 2, 3])
# rank 0 predicts every image right (local acc 1.0), rank 1 one of four (local acc 0.25): global 5/8
PREDICTED = {0: TARGET, 1: torch.tensor([0, 0, 0, 0])}


def _accuracy(predicted: torch.Tensor) -> float:
    metrics = ClassificationMetrics(4)
    metrics.update(one_hot(predicted, 4).float(), TARGET)
    return float(metrics.compute()["acc"])


def _scripted(rank: int) -> dict[str, float]:
    """Each rank's own scripted batches, the first one all correct at top-1; computed globally."""
    logits, target = scripted_batches(8, batches=3, batch_size=8, seed=rank)
    metrics = ClassificationMetrics(8)
    for start in range(0, len(target), 8):
        metrics.update(torch.from_numpy(logits[start : start + 8]), torch.from_numpy(target[start : start + 8]))
    return {k: float(v) for k, v in metrics.compute().items()}


def _worker(rank: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    out.put((rank, (_accuracy(PREDICTED[rank]), _scripted(rank))))
    dist.destroy_process_group()


@pytest.mark.heavy
def test_global_metrics_in_two_processes():
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(rank, port, out)) for rank in range(2)]
    for p in procs:
        p.start()
    synced = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert {rank: acc for rank, (acc, _) in synced.items()} == {0: 5 / 8, 1: 5 / 8}
    both = [scripted_batches(8, batches=3, batch_size=8, seed=rank) for rank in range(2)]
    expected = reference_metrics(np.concatenate([b[0] for b in both]), np.concatenate([b[1] for b in both]), 8)
    expected.pop("loss")
    for _, metrics in synced.values():
        assert metrics.pop("images") == 2 * 3 * 8  # both ranks' images, each once
        assert metrics == pytest.approx(expected, abs=1e-6)
    assert (_accuracy(PREDICTED[0]), _accuracy(PREDICTED[1])) == (1.0, 0.25)  # what each rank alone would say
