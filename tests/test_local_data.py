"""Local data survives: the Cosmos emulator persists to disk (snapshot + fsynced write log) and
comes back after kill -9 with every item as stored, and `scripts/emulators.py run` leaves the
emulators running when its command crashes."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core import MatchConditions
from azure.cosmos import CosmosClient, PartitionKey

from devhost.testing import free_port
from tests.conftest import COSMOS_EMULATOR_KEY, ROOT, load_emulators_cli

pytestmark = pytest.mark.emulators


class CosmosEmulator:
    """One emulators/cosmos-server.js process of our own, on a free port, with a data dir."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "emulator.log"

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> CosmosEmulator:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["node", str(ROOT / "emulators" / "cosmos-server.js"), str(self.port),
                 str(self.data_dir / "cosmos")],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        context = ssl._create_unverified_context()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/", context=context, timeout=2)
                return self
            except urllib.error.HTTPError:
                return self  # it answers
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the emulator did not start:\n{self.log.read_text()}")

    def kill(self) -> None:
        """kill -9: no shutdown handler runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def client(self) -> CosmosClient:
        return CosmosClient(
            self.endpoint, COSMOS_EMULATOR_KEY, connection_verify=False,
            enable_endpoint_discovery=False, connection_timeout=60,
        )  # fmt: skip


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[CosmosEmulator]:
    running = CosmosEmulator(tmp_path).start()
    try:
        yield running
    finally:
        if running.process and running.process.poll() is None:
            running.kill()


def stored(client: CosmosClient) -> list[tuple[Any, ...]]:
    container = client.get_database_client("d1").get_container_client("c1")
    rows = container.query_items("SELECT * FROM c", enable_cross_partition_query=True)
    return sorted((r["id"], r["t"], r["v"], r["_rid"], r["_etag"], r["_ts"]) for r in rows)


def test_the_cosmos_emulator_keeps_every_write_across_kill_9(emulator: CosmosEmulator) -> None:
    client = emulator.client()
    database = client.create_database_if_not_exists("d1")
    container = database.create_container_if_not_exists("c1", PartitionKey("/t"), default_ttl=600)
    for index in range(40):
        container.upsert_item({"id": f"i{index}", "t": "ab"[index % 2], "v": index})
    container.delete_item("i3", "b")
    item = container.read_item("i4", "a")
    item["v"] = 400
    container.replace_item(
        "i4", item, etag=item["_etag"], match_condition=MatchConditions.IfNotModified
    )
    container.patch_item("i5", "b", [{"op": "incr", "path": "/v", "value": 1000}])
    database.create_container_if_not_exists("c2", PartitionKey("/t"))
    database.delete_container("c2")
    client.create_database_if_not_exists("gone")
    client.delete_database("gone")
    before = stored(client)

    emulator.kill()
    emulator.start()
    client = emulator.client()

    after = stored(client)
    assert after == before  # every item as stored: _rid, _etag and _ts (so TTLs) included
    assert len(after) == 39 and after[[r[0] for r in after].index("i4")][:3] == ("i4", "a", 400)
    assert [c["id"] for c in client.get_database_client("d1").list_containers()] == ["c1"]
    assert [d["id"] for d in client.list_databases()] == ["d1"]
    container = client.get_database_client("d1").get_container_client("c1")
    assert container.read()["defaultTtl"] == 600
    container.upsert_item({"id": "new", "t": "a", "v": 1})  # new ids never reuse a stored _rid
    rids = [row[3] for row in stored(client)]
    assert len(rids) == len(set(rids)) == 40


def test_a_torn_last_log_line_is_dropped_not_fatal(emulator: CosmosEmulator) -> None:
    client = emulator.client()
    container = client.create_database_if_not_exists("d1").create_container_if_not_exists(
        "c1", PartitionKey("/t")
    )
    container.upsert_item({"id": "kept", "t": "a", "v": 1})
    emulator.kill()
    with (emulator.data_dir / "cosmos" / "log.jsonl").open("a") as log:
        log.write('{"op": "put-doc", "db": "d1", "coll": "c1", "data": {"id": "half')  # a crash
    emulator.start()
    assert [row[0] for row in stored(emulator.client())] == ["kept"]


def test_emulators_outlive_a_crashed_command_and_stop_after_a_clean_exit(
    tmp_path: Path,
) -> None:
    environment = {
        **os.environ,
        "EMULATORS_DATA_DIR": str(tmp_path),
        "AZURITE_BLOB_PORT": str(free_port()),
        "AZURITE_QUEUE_PORT": str(free_port()),
        "AZURITE_TABLE_PORT": str(free_port()),
        "COSMOS_EMULATOR_PORT": str(free_port()),
    }
    script = [sys.executable, str(ROOT / "scripts" / "emulators.py")]

    def run(child: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*script, "run", "--", sys.executable, "-c", child], env=environment,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    try:
        crashed = run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        assert crashed.returncode == 128 + signal.SIGKILL
        assert "keep running" in crashed.stderr
        status = subprocess.run(
            [*script, "status"], env=environment, capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0 and status.stdout.count(": running") == 2, status.stdout
        clean = run("print('done')")  # reuses them, and leaves them as it found them
        assert clean.returncode == 0 and "reused" in clean.stdout
    finally:
        subprocess.run([*script, "stop"], env=environment, timeout=60, check=False)
    cli = load_emulators_cli()
    assert cli.crashed(128 + signal.SIGKILL) and cli.crashed(128 + signal.SIGSEGV)
    assert not any(cli.crashed(code) for code in (0, 1, 2, 128 + signal.SIGINT, 130, 143))
