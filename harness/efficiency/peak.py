"""The limit: the attainable dense matrix-multiply rate of this machine, measured once per (machine,
device, precision) and cached with its date, beside the vendors' dense peaks of common data-centre
GPUs.

The measurement is torch.matmul of two square matrices in the precision's compute type, timed over
repeats after a warm-up, the best block kept: on a GPU fp32 runs as TF32 (the type cuDNN already
uses for convolutions under 32-true, so the peak is the one the training can reach; the record says
so), bf16 and fp16 on the tensor cores; on a CPU the same GEMMs through torch's CPU BLAS (oneDNN),
at this process's threads. A model's MFU (model FLOPs utilisation) is its achieved TFLOP/s over a
peak; against the measured peak it says how far the training is from what this machine's GEMMs
reach, against the vendor's how far from the datasheet.
"""

from __future__ import annotations

import platform
import re
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import torch

from harness.efficiency.cache import json_cached

CACHE_FILE = "peaks.json"
COMPUTE_TYPES = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}

# Dense (no 2:4 sparsity) tensor-core peaks in TFLOP/s per GPU, SXM boards where there are several.
# Datasheets give the sparse figure for TF32/BF16/FP16 with a footnote; the dense one is half of it.
VENDOR_PEAKS: dict[str, tuple[dict[str, float], str]] = {
    "H200": (
        {"32-true": 494.7, "bf16-mixed": 989.4, "16-mixed": 989.4},
        "NVIDIA H200 Tensor Core GPU datasheet (2024): TF32 989, BF16/FP16 1979 TFLOPS with sparsity",
    ),
    "H100": (
        {"32-true": 494.7, "bf16-mixed": 989.4, "16-mixed": 989.4},
        "NVIDIA H100 Tensor Core GPU datasheet (SXM, 2023): TF32 989, BF16/FP16 1979 TFLOPS with sparsity",
    ),
    "A100": (
        {"32-true": 156.0, "bf16-mixed": 312.0, "16-mixed": 312.0},
        "NVIDIA A100 Tensor Core GPU datasheet (2021): TF32 156, BF16/FP16 312 TFLOPS dense",
    ),
    "L40S": (
        {"32-true": 183.0, "bf16-mixed": 362.05, "16-mixed": 362.05},
        "NVIDIA L40S datasheet (2023): TF32 366, BF16/FP16 733 TFLOPS with sparsity",
    ),
    "L4": (
        {"32-true": 60.0, "bf16-mixed": 121.0, "16-mixed": 121.0},
        "NVIDIA L4 Tensor Core GPU datasheet (2023): TF32 120, BF16/FP16 242 TFLOPS with sparsity",
    ),
}


@dataclass(frozen=True)
class Peak:
    """A measured peak: TFLOP/s of one device at one precision, how, on what and when."""

    tflops: float
    compute_type: str  # float32, tf32, bfloat16, float16
    machine: str
    size: int  # the square matrices' side
    measured_on: str  # ISO date

    def as_dict(self) -> dict:
        return asdict(self)


def machine_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model and the threads torch uses here."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), flags=re.M)
        model = found.group(1).strip() if found else model
    except OSError:
        pass
    return f"{model} ({torch.get_num_threads()} threads)"


def vendor_peak(gpu_name: str | None, precision: str) -> tuple[float, str] | None:
    """The datasheet's dense peak of `gpu_name` at `precision` and its source,
    or None (a CPU, a GPU not in the table)."""
    for key, (peaks, source) in VENDOR_PEAKS.items():  # L40S before L4
        if gpu_name and re.search(rf"\b{key}\b", gpu_name) and precision in peaks:
            return peaks[precision], source
    return None


def measure(device: torch.device, precision: str, seconds: float = 0.3) -> Peak:
    """Time `size` x `size` matmuls at `precision`'s compute type for about `seconds` per block, three
    blocks after a warm-up; the best block's rate."""
    dtype = COMPUTE_TYPES[precision]
    on_gpu = device.type == "cuda"
    size, check_every = (
        (8192, 10) if on_gpu else (1024, 1)
    )  # a GPU queues matmuls: synchronise every 10th to read the clock
    tf32 = on_gpu and dtype == torch.float32
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or previous
    try:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        rates = []
        for block in range(4):
            repeats, start = 0, time.perf_counter()
            while True:
                torch.matmul(a, b)
                repeats += 1
                if repeats % check_every == 0:
                    if on_gpu:
                        torch.cuda.synchronize(device)
                    if time.perf_counter() - start >= seconds:
                        break
            if block:  # the first block warms up (kernel choice, clocks)
                rates.append(2 * size**3 * repeats / (time.perf_counter() - start) / 1e12)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    kind = "tf32" if tf32 else str(dtype).removeprefix("torch.")
    return Peak(round(max(rates), 4), kind, machine_name(device), size, date.today().isoformat())


def cached(device: torch.device, precision: str, cache_dir: Path) -> Peak:
    """`measure`, once per machine, device type and precision, kept in `cache_dir/peaks.json` with its date."""
    key = f"{machine_name(device)}|{device.type}|{precision}"
    return json_cached(
        Path(cache_dir) / CACHE_FILE, key, lambda: measure(device, precision).as_dict(), lambda raw: Peak(**raw)
    )
