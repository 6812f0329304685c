"""After a night whose speed regressed: a profile of each such case, linked from regression.md.

Each regressed case runs again for a few steps under `torch.profiler` (`harness.profile`) on the
driver's machine, from its record: the same spec, its dataset located from the record's data path,
its weights from the record's weights file. The trace and the top operators land in the night's
`profiles/<case>/`, and `regression.md` links them, so the first look at a slow night is one click.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.data import synthetic
from harness.errors import HarnessError
from harness.results.compare import Comparison
from harness.results.record import RunResult
from harness.settings import RunSettings, default_cache_dir
from harness.spec import BenchmarkSpec

SPEED = "steady_images_per_s"


def settings_for(record: RunResult, scratch: Path) -> RunSettings:
    """Settings that find the record's data and weights again: a Kvasir folder's parent, any other
    ImageFolder itself (generated datasets come from the cache), the weights file's folder."""
    spec, path = BenchmarkSpec.from_dict(record.spec), record.data.get("path")
    root = (
        None
        if spec.dataset in synthetic.DATASETS or not path
        else Path(path).parent
        if spec.dataset == "kvasir"
        else Path(path)
    )
    weights = record.weights.get("path") if isinstance(record.weights, dict) else None
    return RunSettings(
        results_dir=scratch,
        cache_dir=default_cache_dir(),
        data_root=root,
        weights_dir=Path(weights).parent if weights else None,
        wandb="off",
    )


def profile_regressed(result: Comparison, records: list[RunResult], out: Path) -> list[str]:
    """Profile every case whose steady images/s regressed; the lines regression.md adds (none without one)."""
    slow = sorted({v.case for v in result.regressions if v.metric == SPEED})
    if not slow:
        return []
    # torch and the engines: only on a night that needs them
    from harness import profile

    lines = []
    for case in slow:
        record = next((r for r in records if r.gate_key == case and r.ok), None)
        if record is None:
            lines.append(f"- {case}: no finished record of tonight's to profile")
            continue
        folder = out / "profiles" / record.case_id
        try:
            with tempfile.TemporaryDirectory(prefix="trainbench-nightly-profile-") as scratch:
                found = profile.run(BenchmarkSpec.from_dict(record.spec), settings_for(record, Path(scratch)), folder)
        except HarnessError as error:
            lines.append(f"- {case}: not profiled ({error})")
            continue
        top = ", ".join(f"`{o.name}` {o.share:.0%}" for o in found.operators[:3])
        relative = folder.relative_to(out).as_posix()
        lines.append(
            f"- {case}: [trace]({relative}/{profile.TRACE_FILE}) (open in https://ui.perfetto.dev), [top"
            f" operators]({relative}/{profile.OPS_FILE}): {top}"
        )
    return ["", "", "## Profiles of the cases whose speed regressed", "", *lines] if lines else []
