"""Run the simulator as a real child process (for tests, benchmarks and the chaos run)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SimulatorProcess:
    """`python -m psp_simulator` on 127.0.0.1 and a free port; stop() ends it."""

    def __init__(self, db_path: Path, log_path: Path, *, webhook_url: str = "", enable_control: bool = True,
                 port: int | None = None) -> None:
        self.db_path = Path(db_path)
        self.log_path = Path(log_path)
        self.webhook_url = webhook_url
        self.enable_control = enable_control
        self.port = port or 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> SimulatorProcess:
        self.port = self.port or free_port()
        cmd = [sys.executable, "-m", "psp_simulator", "--host", "127.0.0.1", "--port", str(self.port),
               "--db", str(self.db_path)]
        if self.webhook_url:
            cmd += ["--webhook-url", self.webhook_url]
        if self.enable_control:
            cmd.append("--enable-control")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSP_SIM_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the PSP simulator exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the PSP simulator did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code, self.proc = self.proc.returncode, None
        return code

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
