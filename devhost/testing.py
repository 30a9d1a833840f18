"""Runs a devhost in a child process for tests: start, wait until ready, stop or kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HostProcess:
    """A `python -m devhost` child serving one app folder on its own port and data folder."""

    def __init__(
        self,
        app_dir: Path,
        data_dir: Path,
        module: str = "function_app",
        port: int | None = None,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        settings_file: Path | None = None,
    ) -> None:
        self.app_dir = app_dir
        self.data_dir = data_dir
        self.module = module
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path or data_dir / "host.log"
        self.settings_file = settings_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """Where the host listens."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0, wait: bool = True) -> HostProcess:
        """Starts the host and waits until `/admin/host/ping` answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "devhost", "start",
            "--app-dir", str(self.app_dir), "--module", self.module,
            "--port", str(self.port), "--data-dir", str(self.data_dir),
        ]  # fmt: skip
        if self.settings_file:
            command += ["--settings-file", str(self.settings_file)]
        root = Path(__file__).resolve().parent.parent
        env = {
            **self.env,
            "PYTHONPATH": os.pathsep.join([str(root), self.env.get("PYTHONPATH", "")]),
        }
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, cwd=self.app_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT
            )
        if wait:
            self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"devhost exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/admin/host/ping", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise TimeoutError(f"devhost did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        """The end of the host's output, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_text(self) -> str:
        """All the host has printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """Asks the host to stop (SIGTERM) and waits; kills it if it does not."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """`kill -9`: no chance to clean up, as in a crash."""
        assert self.process is not None
        self.process.kill()
        return self.process.wait()

    def __enter__(self) -> HostProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
