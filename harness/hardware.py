"""What this machine can run: the rules that turn the full matrix into cases and skip reasons.

A case that cannot run here is skipped with the reason, never silently run in another precision.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.capabilities import SUPPORT

DEVICE_COUNTS: tuple[int, ...] = (1, 2, 4, 8)
MAX_LOADER_WORKERS = 16  # beyond this, more workers add memory and start-up time, not speed


@dataclass(frozen=True)
class Hardware:
    gpus: int
    gpu_name: str | None
    gpu_bf16: bool
    cpu_cores: int
    cpu_bf16: bool = False

    @property
    def accelerator(self) -> str:
        return "gpu" if self.gpus else "cpu"


@cache
def detect() -> Hardware:
    import torch  # here, not at import: what only plans or refuses (the pytest layer, nightly) needs no torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return Hardware(
        gpus=gpus,
        gpu_name=torch.cuda.get_device_name(0) if gpus else None,
        gpu_bf16=bool(gpus) and torch.cuda.is_bf16_supported(),
        cpu_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        cpu_bf16=_cpu_has_native_bf16(),
    )


def loader_workers(processes_per_node: int, hw: Hardware | None = None) -> int:
    """DataLoader workers per training process. With GPUs: the cores this machine gives each
    process (a recipe's published count belongs to its author's machine, 2 on Kaggle, so it is only
    recorded). Training on CPUs: none, because the training's own threads already use every core and
    workers only take cores from them (measured on 2 cores: baselines/cpu-2core-avx512/NOTES.md, loader
    workers on CPUs).
    """
    hw = hw or detect()
    return max(1, min(MAX_LOADER_WORKERS, hw.cpu_cores // max(1, processes_per_node))) if hw.gpus else 0


def machine_cores(hw: Hardware | None = None) -> int:
    """This machine's cores, at most MAX_LOADER_WORKERS: processes for work that has the machine to
    itself (the decode pass before training, the loader measured alone by `throughput`)."""
    return max(1, min(MAX_LOADER_WORKERS, (hw or detect()).cpu_cores))


def _cpu_has_native_bf16() -> bool:
    """avx512_bf16 or AMX: without them, CPU bf16 autocast is emulated (7-12x slower, measured)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def skip_reason(
    engine: str, precision: str, devices: int, hw: Hardware, num_nodes: int = 1, sync_batchnorm: bool = False
) -> str | None:
    """Why (engine, precision, devices) cannot run on `hw`, or None when it can."""
    if sync_batchnorm and not hw.gpus and devices * num_nodes > 1:
        return (
            "SyncBatchNorm synchronises only CUDA tensors (torch raises on CPU processes); drop --sync-batchnorm on"
            " this machine"
        )
    if precision == "16-mixed" and not hw.gpus:
        return "16-mixed needs a CUDA GPU (fp16 autocast with loss scaling); this machine has none"
    if precision == "bf16-mixed" and hw.gpus and not hw.gpu_bf16:
        return f"bf16-mixed needs a GPU with bf16 support; {hw.gpu_name} has none"
    if hw.gpus:
        if devices > hw.gpus:
            return f"needs {devices} GPUs; this machine has {hw.gpus}"
        return None
    if SUPPORT[engine].several_devices_as == "device_list" and devices > 1:
        return (
            f"{SUPPORT[engine].library} runs several devices only as a list of GPUs (one process); this machine has"
            " no GPU"
        )
    processes = devices * num_nodes
    if processes > hw.cpu_cores:
        return f"{processes} CPU processes need {processes} cores; this machine has {hw.cpu_cores}"
    return None


def benchmark_skip_reason(engine: str, precision: str, devices: int, hw: Hardware, num_nodes: int = 1) -> str | None:
    """Why a case is not worth benchmarking here: it cannot run, or it would only time an emulation.

    Runs themselves (CLI, tests) only refuse what cannot run; the benchmark matrix also leaves out
    bf16 on a CPU without bf16 units, where it measures the emulation, not the recipe.
    """
    reason = skip_reason(engine, precision, devices, hw, num_nodes)
    if reason is None and precision == "bf16-mixed" and not hw.gpus and not hw.cpu_bf16:
        reason = (
            "this CPU has no bf16 units (avx512_bf16/AMX): bf16 autocast is emulated, 7-12x slower than fp32; "
            "run it anyway with `trainbench run --precision bf16-mixed` (the test suite does, on tiny models)"
        )
    return reason
