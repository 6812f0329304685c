"""A real GCS-API server on loopback (gcp-storage-emulator), for tests and benchmarks.

The google-cloud-storage client talks to it over HTTP once STORAGE_EMULATOR_HOST names it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The server stands in for a remote bucket, whose work is not this machine's: at the lowest CPU
# priority it takes only cores that training leaves idle, so what a run measures is the harness's own
# cost (snapshot, write, the client's side of the upload), not the server's.
SERVER_NICENESS = 19


class Emulator:
    """`python -m gcp_storage_emulator start` on 127.0.0.1, in memory, with one bucket, niced."""

    def __init__(self, bucket: str, port: int | None = None, start_timeout_s: float = 30.0) -> None:
        self.bucket = bucket
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            ["nice", "-n", str(SERVER_NICENESS), sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", str(self.port), "--in-memory", "--default-bucket", bucket, "-q"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
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
