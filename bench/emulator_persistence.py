"""What persisting the Cosmos emulator costs: writes/s of emulators/cosmos-server.js in memory
only (the package as shipped) against the same script with a data directory (every write
appended and fsynced before its response, group commit), in the same run, rounds interleaved;
and how long a restart takes to load what was written.

Run: `.venv/bin/python bench/emulator_persistence.py [--items 400] [--concurrency 8]
[--rounds 3]`. Compare the ratio, not the absolute numbers (a shared machine's load moves them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from azure.cosmos import PartitionKey  # noqa: E402

from devhost.testing import free_port  # noqa: E402
from shared.storage.cosmos import EMULATOR_KEY, create_cosmos_client  # noqa: E402


def start(data_dir: str | None) -> tuple[subprocess.Popen[bytes], int, float]:
    """The emulator on a free port; returns the process, its port and seconds until it answered."""
    port = free_port()
    command = ["node", str(ROOT / "emulators" / "cosmos-server.js"), str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, *([data_dir] if data_dir else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    context = ssl._create_unverified_context()
    while time.perf_counter() - started < 120:
        try:
            urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=context, timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers
        except OSError:
            time.sleep(0.05)
    return process, port, time.perf_counter() - started


async def upserts(port: int, items: int, concurrency: int) -> float:
    """Upserts `items` 1 KB items over `concurrency` callers; returns writes/s."""
    endpoint = f"https://127.0.0.1:{port}"
    async with create_cosmos_client(endpoint, EMULATOR_KEY, None) as client:
        database = await client.create_database_if_not_exists("bench")
        container = await database.create_container_if_not_exists("items", PartitionKey("/t"))
        payload = "x" * 1000

        async def caller(first: int) -> None:
            for index in range(first, items, concurrency):
                await container.upsert_item({"id": f"i{index}", "t": "a", "v": payload})

        started = time.perf_counter()
        await asyncio.gather(*(caller(first) for first in range(concurrency)))
        return items / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    """Interleaved rounds of both modes; prints medians, the ratio and the restart time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args(argv)
    import urllib3

    urllib3.disable_warnings()
    rates: dict[str, list[float]] = {"memory only": [], "persisted": []}
    restarts: list[float] = []
    empty_starts: list[float] = []
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for _ in range(arguments.rounds):
        for mode in rates:
            with tempfile.TemporaryDirectory(prefix="bench-cosmos-") as folder:
                data_dir = folder if mode == "persisted" else None
                process, port, seconds = start(data_dir)
                empty_starts.append(seconds)
                try:
                    rate = asyncio.run(upserts(port, arguments.items, arguments.concurrency))
                    rates[mode].append(rate)
                finally:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                if data_dir:
                    again, _, seconds = start(data_dir)  # loads the log, compacts
                    restarts.append(seconds)
                    again.send_signal(signal.SIGKILL)
                    again.wait()
    print(f"{arguments.items} upserts of 1 KB, {arguments.concurrency} concurrent callers")
    for mode, values in rates.items():
        shown = ", ".join(f"{value:.0f}" for value in values)
        print(f"  {mode:<12} median {statistics.median(values):6.0f} writes/s  ({shown})")
    ratio = statistics.median(rates["persisted"]) / statistics.median(rates["memory only"])
    print(f"  persisted / memory only: {ratio:.2f}x")
    print(f"  start, empty: median {statistics.median(empty_starts):.2f} s; restart after kill -9 "
          f"(load {arguments.items} items, compact, answer): median "
          f"{statistics.median(restarts):.2f} s")  # fmt: skip
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
