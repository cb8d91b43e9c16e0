"""A real `copilot api` process (uvicorn) on a free loopback port, for tests that need HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`python -m copilot api` with the given COPILOT_* environment; stopped by its own pid."""

    def __init__(self, env: dict[str, str], log: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COPILOT_")},
            # One host on purpose: PostgreSQL beside the embedded broker is refused otherwise.
            "COPILOT_ALLOW_EMBEDDED": "true",
            **env,
        }
        self.log = log
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> LiveServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "copilot", "api", "--port", str(self.port),
                 "--workers", str(self.workers), "--log-level", "warning"],
                cwd=ROOT, env=self.env, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"copilot api exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url + "/openapi.json", timeout=1.0)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"copilot api did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGKILL the server's session (teardown: nothing is checked of its shutdown).

        A graceful one (SIGTERM) waits for every request in flight, and a long-poll of the
        feed (`GET /v1/actions?wait=...`) whose client is gone holds it for up to 20 s:
        test_readme_consumer's teardown sat out the 15 s timeout for its SIGKILL.
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
