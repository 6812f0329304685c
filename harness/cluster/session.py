"""Ray, imported only where work spreads over machines (an optional dependency: `pip install
'trainbench[nightly]'`): joining a running cluster, or starting one on this machine, and its live nodes.
"""

from __future__ import annotations

import socket
from types import ModuleType

from harness.cluster.plan import Node
from harness.errors import ClusterError

CONNECT_TIMEOUT_S = 10.0


def ray_module() -> ModuleType:
    """Ray, or a ClusterError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "Ray is not installed, and the nightly and bisect --parallel run their cases as Ray tasks; pip install"
            " 'trainbench[nightly]' (or ray)"
        ) from None
    return ray


def _reachable(address: str) -> None:
    """A refused or silent HEAD:PORT is one line within seconds, not Ray's long retries."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(
            f"--address {address!r} is not HOST:PORT (the head's GCS port, 6379 by default, as `ray start --head`"
            " prints)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise ClusterError(
            f"no Ray cluster answers at {address} ({error}); start one with `ray start --head`, or drop --address (and"
            " RAY_ADDRESS) to run on this machine"
        ) from None


def connect(address: str) -> list[Node]:
    """Join the running cluster at `address`; return its live nodes."""
    ray = ray_module()
    _reachable(address)
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except Exception as error:  # a wrong or missing auth token, another Ray version, ...
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ClusterError(
            f"could not join the Ray cluster at {address}: {reason}; the nightly's Ray and Python must match the"
            " cluster's, with its token in RAY_AUTH_TOKEN if it uses one"
        ) from None
    return live_nodes()


def start_embedded(machine: Node) -> None:
    """Ray on this machine alone, with its CPUs and GPUs; it stops with `disconnect`."""
    ray_module().init(
        num_cpus=int(machine.cpus),
        num_gpus=int(machine.gpus),
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )


def disconnect() -> None:
    """Leave the cluster, if joined; an embedded Ray stops with its processes."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()


def live_nodes() -> list[Node]:
    ray = ray_module()
    return [
        Node(n["NodeID"][:8], n["NodeManagerAddress"], n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
        for n in ray.nodes()
        if n["Alive"]
    ]
