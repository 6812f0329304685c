"""Energy drawn by the training devices, read at epoch boundaries.

On NVIDIA GPUs: NVML's total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, millijoules since
the driver loaded; Volta and later), summed over the node's first `devices` GPUs, read by rank 0
(the `nvidia-ml-py` package, imported only on GPU machines). It counts the whole board (memory,
fans, idle power), the figure an electricity bill and MLPerf Power count, not the kernels alone.

On CPUs there is no figure: package counters (RAPL, /sys/class/powercap) count every process on the
socket, not the run, and are readable by root alone where a kernel exposes them at all (this
repository's CI machines do not). A record says `energy: null` with the reason instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from harness.hardware import Hardware

CPU_REASON = (
    "no energy counter for a CPU run: NVML measures GPUs, and RAPL package counters (root only, where the kernel has"
    " them) count every process on the socket"
)

EnergyCounter = Callable[[], float]  # joules since an arbitrary origin; differences are what count


def counter(hardware: Hardware, devices: int) -> tuple[EnergyCounter | None, str | None]:
    """A counter of the first `devices` GPUs' joules and None, or None and why there is none."""
    if not hardware.gpus:
        return None, CPU_REASON
    try:
        nvml = importlib.import_module("pynvml")
        nvml.nvmlInit()
        handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(min(devices, hardware.gpus))]
        for handle in handles:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)  # older GPUs raise NotSupported here, not mid-run
    except ModuleNotFoundError:
        return (
            None,
            "nvidia-ml-py is not installed (pip install 'trainbench[gpu]'), so NVML's energy counter cannot be read",
        )
    except Exception as error:  # NVMLError: no driver access, a GPU older than Volta
        return None, f"NVML's energy counter cannot be read here ({error})"
    return (lambda: sum(nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in handles) / 1000.0), None
