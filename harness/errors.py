"""Every error the harness reports to its user, in one torch-free module.

Each derives from `HarnessError`, whose message is one line that names the problem and the fix;
the command line prints it as `error: ...` and exits 2, the pytest layer as a usage error. The
second base keeps each error catchable as the built-in kind it is (a bad value is a ValueError, a
failed write an OSError, a failed run a RuntimeError).
"""

from __future__ import annotations


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
