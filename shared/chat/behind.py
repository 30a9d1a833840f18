"""Write-behind: bookkeeping that runs after the response instead of before it.

The governed chat path hands its settlement (usage ledger record, budget settle, token
correction) and its cache store to a `WriteBehind` and answers at once; the writes run as
tasks on the same event loop. Nothing is lost that the response could have waited for: the
writes are the same, in the same order (ledger before budget settle, which the audit relies
on), only later. Their crash window is the same as before too: a process that dies between
the model's answer and its ledger record loses that record either way; a budget settle that
never lands leaves its reservation to lapse, and the budget audit timer re-derives the spend
from the ledger (shared/budgets/audit.py).

Read-your-writes within an instance: `wait(key)` waits for the pending writes filed under
`key` (a cache partition: a question asked twice in a row by one client is a hit the second
time), and `flush()` for all of them (usage reads, the budget audit).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class WriteBehind:
    """Pending post-response writes of this process, by key."""

    def __init__(self) -> None:
        """Nothing pending."""
        self._pending: dict[str, set[asyncio.Task[None]]] = {}

    def submit(self, write: Coroutine[Any, Any, Any], key: str = "", what: str = "write") -> None:
        """Run `write` in the background; a failure is logged with `what`, never raised."""
        task = asyncio.get_running_loop().create_task(self._run(write, what))
        tasks = self._pending.setdefault(key, set())
        tasks.add(task)
        task.add_done_callback(lambda done: self._forget(key, done))

    async def wait(self, key: str) -> None:
        """Until the writes pending under `key` (when this was called) have finished."""
        tasks = list(self._pending.get(key, ()))
        if tasks:
            await asyncio.wait(tasks)

    async def flush(self) -> None:
        """Until every write pending when this was called has finished."""
        tasks = [task for tasks in self._pending.values() for task in tasks]
        if tasks:
            await asyncio.wait(tasks)

    @property
    def pending(self) -> int:
        """How many writes are still running."""
        return sum(len(tasks) for tasks in self._pending.values())

    async def _run(self, write: Coroutine[Any, Any, Any], what: str) -> None:
        try:
            await write
        except Exception:  # the response has gone; the audit timer repairs what it can
            log.warning("write-behind %s failed", what, exc_info=True)

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        tasks = self._pending.get(key)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._pending[key]


__all__ = ["WriteBehind"]
