"""Runs a devhost in a child process for tests: start, wait until ready, stop or kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any


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


# Replaying orchestrators without a host ------------------------------------------------------
#
# Unit tests of an orchestrator feed it a hand-written history, as the host would, and read the
# actions it decides. Event types are the out-of-proc protocol's integers: 0 ExecutionStarted,
# 4 TaskScheduled, 5 TaskCompleted, 6 TaskFailed, 10/11 TimerCreated/TimerFired,
# 12 OrchestratorStarted, 13 OrchestratorCompleted, 15 EventRaised.

REPLAY_TIMESTAMP = "2026-01-01T00:00:00.000Z"


def history_event(
    event_type: int, event_id: int = -1, played: bool = True, **fields: Any
) -> dict[str, Any]:
    """One history event with the fields every event carries."""
    return {
        "EventType": event_type,
        "EventId": event_id,
        "IsPlayed": played,
        "Timestamp": REPLAY_TIMESTAMP,
        **fields,
    }


def execution_start(name: str, input_json: str | None = None) -> list[dict[str, Any]]:
    """The two events that open every history."""
    return [history_event(12), history_event(0, Name=name, Input=input_json, Version=None)]


def next_episode(*events: dict[str, Any]) -> list[dict[str, Any]]:
    """Closes the previous episode and opens one delivering `events`."""
    return [history_event(13), history_event(12), *events]


def replay(
    orchestrator: Callable[..., Any],
    history: list[dict[str, Any]],
    input_json: str | None = None,
    instance_id: str = "replay",
) -> Any:
    """Runs the SDK's own orchestrator handling over `history`; returns its decoded state."""
    from azure.durable_functions.orchestrator import Orchestrator

    body = {
        "history": history,
        "input": input_json,
        "instanceId": instance_id,
        "isReplaying": False,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 3,
    }
    return json.loads(Orchestrator.create(orchestrator)(json.dumps(body)))
