"""Every run is a wandb run: project, group = benchmark, name = run id, config = spec, tags.

Fed from the engine-neutral history rows, so a Poutyne run and a Lightning run of the same spec
produce the same keys (the engines' own wandb loggers name metrics differently). Mode `auto` is
`online` when WANDB_API_KEY is set, else `offline` (runs land in `<results>/wandb/offline-run-*`,
upload them later with `wandb sync`), and `off` when wandb is not installed. wandb failing never
fails the run: it is printed and the run goes on untracked.

Before training, a run that would go online asks the wandb host (WANDB_BASE_URL, else api.wandb.ai)
for any HTTP answer within 3 s (`settle`): none, and `auto` tracks offline, saying so, where wandb
itself would wait about 90 s and then run untracked; `online` is refused in one line.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import PreflightError
from harness.settings import RunSettings, WandbMode
from harness.spec import BenchmarkSpec

if TYPE_CHECKING:  # an optional dependency, imported when a run is tracked
    import wandb

WANDB_HOST = "https://api.wandb.ai"  # wandb's own default for WANDB_BASE_URL
ANSWER_TIMEOUT_S = 3.0
ResolvedMode = Literal["online", "offline", "off"]  # a WandbMode with `auto` decided


def installed() -> bool:
    """wandb is an optional dependency (`pip install 'trainbench[wandb]'`), imported only when a run is tracked."""
    return importlib.util.find_spec("wandb") is not None


def resolve_mode(mode: WandbMode) -> ResolvedMode:
    """`auto`: online with WANDB_API_KEY, else offline; off when wandb is not installed (the mode
    itself was validated with the settings, `settings.WandbMode`)."""
    if mode == "auto":
        if not installed():
            return "off"
        return "online" if os.environ.get("WANDB_API_KEY") else "offline"
    return mode


def wandb_host() -> str:
    return os.environ.get("WANDB_BASE_URL") or WANDB_HOST


_answered: set[str] = set()  # hosts that answered in this process: a session's later runs do not ask again


def no_answer(url: str, timeout_s: float = ANSWER_TIMEOUT_S) -> str | None:
    """Why `url` gave no HTTP answer within `timeout_s` (any status is an answer), or None. Bounded as a
    whole, name lookup included: the question runs in a thread that is not waited for past the limit.
    An answer is remembered for the process; no answer is not (a blip at a session's first run would
    otherwise send every later run offline)."""
    if url in _answered:
        return None
    outcome: list[str | None] = []

    def ask() -> None:
        try:
            urllib.request.urlopen(url, timeout=timeout_s).close()
            outcome.append(None)
        except urllib.error.HTTPError:  # a status, so the host is there
            outcome.append(None)
        except (urllib.error.URLError, OSError, ValueError) as error:
            outcome.append(str(getattr(error, "reason", error)))

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout_s)
    problem = outcome[0] if outcome else f"no answer within {timeout_s:g} s"
    if problem is None:
        _answered.add(url)
    return problem


def settle(settings: RunSettings) -> RunSettings:
    """`settings` with the wandb mode this run uses (`resolve_mode`), once the host answered where it
    goes online: `auto` falls back to offline with one line, `online` is a PreflightError."""
    mode = resolve_mode(settings.wandb)
    if mode == "online":
        host = wandb_host()
        problem = no_answer(host)
        if problem is not None and settings.wandb == "online":
            raise PreflightError(
                f"--wandb online: the wandb host {host} does not answer ({problem}); check the network or"
                " WANDB_BASE_URL, or give --wandb offline (or auto) and upload the run later with `wandb sync`"
            )
        if problem is not None:
            offline = settings.results_dir / "wandb"
            print(
                f"[trainbench] wandb: {host} does not answer ({problem}); tracking this run offline instead, "
                f"upload it later with `wandb sync {offline}/offline-run-*`",
                flush=True,
            )
            mode = "offline"
    return settings if mode == settings.wandb else settings.replace(wandb=mode)


def summary_of(history: list[dict[str, float]], test: dict[str, float]) -> dict[str, float]:
    """Best validation loss and accuracy over epochs, and the final test metrics."""
    summary: dict[str, float] = dict(test)
    losses = [row["val_loss"] for row in history if "val_loss" in row]
    accuracies = [row["val_acc"] for row in history if "val_acc" in row]
    if losses:
        summary["best_val_loss"] = min(losses)
    if accuracies:
        summary["best_val_acc"] = max(accuracies)
    return summary


class WandbTracker:
    """A wandb run opened on the first epoch (rank 0 only), closed by `finish`."""

    def __init__(self, mode: WandbMode, project: str, spec: BenchmarkSpec, run_id: str, directory: Path) -> None:
        self.mode = resolve_mode(mode)
        self.project, self.spec, self.run_id, self.directory = project, spec, run_id, directory
        self.run: wandb.Run | None = None
        self.resume_id: str | None = None  # under --resume: the wandb run of the attempt this run continues
        self.error: str | None = None

    def _open(self) -> None:
        if self.run is not None or self.mode == "off" or self.error:
            return
        try:
            import wandb

            self.directory.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                project=self.project,
                group=self.spec.benchmark,
                name=self.run_id,
                config=self.spec.to_dict(),
                tags=[self.spec.engine, self.spec.precision, f"{self.spec.devices}dev", self.spec.weights],
                mode=self.mode,
                dir=str(self.directory),
                reinit="create_new",
                id=self.resume_id,
                resume=(
                    "allow" if self.resume_id else None
                ),  # the same wandb run goes on, not a second one of the same name
                settings=wandb.Settings(
                    silent=True
                ),  # its banners said nothing the run's start-up line does not (engines.progress.data_line)
            )
        except Exception as error:  # tracking must never fail training
            self.error = f"{type(error).__name__}: {error}"[:500]
            print(f"[trainbench] wandb unavailable, run continues untracked: {self.error}", flush=True)

    def log_epoch(self, row: dict[str, float]) -> None:
        self._open()
        if self.run is None:
            return
        try:
            self.run.log(
                {k: v for k, v in row.items() if k != "epoch"} | {"epoch": row["epoch"]}, step=int(row["epoch"])
            )
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"[:500]
            print(f"[trainbench] wandb log failed: {self.error}", flush=True)

    def finish(self, history: list[dict[str, float]], test: dict[str, float]) -> dict[str, Any]:
        """Write the summary, close the run; returns what the record should say about tracking."""
        if self.run is None:
            return {"mode": self.mode, "error": self.error} if self.error else {"mode": self.mode}
        info: dict[str, Any] = {"mode": self.mode, "id": self.run.id, "dir": str(Path(self.run.dir).parent)}
        try:
            self.run.summary.update(summary_of(history, test))
            self.run.finish()
        except Exception as error:
            info["error"] = f"{type(error).__name__}: {error}"[:500]
        return info
