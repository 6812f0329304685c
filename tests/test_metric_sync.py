"""Metrics of a multi-process run are global: two real gloo processes with different local accuracy."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.functional import one_hot

from harness.artifacts.emulator import free_port
from harness.metrics import metric_collection

TARGET = torch.tensor([0, 1, 2, 3])
# rank 0 predicts every image right (local acc 1.0), rank 1 one of four (local acc 0.25): global 5/8
PREDICTED = {0: TARGET, 1: torch.tensor([0, 0, 0, 0])}


def _accuracy(predicted: torch.Tensor) -> float:
    metrics = metric_collection(4)
    metrics.update(one_hot(predicted, 4).float(), TARGET)
    return float(metrics.compute()["acc"])


def _worker(rank: int, port: int, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    out.put((rank, _accuracy(PREDICTED[rank])))
    dist.destroy_process_group()


def test_global_accuracy_differs_from_rank_local():
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
    assert synced == {0: 5 / 8, 1: 5 / 8}
    assert (_accuracy(PREDICTED[0]), _accuracy(PREDICTED[1])) == (1.0, 0.25)  # what each rank alone would say
