"""What each engine can do, torch-free, so that the spec, the launcher, the hardware checks and the
benchmark matrix read one table instead of branching on engine names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PRECISIONS: tuple[str, ...] = ("32-true", "16-mixed", "bf16-mixed")  # Lightning's names, which both engines take


@dataclass(frozen=True)
class EngineSupport:
    """What one engine can run: how it spreads over several devices, whether over nodes, which precisions."""

    library: str
    several_devices_as: Literal[
        "processes", "device_list"
    ]  # one DDP process per device, or one process given a list of GPUs
    several_nodes: bool
    precisions: tuple[str, ...] = PRECISIONS

    def processes(self, world_size: int) -> int:
        """Training processes for `world_size` devices in all."""
        return world_size if self.several_devices_as == "processes" else 1


SUPPORT: dict[str, EngineSupport] = {
    "poutyne": EngineSupport("Poutyne", several_devices_as="device_list", several_nodes=False),
    "lightning": EngineSupport("Lightning", several_devices_as="processes", several_nodes=True),
}
ENGINES: tuple[str, ...] = tuple(SUPPORT)
