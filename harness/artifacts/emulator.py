"""A real GCS-API server on loopback (gcp-storage-emulator), for tests and benchmarks.

The google-cloud-storage client talks to it over HTTP once STORAGE_EMULATOR_HOST names it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """`python -m gcp_storage_emulator start` on 127.0.0.1, in memory, with one bucket.

    `niceness` lowers the server's CPU priority, for measurements: a real bucket's work is not this
    machine's, so at 19 the server takes only cores that training leaves idle. Tests keep 0, so a
    busy machine never starves the server into a timeout."""

    def __init__(self, bucket: str, port: int | None = None, start_timeout_s: float = 30.0, niceness: int = 0) -> None:
        self.bucket = bucket
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--in-memory",
                "--default-bucket",
                bucket,
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if niceness:
            os.setpriority(os.PRIO_PROCESS, self.process.pid, niceness)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gcp-storage-emulator did not start within {start_timeout_s:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
