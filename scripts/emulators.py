"""Start, stop and wrap commands around the local emulators (Azurite and the Cosmos emulator).

Usage:
    python scripts/emulators.py start          # start what is not running, reuse what is
    python scripts/emulators.py stop           # stop emulators recorded in .data/run/*.pid
    python scripts/emulators.py status         # show what answers and what we own
    python scripts/emulators.py run -- CMD...  # start, run CMD, stop only what this run started

Stdlib only, so it works before the virtualenv has anything installed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
# Everything the emulators keep (data, logs, pid files); EMULATORS_DATA_DIR moves it (tests).
DATA_DIR = Path(os.environ.get("EMULATORS_DATA_DIR") or ROOT / ".data")
LOG_DIR = DATA_DIR / "logs"
RUN_DIR = DATA_DIR / "run"
COSMOS_DIR = DATA_DIR / "cosmos"
HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 40


class EmulatorError(RuntimeError):
    """An emulator could not be started or does not answer."""


@dataclass(frozen=True)
class Emulator:
    """How to launch one emulator and how to tell that it is up."""

    name: str
    ports: tuple[int, ...]
    command: tuple[str, ...]
    endpoint: str
    # A substring of the process command line: guards `stop` against a recycled pid.
    cmdline_marker: str
    # Cosmos accepts TCP before its HTTP layer is wired; only an HTTPS answer means ready.
    https_probe_url: str | None = None

    @property
    def pid_file(self) -> Path:
        """Where the pid of the copy we started is recorded."""
        return RUN_DIR / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        """Where the emulator's stdout and stderr go."""
        return LOG_DIR / f"{self.name}.log"

    @property
    def lock_file(self) -> Path:
        """Serialises concurrent `start`s of this emulator (two `make run`s at once)."""
        return RUN_DIR / f"{self.name}.lock"


@dataclass(frozen=True)
class StartOutcome:
    """What `start` did for one emulator."""

    emulator: Emulator
    action: Literal["started", "reused"]
    pid: int | None


def read_port(env: Mapping[str, str], name: str, default: int) -> int:
    """Return the port from env var `name`, or `default` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError as exc:
        raise EmulatorError(f"{name}={raw!r} is not a port number") from exc
    if not 0 < port < 65536:
        raise EmulatorError(f"{name}={port} is out of range")
    return port


def configure_azurite(env: Mapping[str, str]) -> Emulator:
    """Describe Azurite (Blob, Queue, Table) with ports from the environment."""
    blob = read_port(env, "AZURITE_BLOB_PORT", 10000)
    queue = read_port(env, "AZURITE_QUEUE_PORT", 10001)
    table = read_port(env, "AZURITE_TABLE_PORT", 10002)
    command = (
        str(ROOT / "node_modules" / ".bin" / "azurite"),
        "--silent",
        "--disableTelemetry",  # otherwise it tries to phone home
        "--skipApiVersionCheck",  # otherwise current SDKs are refused
        "--blobHost", HOST, "--blobPort", str(blob),
        "--queueHost", HOST, "--queuePort", str(queue),
        "--tableHost", HOST, "--tablePort", str(table),
        "--location", str(DATA_DIR / "azurite"),
    )  # fmt: skip
    return Emulator(
        name="azurite",
        ports=(blob, queue, table),
        command=command,
        endpoint=f"http://{HOST}:{blob} (blob), :{queue} (queue), :{table} (table)",
        cmdline_marker="azurite",
    )


def configure_cosmos(env: Mapping[str, str]) -> Emulator:
    """Describe the Cosmos emulator (emulators/cosmos-server.js) with its port from env."""
    port = read_port(env, "COSMOS_EMULATOR_PORT", 8081)
    return Emulator(
        name="cosmos",
        ports=(port,),
        # Its data persists under .data/cosmos (snapshot + fsynced write log): see the script.
        command=("node", str(ROOT / "emulators" / "cosmos-server.js"), str(port), str(COSMOS_DIR)),
        endpoint=f"https://{HOST}:{port}/",
        cmdline_marker="cosmos-server.js",
        https_probe_url=f"https://{HOST}:{port}/",
    )


def configured_emulators(env: Mapping[str, str] | None = None) -> list[Emulator]:
    """Return every emulator docgate uses, configured from `env` (default: os.environ)."""
    source = os.environ if env is None else env
    return [configure_azurite(source), configure_cosmos(source)]


def is_port_open(port: int, timeout: float = 0.5) -> bool:
    """Return True when something accepts TCP connections on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def answers_https(url: str, timeout: float = 2.0) -> bool:
    """Return True when `url` answers HTTPS with any status (its certificate is not checked)."""
    # The emulator's certificate is self-signed and expired; this only probes loopback.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error status is still an answer
    except (urllib.error.URLError, OSError):
        return False


def is_ready(emulator: Emulator) -> bool:
    """Return True when every port of `emulator` accepts connections (and HTTPS answers)."""
    if not all(is_port_open(port) for port in emulator.ports):
        return False
    return emulator.https_probe_url is None or answers_https(emulator.https_probe_url)


def is_any_port_open(emulator: Emulator) -> bool:
    """Return True when at least one port of `emulator` already accepts connections."""
    return any(is_port_open(port) for port in emulator.ports)


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last `lines` lines of a log file, or a note when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def read_pid(emulator: Emulator) -> int | None:
    """Return the pid recorded for `emulator`, or None when there is no usable pid file."""
    try:
        return int(emulator.pid_file.read_text(encoding="utf-8").strip())
    except (FileNotFoundError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    """Return True when `pid` runs and is not a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError:
        return _signal_zero(pid)
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _signal_zero(pid: int) -> bool:
    """Return True when signal 0 reaches `pid` (it exists, perhaps owned by someone else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_our_process(pid: int, emulator: Emulator) -> bool:
    """Return True when `pid` is alive and its command line looks like `emulator`."""
    if not is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc to check against: trust the pid file
    return emulator.cmdline_marker.encode() in cmdline


@contextlib.contextmanager
def lock_emulator(emulator: Emulator) -> Iterator[None]:
    """Hold an exclusive lock for `emulator` so concurrent starts do not launch two copies."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with emulator.lock_file.open("a", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def launch(emulator: Emulator) -> subprocess.Popen[bytes]:
    """Start `emulator` detached in its own session, logging to its log file."""
    executable = Path(emulator.command[0])
    if executable.is_absolute() and not executable.exists():
        raise EmulatorError(
            f"{executable} is missing: install the Node packages first (make deps / npm ci)"
        )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / "azurite").mkdir(parents=True, exist_ok=True)
    with emulator.log_file.open("ab") as log:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"\n=== {stamp} starting: {' '.join(emulator.command)}\n".encode())
        log.flush()
        # start_new_session: own process group (so `stop` can kill the whole group) and no
        # controlling terminal, so it survives `make` returning and ignores the terminal's ^C.
        process = subprocess.Popen(
            emulator.command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    emulator.pid_file.write_text(f"{process.pid}\n", encoding="utf-8")
    return process


def wait_until_ready(
    emulator: Emulator, process: subprocess.Popen[bytes] | None, timeout: float
) -> None:
    """Block until `emulator` is ready; raise EmulatorError with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(emulator):
            return
        if process is not None and process.poll() is not None:
            raise EmulatorError(
                f"{emulator.name} exited with code {process.returncode} before it was ready; "
                f"last lines of {emulator.log_file}:\n{read_log_tail(emulator.log_file)}"
            )
        time.sleep(0.2)
    raise EmulatorError(
        f"{emulator.name} did not answer on {emulator.endpoint} within {timeout:.0f} s; "
        f"last lines of {emulator.log_file}:\n{read_log_tail(emulator.log_file)}"
    )


def wait_until_reusable(emulator: Emulator, timeout: float) -> None:
    """Wait for an emulator someone else started; fail clearly if its port is not one."""
    try:
        wait_until_ready(emulator, None, timeout)
    except EmulatorError as exc:
        ports = ", ".join(str(port) for port in emulator.ports)
        raise EmulatorError(
            f"something listens on port(s) {ports} but {emulator.name} is not ready on "
            f"{emulator.endpoint} after {timeout:.0f} s; free the port(s) or override them "
            "(AZURITE_*_PORT / COSMOS_EMULATOR_PORT)"
        ) from exc


def start_emulator(emulator: Emulator, timeout: float = READY_TIMEOUT_S) -> StartOutcome:
    """Reuse `emulator` when its ports answer, else start it and wait until it is ready."""
    with lock_emulator(emulator):
        if is_any_port_open(emulator):
            # Another `make run` (or a manual start) owns it; it may still be booting.
            wait_until_reusable(emulator, timeout)
            return StartOutcome(emulator, "reused", None)
        process = launch(emulator)
        try:
            wait_until_ready(emulator, process, timeout)
        except EmulatorError:
            stop_emulator(emulator)
            raise
        if lost_port_race(process):
            # A copy started outside our lock bound the port first; ours died with EADDRINUSE.
            emulator.pid_file.unlink(missing_ok=True)
            return StartOutcome(emulator, "reused", None)
        return StartOutcome(emulator, "started", process.pid)


def lost_port_race(process: subprocess.Popen[bytes], grace: float = 0.5) -> bool:
    """Return True when our just-launched process exited although its ports answer."""
    time.sleep(grace)  # a failed listen() exits within milliseconds of the first bind
    return process.poll() is not None


def start_all(
    emulators: Sequence[Emulator], timeout: float = READY_TIMEOUT_S
) -> list[StartOutcome]:
    """Start or reuse every emulator; on failure stop those this call started, then raise."""
    outcomes: list[StartOutcome] = []
    try:
        for emulator in emulators:
            outcomes.append(start_emulator(emulator, timeout))
    except BaseException:
        stop_started(outcomes)
        raise
    return outcomes


def signal_group(pid: int, signum: int) -> bool:
    """Send `signum` to the process group led by `pid`; return False when it is gone."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return False
    return True


def wait_for_exit(pid: int, timeout: float) -> bool:
    """Wait until `pid` is gone; return False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    return not is_alive(pid)


def stop_emulator(emulator: Emulator) -> bool:
    """Stop the copy of `emulator` recorded in its pid file; return True when one was stopped."""
    pid = read_pid(emulator)
    stopped = False
    if pid is not None and is_our_process(pid, emulator):
        # We launched it as a session leader, so its pid is also its process group id.
        signal_group(pid, signal.SIGTERM)
        if not wait_for_exit(pid, STOP_TIMEOUT_S):
            signal_group(pid, signal.SIGKILL)
            wait_for_exit(pid, STOP_TIMEOUT_S)
        stopped = True
    # Stale or not, the pid file no longer describes a running copy.
    emulator.pid_file.unlink(missing_ok=True)
    return stopped


def stop_started(outcomes: Sequence[StartOutcome]) -> None:
    """Stop only the emulators that `outcomes` record as started by us, newest first."""
    for outcome in reversed(outcomes):
        if outcome.action == "started":
            stop_emulator(outcome.emulator)


def print_outcome(outcome: StartOutcome) -> None:
    """Print one line describing what happened to one emulator."""
    pid = f" (pid {outcome.pid})" if outcome.pid is not None else ""
    print(f"emulators: {outcome.emulator.name} {outcome.action}{pid}: {outcome.emulator.endpoint}")


def describe_status(emulator: Emulator) -> tuple[bool, str]:
    """Return whether `emulator` is ready and a one-line description of its state."""
    ready = is_ready(emulator)
    pid = read_pid(emulator)
    owned = pid is not None and is_our_process(pid, emulator)
    if ready and owned:
        state = f"running (pid {pid}, from our pid file)"
    elif ready:
        state = "running (not started by this script: no live pid file)"
    elif owned:
        state = f"not answering (pid {pid} alive; see {emulator.log_file})"
    else:
        state = "stopped"
    return ready, f"{emulator.name}: {state}: {emulator.endpoint}"


def command_start(emulators: Sequence[Emulator]) -> int:
    """Start or reuse every emulator and report each; return an exit code."""
    try:
        outcomes = start_all(emulators)
    except EmulatorError as exc:
        print(f"emulators: error: {exc}", file=sys.stderr)
        return 1
    for outcome in outcomes:
        print_outcome(outcome)
    return 0


def command_stop(emulators: Sequence[Emulator]) -> int:
    """Stop every emulator recorded in our pid files; return an exit code."""
    for emulator in emulators:
        verb = "stopped" if stop_emulator(emulator) else "not running from our pid file"
        print(f"emulators: {emulator.name} {verb}")
    return 0


def command_status(emulators: Sequence[Emulator]) -> int:
    """Print the state of every emulator; exit 0 only when all are ready."""
    all_ready = True
    for emulator in emulators:
        ready, line = describe_status(emulator)
        all_ready = all_ready and ready
        print(line)
    return 0 if all_ready else 1


def terminal_delivers_sigint() -> bool:
    """Return True when we are in the terminal's foreground group, so ^C already hit the child."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
        except (OSError, ValueError, AttributeError):
            continue
    return False


def run_child(command: Sequence[str]) -> int:
    """Run `command` with our stdio, forwarding SIGINT/SIGTERM; return its exit code."""
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"emulators: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127

    def forward(signum: int, _frame: FrameType | None) -> None:
        # ^C in a terminal reaches the whole foreground group, child included; sending it again
        # would look like a second ^C (pytest and most servers abort hard on that).
        if signum == signal.SIGINT and terminal_delivers_sigint():
            return
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        returncode = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # A child killed by a signal reports -N; shells report that as 128+N.
    return 128 - returncode if returncode < 0 else returncode


def exit_on_signal(signum: int, _frame: FrameType | None) -> None:
    """Signal handler that exits like a shell would report the signal (128+N)."""
    raise SystemExit(128 + signum)


def command_run(emulators: Sequence[Emulator], command: Sequence[str]) -> int:
    """Start emulators, run `command`, stop what this call started; return its exit code."""
    if not command:
        print("emulators: run needs a command after --", file=sys.stderr)
        return 2
    # Until the child runs, turn SIGTERM into SystemExit so start_all's cleanup stops what it
    # already launched instead of leaving orphans behind.
    previous = signal.signal(signal.SIGTERM, exit_on_signal)
    try:
        outcomes = start_all(emulators)
    except EmulatorError as exc:
        print(f"emulators: error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    for outcome in outcomes:
        print_outcome(outcome)
    sys.stdout.flush()
    returncode = 128 + signal.SIGTERM
    try:
        returncode = run_child(command)
    finally:
        if crashed(returncode):
            # The host died (kill -9, a segfault): its emulators outlive it, with their data,
            # for the next `make run` to reuse; `make stop` ends them.
            print(
                f"emulators: the command died with signal {returncode - 128}; the emulators "
                "keep running (`make stop` stops them)",
                file=sys.stderr,
            )
        else:
            stop_started(outcomes)
    return returncode


def crashed(returncode: int) -> bool:
    """Whether the child died of a signal other than an interrupt or termination request (as
    a shell reports it: 128+N)."""
    interrupts = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    return returncode > 128 and returncode - 128 not in interrupts


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="emulators.py", description="Manage docgate's local emulators."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("start", help="start the emulators (reusing any already running)")
    sub.add_parser("stop", help="stop the emulators recorded in .data/run/*.pid")
    sub.add_parser("status", help="show whether each emulator answers")
    run = sub.add_parser("run", help="start, run CMD, then stop what this run started")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: dispatch to start/stop/status/run."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        emulators = configured_emulators()
    except EmulatorError as exc:
        print(f"emulators: error: {exc}", file=sys.stderr)
        return 2
    if args.action == "start":
        return command_start(emulators)
    if args.action == "stop":
        return command_stop(emulators)
    if args.action == "status":
        return command_status(emulators)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    return command_run(emulators, command)


if __name__ == "__main__":
    sys.exit(main())
