"""Engines by name. Imports are lazy, so that a Poutyne run never pays for importing Lightning and
vice versa."""

from __future__ import annotations

from harness.capabilities import ENGINES
from harness.engines.base import Engine


def get(name: str) -> Engine:
    if name == "poutyne":
        from harness.engines.poutyne_engine import PoutyneEngine

        return PoutyneEngine()
    if name == "lightning":
        from harness.engines.lightning_engine import LightningEngine

        return LightningEngine()
    raise ValueError(f"unknown engine {name!r}; choose {' or '.join(ENGINES)}")
