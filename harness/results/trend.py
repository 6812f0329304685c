"""Trends over the last nights: per case, test accuracy and steady-state images/s night by night,
with the baseline marked, so a slow drift shows before it crosses a tolerance; and for every gated
metric the records have (accuracy, loss, steady images/s, J/image), its sustained steps over the
nights (`changepoints`), which the figures mark and regression.md names.

A night is a folder with a `records/` folder (what `nightly` writes), named so that names sort by
date (`2026-11-22`). Cases are matched as the gate matches them (case id and recipe fingerprint);
each night's point is the mean over that night's seeds of the case.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import GateError
from harness.results.changepoints import ChangePoint, change_points, tonight
from harness.results.observations import Observations, observations

NIGHTS = 14
METRICS = ("test_acc", "steady_images_per_s")  # drawn
WATCHED = (
    "test_acc",
    "test_loss",
    "steady_images_per_s",
    "joules_per_image",
)  # searched for steps (where the records have them)


@dataclass(frozen=True)
class CaseTrend:
    case: str  # the gate's key: case id @ recipe fingerprint
    nights: tuple[str, ...]
    values: dict[str, tuple[float | None, ...]]  # metric -> one mean per night (None: the case did not run)
    baseline: dict[str, float]  # metric -> the baseline's mean, where the baseline has the case
    series: dict[str, tuple[float | None, ...]] = field(default_factory=dict)  # every WATCHED metric's nightly means
    steps: dict[str, tuple[ChangePoint, ...]] = field(
        default_factory=dict
    )  # metric -> its sustained steps (changepoints)

    def tonight(self, metric: str) -> str:
        """What tonight is for `metric`: a step's continuation, a single-night outlier, or noise."""
        return tonight(self.nights, self.series.get(metric, ()))


def _means(found: Observations, case: str, metrics: tuple[str, ...] = METRICS) -> dict[str, float]:
    """Per metric, the mean over the night's runs that have it as a number
    (a diverged seed is left out, as in the tables)."""
    runs = found.get(case, [])
    values = {
        metric: [r.metrics[metric] for r in runs if math.isfinite(r.metrics.get(metric, math.nan))]
        for metric in metrics
    }
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
    names = tuple(f.name for f in folders)
    for case in sorted(per_night[-1]):
        means = [_means(found, case, WATCHED) for found in per_night]
        series = {
            metric: tuple(m.get(metric) for m in means)
            for metric in WATCHED
            if any(m.get(metric) is not None for m in means)
        }
        values = {metric: series.get(metric, (None,) * len(names)) for metric in METRICS}
        steps = {metric: tuple(change_points(names, values)) for metric, values in series.items()}
        trends.append(CaseTrend(case, names, values, _means(base, case), series, {m: s for m, s in steps.items() if s}))
    return trends
