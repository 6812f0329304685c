"""Trends over the last nights: per case, test accuracy and steady-state images/s night by night,
with the baseline marked, so a slow drift shows before it crosses a tolerance.

A night is a folder with a `records/` folder (what `nightly` writes), named so that names sort by
date (`2026-11-22`). Cases are matched as the gate matches them (case id and recipe fingerprint);
each night's point is the mean over that night's seeds of the case.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from harness.errors import GateError
from harness.results.observations import Observations, observations

NIGHTS = 14
METRICS = ("test_acc", "steady_images_per_s")


@dataclass(frozen=True)
class CaseTrend:
    case: str  # the gate's key: case id @ recipe fingerprint
    nights: tuple[str, ...]
    values: dict[str, tuple[float | None, ...]]  # metric -> one mean per night (None: the case did not run)
    baseline: dict[str, float]  # metric -> the baseline's mean, where the baseline has the case


def _means(found: Observations, case: str) -> dict[str, float]:
    """Per metric, the mean over the night's runs that have it as a number (a diverged seed is left out, as in the tables)."""
    runs = found.get(case, [])
    values = {metric: [r.metrics[metric] for r in runs if math.isfinite(r.metrics.get(metric, math.nan))] for metric in METRICS}
    return {metric: statistics.fmean(v) for metric, v in values.items() if v}


def night_folders(root: Path, nights: int) -> list[Path]:
    """The last `nights` nights under `root`, oldest first."""
    return sorted(d for d in Path(root).iterdir() if (d / "records").is_dir())[-nights:] if Path(root).is_dir() else []


def of_nights(root: Path, nights: int = NIGHTS, baseline: Path | None = None) -> list[CaseTrend]:
    """One trend per case of the newest night, over the last `nights` nights under `root`."""
    folders = night_folders(root, nights)
    if not folders:
        return []
    per_night = []
    for folder in folders:
        try:
            per_night.append(observations(folder / "records"))
        except GateError:  # an unreadable night is a gap in the line, not a failed report
            per_night.append({})
    base = observations(baseline) if baseline is not None else {}
    trends = []
    for case in sorted(per_night[-1]):
        means = [_means(found, case) for found in per_night]
        values = {metric: tuple(m.get(metric) for m in means) for metric in METRICS}
        trends.append(CaseTrend(case, tuple(f.name for f in folders), values, _means(base, case)))
    return trends
