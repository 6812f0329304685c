"""Training engines behind one interface (`Engine.fit(job) -> EngineOutput`), looked up by name.

Imports are lazy so that a Poutyne run never pays for importing Lightning and vice versa.
"""

from __future__ import annotations

from harness.engines.base import Engine, EngineOutput, TrainingJob

__all__ = ["Engine", "EngineOutput", "TrainingJob", "get"]


def get(name: str) -> Engine:
    if name == "poutyne":
        from harness.engines.poutyne_engine import PoutyneEngine

        return PoutyneEngine()
    if name == "lightning":
        from harness.engines.lightning_engine import LightningEngine

        return LightningEngine()
    raise ValueError(f"unknown engine {name!r}; choose poutyne or lightning")
