"""Where a training step's time goes: a case run for a few batches under `torch.profiler`.

`profile` trains the case through its engine for `warmup + active` training batches (one epoch,
`limit_batches`; an epoch with fewer batches records fewer steps, and says so); the profiler's
schedule skips the warm-up batches (kernel choice, allocator growth, worker start-up) and records
the `active` ones. It writes a Chrome trace (`trace.json`, opens in Perfetto or chrome://tracing),
the top operators by self time on the device (self CPU time on a CPU run) with their share of all
recorded self time (`ops.md`), and the same as data (`profile.json`), which `--against` reads to
print the per-operator difference from an earlier profile. The `ProfilerStep*` row's self time is
each step's time outside every operator: Python, the engine's own per-batch work (hooks, logging,
metrics bookkeeping).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, schedule

from harness import runner
from harness.atomic import written_atomically
from harness.errors import PreflightError
from harness.hardware import detect
from harness.settings import RunSettings
from harness.spec import BenchmarkSpec

TOP = 25
PROFILE_FILE, TRACE_FILE, OPS_FILE = "profile.json", "trace.json", "ops.md"


@dataclass(frozen=True)
class Operator:
    name: str
    self_ms_per_step: float
    share: float  # of all recorded self time
    calls_per_step: float


@dataclass(frozen=True)
class Profile:
    case: str
    device: str
    steps: int
    time_kind: str  # "device" or "CPU": which self time the operators are ranked by
    ms_per_step: float  # all recorded self time per step
    operators: tuple[Operator, ...]

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> Profile:
        return cls(**{**raw, "operators": tuple(Operator(**o) for o in raw["operators"])})

    def markdown(self, top: int = TOP) -> str:
        lines = [
            f"### Top operators of {self.case} on {self.device}",
            "",
            f"{self.steps} profiled training steps; {self.time_kind} self time {self.ms_per_step:.2f} ms per step.",
            "",
            f"| operator | self {self.time_kind} ms/step | share | calls/step |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| `{o.name}` | {o.self_ms_per_step:.3f} | {o.share:.1%} | {o.calls_per_step:g} |"
            for o in self.operators[:top]
        ]
        return "\n".join(lines) + "\n"


# one per recorded step; its self time is the step's time outside every operator (Python, the engine's own work)
STEP = "ProfilerStep*"


def _operators(events, on_gpu: bool) -> tuple[list[Operator], float, str, int]:
    """Operators by self time per recorded step, the step's total, which time, and how many steps were recorded."""
    attribute = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    steps = next((e.count for e in events if e.key == STEP), 0) or 1
    times = [(e.key, getattr(e, attribute, 0.0) or 0.0, e.count) for e in events]
    total = sum(t for _, t, _ in times) or 1.0
    ranked = sorted((t for t in times if t[1] > 0), key=lambda t: -t[1])
    return (
        [Operator(name, t / 1000.0 / steps, t / total, count / steps) for name, t, count in ranked],
        total / 1000.0 / steps,
        "device" if on_gpu else "CPU",
        steps,
    )


def run(spec: BenchmarkSpec, settings: RunSettings, out: Path, warmup: int = 3, active: int = 5) -> Profile:
    """Profile `active` training steps of `spec` after `warmup` ones; writes trace.json,
    ops.md and profile.json into `out`."""
    if spec.processes > 1:
        raise PreflightError(
            "profile records one training process; give --devices 1 (each DDP process runs the same step)"
        )
    hw = detect()
    on_gpu = bool(hw.gpus)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="trainbench-profile-") as tmp:
        quiet = settings.quiet(results_dir=Path(tmp))
        with torch.profiler.profile(
            activities=activities, schedule=schedule(wait=0, warmup=warmup, active=active, repeat=1)
        ) as profiler:
            runner.run(
                spec.replace(limit_batches=warmup + active).with_recipe(epochs=1, warmup_epochs=0),
                quiet,
                run_id="profile",
                step_hook=profiler.step,
            )
    with written_atomically(out / TRACE_FILE) as tmp_trace:
        profiler.export_chrome_trace(str(tmp_trace))
    operators, ms_per_step, kind, steps = _operators(profiler.key_averages(), on_gpu)
    if steps < active:
        print(
            f"[trainbench] profile: {steps} of {active} steps recorded: the epoch has {warmup + steps} training"
            " batches; give fewer --warmup/--active steps, or a smaller --batch-size",
            flush=True,
        )
    result = Profile(spec.id, hw.gpu_name or f"CPU ({hw.cpu_cores} cores)", steps, kind, ms_per_step, tuple(operators))
    with written_atomically(out / PROFILE_FILE) as tmp_json:
        tmp_json.write_text(json.dumps(result.as_dict(), indent=2))
    with written_atomically(out / OPS_FILE) as tmp_ops:
        tmp_ops.write_text(result.markdown())
    return result


def load(folder: Path) -> Profile:
    """An earlier profile (its profile.json); a folder without one is a PreflightError."""
    try:
        return Profile.from_dict(json.loads((Path(folder) / PROFILE_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PreflightError(
            f"--against {folder} holds no readable {PROFILE_FILE} ({type(error).__name__}); give the --out folder of an"
            " earlier `harness profile`"
        ) from None


def difference(before: Profile, after: Profile, top: int = TOP) -> str:
    """Per operator, self ms per step before and after and the change, largest changes first."""
    old = {o.name: o.self_ms_per_step for o in before.operators}
    new = {o.name: o.self_ms_per_step for o in after.operators}
    names = sorted(set(old) | set(new), key=lambda n: -abs(new.get(n, 0.0) - old.get(n, 0.0)))[:top]
    lines = [
        (
            f"### {after.case} against {before.case}: {before.ms_per_step:.2f} -> {after.ms_per_step:.2f} ms per step"
            f" ({after.time_kind} self time)"
        ),
        "",
        "| operator | before ms/step | after ms/step | change |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{n}` | {old.get(n, 0.0):.3f} | {new.get(n, 0.0):.3f} | {new.get(n, 0.0) - old.get(n, 0.0):+.3f} |"
        for n in names
    ]
    return "\n".join(lines) + "\n"
