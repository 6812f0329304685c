"""A run's distance to the limit, from its history and its case: achieved TFLOP/s, MFU against the
measured and the vendor's peak, and the energy of its training epochs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.efficiency.flops import Flops
from harness.efficiency.peak import Peak, vendor_peak
from harness.spec import BenchmarkSpec

JOULES_PER_KWH = 3.6e6


def achieved_tflops(flops: Flops, images_per_s: float | None) -> float | None:
    """Training TFLOP/s of all devices together: train FLOPs per image x images/s."""
    return flops.train_per_image * images_per_s / 1e12 if images_per_s else None


def peak_devices(spec: BenchmarkSpec, on_gpu: bool) -> int:
    """How many measured peaks the run had: one per GPU; on CPUs one per training process (a peak
    is measured at one process's threads, and the processes share the machine's cores)."""
    return spec.world_size if on_gpu else spec.processes


def mfu(achieved: float | None, spec: BenchmarkSpec, peak: Peak, gpu_name: str | None) -> dict[str, Any]:
    """Achieved TFLOP/s over the measured peak and over the vendor's dense peak (None: no datasheet
    figure, a CPU), with the peaks they divide by (per device, and how many devices)."""
    devices = peak_devices(spec, gpu_name is not None)
    vendor = vendor_peak(gpu_name, spec.precision)
    return {
        "measured": achieved / (peak.tflops * devices) if achieved is not None and peak.tflops else None,
        "vendor": achieved / (vendor[0] * devices) if achieved is not None and vendor else None,
        "peak_measured_tflops": peak.tflops,
        "peak_compute_type": peak.compute_type,
        "peak_measured_on": f"{peak.machine}, {peak.measured_on}",
        "peak_vendor_tflops": vendor[0] if vendor else None,
        "peak_vendor_source": vendor[1] if vendor else None,
        "devices": devices,
    }


def energy_summary(history: Sequence[dict[str, float]]) -> dict[str, float | None] | None:
    """The training epochs' joules (validation included), kWh, joules per training image and mean
    watts; None when the history has no energy (no counter)."""
    rows = [row for row in history if "energy_j" in row]
    if not rows:
        return None
    joules = sum(row["energy_j"] for row in rows)
    images = sum(row["energy_j"] / row["j_per_image"] for row in rows if row.get("j_per_image"))
    seconds = sum(row["energy_j"] / row["watts"] for row in rows if row.get("watts"))
    return {
        "joules": joules,
        "kwh": joules / JOULES_PER_KWH,
        "joules_per_image": joules / images if images else None,
        "mean_watts": joules / seconds if seconds else None,
    }
