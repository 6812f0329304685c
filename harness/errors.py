"""Every error the harness reports to its user, in one torch-free module.

Each derives from `HarnessError`, whose message is one line that names the problem and the fix;
the command line prints it as `error: ...` and exits 2, the pytest layer as a usage error. The
second base keeps each error catchable as the built-in kind it is (a bad value is a ValueError, a
failed write an OSError, a failed run a RuntimeError).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class HarnessError(Exception):
    """A fault the harness found and explained in one line (problem and fix), never a crash."""


# --- what was asked: options, settings, specs -------------------------------------------------------


class SpecError(HarnessError, ValueError):
    """A spec field holds a value the harness cannot run; the message names the field and the fix."""


class SettingsError(HarnessError, ValueError):
    """A TRAINBENCH_* variable or a settings value the harness cannot use; the message names it."""


class UnsupportedCase(HarnessError, RuntimeError):
    """This machine cannot run the case as specified (never silently run another way)."""


class PreflightError(HarnessError, ValueError):
    """The run would fail or lose work later; the message names the problem and the fix."""


# --- what is on disk or on the network ----------------------------------------------------------------


class DataError(HarnessError, ValueError):
    """The data on disk cannot be used as given; the message names the problem and the fix."""


class ModelError(HarnessError, ValueError):
    """An unknown model name or unusable weights; the message names the fix."""


class ExtensionError(HarnessError, ValueError):
    """An extension named by import path (`package.module:attribute`) that cannot be resolved or used."""


class WeightsNotFound(ModelError):
    """No pretrained weights where the harness looked; the message lists every place."""


class CheckpointError(HarnessError, OSError):
    """A checkpoint could not be written (a full disk, a vanished folder); the message says where."""


class ResumeError(HarnessError, ValueError):
    """A checkpoint cannot continue this run; the message says why."""


class BucketURLError(HarnessError, ValueError):
    """The bucket option is not a gs:// URL."""


class BucketAccessError(HarnessError, ValueError):
    """The bucket cannot be written before training starts (credentials, name, permission, network)."""


class RecordError(HarnessError, ValueError):
    """A result.json that cannot be read or written as a record; the message names the file."""


# --- running and gating ---------------------------------------------------------------------------------


class RendezvousError(HarnessError, RuntimeError):
    """The DDP processes did not all join in time (a node not started, a wrong address or port)."""


class LaunchError(HarnessError, RuntimeError):
    """A child run failed; the message carries the end of its output."""


class GateError(HarnessError, ValueError):
    """The gate cannot decide: a side is empty, unreadable or of the wrong kind, or nothing is in common."""


class NightlyError(HarnessError, ValueError):
    """Bad input to the nightly, found before any case runs."""


class ClusterError(HarnessError, RuntimeError):
    """Ray is missing, or the cluster cannot be reached."""


class BisectError(HarnessError, ValueError):
    """Bad input to bisect (a revision, the range, the case), or a revision whose environment cannot be built."""


def one_line(error: Exception, message: Callable[[str, Any, str | None], str], fields: Mapping[str, Any]) -> str:
    """The first problem of a pydantic `ValidationError` in one line: a validator's own message as it
    is, else `message(field, value, words)`, where words are the field's description in `fields`
    (pydantic's `model_fields`), or None for a field the model does not have."""
    first = error.errors()[0]  # type: ignore[attr-defined]
    if first["type"] == "value_error" and str(first["ctx"]["error"]) != "not digits":
        return str(first["ctx"]["error"])
    if not first["loc"]:  # the whole input: not JSON, or not a mapping
        found = first.get("input")
        return (
            first["msg"]
            if first["type"] == "json_invalid" or not isinstance(found, (list, str, int, float))
            else f"it holds a {type(found).__name__}; give a mapping of fields"
        )
    field = str(first["loc"][0])
    info = fields.get(field)
    words = None if info is None else info.description or first["msg"].lower()
    return message(field, first.get("input"), words)
