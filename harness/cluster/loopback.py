"""A real multi-node Ray cluster on 127.0.0.1, for the tests and for measuring the nightly here.

Each node is its own `ray start --block` process, with its own temporary folder (so nodes share
no scratch, as separate machines would; removed by `stop`), its own ports and the CPUs given. Killing a node kills
that process and all below it (raylet, workers and the cases they started), as losing the machine
would. `stop` ends every process this cluster started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.artifacts.emulator import free_port

NODE_IP = "127.0.0.2"  # loopback; Ray swaps 127.0.0.1 (and only it) for the outward interface's address
FAST_FAILURE_DETECTION = {  # a dead node is declared after about 3 s instead of Ray's 30 s default
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # Ray's floor is 75 MB; a case's returned files are small


class LoopbackCluster:
    def __init__(
        self,
        root: Path,
        nodes: int = 2,
        cpus_per_node: int = 1,
        env: dict[str, str] | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        token = {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }  # its own: not ~/.ray/auth_token, which an embedded Ray writes
        self.root, self.port, self.env = (
            Path(root),
            free_port(),
            {**os.environ, **FAST_FAILURE_DETECTION, **token, **(env or {})},
        )
        self.scratch_root = Path(
            tempfile.mkdtemp(prefix="tb-ray-", dir="/tmp")
        )  # short: Ray's socket paths below it must fit 107 bytes
        self.address = f"{NODE_IP}:{self.port}"
        self.nodes: list[subprocess.Popen[bytes]] = []
        try:
            for number in range(nodes):
                self.nodes.append(self._start(number, cpus_per_node))
                self.wait_for(number + 1, start_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, number: int, cpus: int) -> subprocess.Popen[bytes]:
        scratch = self.scratch(number)
        scratch.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(parents=True, exist_ok=True)
        ray = str(Path(sys.executable).with_name("ray"))
        ports = [
            "--node-manager-port",
            str(free_port()),
            "--object-manager-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
        ]
        where = (
            ["--head", "--port", str(self.port), "--include-dashboard=false"]
            if number == 0
            else ["--address", self.address]
        )
        command = [
            ray,
            "start",
            *where,
            "--node-ip-address",
            NODE_IP,
            "--num-cpus",
            str(cpus),
            "--num-gpus",
            "0",
            "--object-store-memory",
            str(OBJECT_STORE_BYTES),
            *ports,
            "--disable-usage-stats",
            "--block",
        ]
        log = (self.root / f"node{number}.log").open("w")
        return subprocess.Popen(
            command,
            env={**self.env, "TMPDIR": str(scratch)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def scratch(self, number: int) -> Path:
        """Node `number`'s temporary folder (its TMPDIR: Ray's session, the nightly's scratch)."""
        return self.scratch_root / f"node{number}"

    def alive(self) -> int:
        """Live nodes, as the head's `ray status` counts them."""
        ray = str(Path(sys.executable).with_name("ray"))
        done = subprocess.run(
            [ray, "status", "--address", self.address],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        section = done.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0] if "Active:" in done.stdout else ""
        return sum(1 for line in section.splitlines() if "node_" in line)

    def wait_for(self, nodes: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p in self.nodes):
                raise RuntimeError(f"a Ray node exited while starting; see {self.root}/node*.log")
            if self.alive() >= nodes:
                return
            time.sleep(1.0)
        raise RuntimeError(f"{nodes} Ray node(s) were not up within {timeout_s:.0f} s; see {self.root}/node*.log")

    def kill(self, number: int) -> None:
        """Lose node `number` with everything running on it: Ray's workers start sessions of their
        own, so the node is its `ray start` process and every descendant, found before any dies."""
        node = self.nodes[number]
        for pid in [node.pid, *descendants(node.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        node.wait(timeout=30)

    def stop(self) -> None:
        for number in reversed(range(len(self.nodes))):
            self.kill(number)
        shutil.rmtree(self.scratch_root, ignore_errors=True)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, frontier = [], [pid]
    while frontier:
        below = children.get(frontier.pop(), [])
        found += below
        frontier += below
    return found
