"""Durable state in SQLite (WAL): instances, history, the message inbox and the activity queue.

Every orchestrator episode commits in one transaction: the history it appended, the message it
consumed and the work it scheduled. A crash (even `kill -9`) therefore loses at most work in
flight, which is redone on restart: episodes are replayed, activities run at least once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER,
    action_ids TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at REAL NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_ready ON inbox (visible_at, instance_id);
CREATE TABLE IF NOT EXISTS activities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    starts INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Instance:
    """One orchestration instance as stored."""

    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created: str
    updated: str
    parent_instance_id: str | None
    parent_execution_id: str | None
    parent_task_id: int | None
    action_ids: list[int | None]


@dataclass(frozen=True)
class Message:
    """A history event waiting to be delivered to an instance."""

    id: int
    instance_id: str
    execution_id: str | None
    visible_at: float
    event: dict[str, Any]


@dataclass(frozen=True)
class ActivityWork:
    """An activity invocation waiting to run (or to run again after a crash)."""

    id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None
    starts: int


@dataclass
class NewMessage:
    """A message to enqueue as part of a transaction."""

    instance_id: str
    execution_id: str | None
    visible_at: float
    event: dict[str, Any]


@dataclass
class NewActivity:
    """An activity to enqueue as part of a transaction."""

    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


def _instance(row: sqlite3.Row) -> Instance:
    values = dict(row)
    values["action_ids"] = json.loads(values["action_ids"])
    return Instance(**values)


class DurableStore:
    """All reads and writes of durable state; used from the host's event-loop thread only."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        # WAL + NORMAL survives process crashes (kill -9); only an OS crash can lose the tail.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Closes the database."""
        self._db.close()

    def transaction(self) -> _Transaction:
        """Opens a write transaction (`with store.transaction() as tx:`)."""
        return _Transaction(self._db)

    # Reads -------------------------------------------------------------------------------

    def get_instance(self, instance_id: str) -> Instance | None:
        """The instance, or None when it does not exist."""
        row = self._db.execute(
            "SELECT * FROM instances WHERE instance_id = ?", (instance_id,)
        ).fetchone()
        return _instance(row) if row else None

    def list_instances(
        self,
        created_from: str | None = None,
        created_to: str | None = None,
        statuses: Iterable[str] = (),
        prefix: str | None = None,
    ) -> list[Instance]:
        """Instances filtered like the Durable HTTP API's list query."""
        clauses, params = [], []
        if created_from:
            clauses.append("created >= ?")
            params.append(created_from)
        if created_to:
            clauses.append("created <= ?")
            params.append(created_to)
        statuses = list(statuses)
        if statuses:
            clauses.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            params.extend([len(prefix), prefix])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(f"SELECT * FROM instances {where} ORDER BY created", params)
        return [_instance(row) for row in rows]

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        """The current execution's history, oldest first."""
        rows = self._db.execute(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY seq", (instance_id,)
        )
        return [json.loads(row["event"]) for row in rows]

    def ready_instances(self, now: float, limit: int) -> list[str]:
        """Instances with a deliverable message, oldest message first."""
        rows = self._db.execute(
            "SELECT m.instance_id, MIN(m.visible_at) AS due FROM inbox AS m "
            "JOIN instances AS i ON i.instance_id = m.instance_id "
            "WHERE m.visible_at <= ? AND i.status != 'Suspended' "
            "GROUP BY m.instance_id ORDER BY due LIMIT ?",
            (now, limit),
        )
        return [row["instance_id"] for row in rows]

    def ready_messages(self, instance_id: str, now: float, limit: int) -> list[Message]:
        """The instance's deliverable messages, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM inbox WHERE instance_id = ? AND visible_at <= ? "
            "ORDER BY visible_at, id LIMIT ?",
            (instance_id, now, limit),
        )
        return [
            Message(
                row["id"],
                row["instance_id"],
                row["execution_id"],
                row["visible_at"],
                json.loads(row["event"]),
            )
            for row in rows
        ]

    def next_due(self, busy: set[str]) -> float | None:
        """When the earliest message (a timer, usually) of an idle instance becomes deliverable."""
        marks = ",".join("?" * len(busy))
        row = self._db.execute(
            f"SELECT MIN(visible_at) AS due FROM inbox WHERE instance_id NOT IN ({marks})",
            list(busy),
        ).fetchone()
        return row["due"]

    def pending_activities(self, exclude: set[int], limit: int) -> list[ActivityWork]:
        """Activities not yet finished, skipping those already running."""
        rows = self._db.execute(
            "SELECT * FROM activities ORDER BY id LIMIT ?", (limit + len(exclude),)
        )
        work = [ActivityWork(**dict(row)) for row in rows]
        return [item for item in work if item.id not in exclude][:limit]

    def activity_exists(self, activity_id: int) -> bool:
        """Whether an activity is still queued (a terminated instance drops its own)."""
        row = self._db.execute("SELECT 1 FROM activities WHERE id = ?", (activity_id,)).fetchone()
        return row is not None

    def mark_activity_started(self, activity_id: int) -> None:
        """Counts an activity start, so a crash-restarted run shows how often it began."""
        self._db.execute("UPDATE activities SET starts = starts + 1 WHERE id = ?", (activity_id,))


class _Transaction:
    """A write transaction with the handful of mutations the engine makes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> _Transaction:
        self._db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")

    def put_instance(self, instance: Instance) -> None:
        """Inserts or replaces the instance row."""
        values = instance.__dict__ | {"action_ids": json.dumps(instance.action_ids)}
        columns = ", ".join(values)
        self._db.execute(
            f"INSERT OR REPLACE INTO instances ({columns}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )

    def append_history(self, instance_id: str, events: list[dict[str, Any]]) -> None:
        """Appends events after the instance's last one."""
        row = self._db.execute(
            "SELECT COALESCE(MAX(seq), -1) AS last FROM history WHERE instance_id = ?",
            (instance_id,),
        ).fetchone()
        start = row["last"] + 1
        self._db.executemany(
            "INSERT INTO history (instance_id, seq, event) VALUES (?, ?, ?)",
            [(instance_id, start + offset, json.dumps(item)) for offset, item in enumerate(events)],
        )

    def reset_history(self, instance_id: str) -> None:
        """Forgets the history (new execution, or purge)."""
        self._db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))

    def enqueue(self, messages: Iterable[NewMessage]) -> None:
        """Adds messages to instances' inboxes."""
        self._db.executemany(
            "INSERT INTO inbox (instance_id, execution_id, visible_at, event) VALUES (?, ?, ?, ?)",
            [
                (item.instance_id, item.execution_id, item.visible_at, json.dumps(item.event))
                for item in messages
            ],
        )

    def delete_message(self, message_id: int) -> None:
        """Marks a message consumed."""
        self._db.execute("DELETE FROM inbox WHERE id = ?", (message_id,))

    def delete_timer_messages(self, instance_id: str, timer_ids: Iterable[int]) -> None:
        """Drops pending TimerFired messages of cancelled timers."""
        for timer_id in timer_ids:
            self._db.execute(
                "DELETE FROM inbox WHERE instance_id = ? AND json_extract(event, '$.TimerId') = ?",
                (instance_id, timer_id),
            )

    def drop_pending_work(self, instance_id: str, keep_events: bool = False) -> None:
        """Drops an instance's queued work (terminate, purge, restart)."""
        condition = " AND json_extract(event, '$.EventType') != 15" if keep_events else ""
        self._db.execute(f"DELETE FROM inbox WHERE instance_id = ?{condition}", (instance_id,))
        self._db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))

    def delete_instance(self, instance_id: str) -> None:
        """Removes every trace of an instance."""
        self.drop_pending_work(instance_id)
        self.reset_history(instance_id)
        self._db.execute("DELETE FROM instances WHERE instance_id = ?", (instance_id,))

    def enqueue_activities(self, activities: Iterable[NewActivity]) -> None:
        """Queues activity invocations."""
        self._db.executemany(
            "INSERT INTO activities (instance_id, execution_id, task_id, name, input) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (item.instance_id, item.execution_id, item.task_id, item.name, item.input)
                for item in activities
            ],
        )

    def finish_activity(self, activity_id: int) -> None:
        """Removes a finished activity from the queue."""
        self._db.execute("DELETE FROM activities WHERE id = ?", (activity_id,))
