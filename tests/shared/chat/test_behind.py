"""Write-behind: work after the response, read-your-writes by key, failures logged."""

from __future__ import annotations

import asyncio
import logging

import pytest

from shared.chat.behind import WriteBehind


async def test_writes_run_after_submit_returns_and_wait_sees_them_done() -> None:
    behind, done = WriteBehind(), []
    release = asyncio.Event()

    async def write(name: str) -> None:
        await release.wait()
        done.append(name)

    behind.submit(write("a"), key="p1")
    behind.submit(write("b"), key="p2")
    assert done == [] and behind.pending == 2  # the caller answered without waiting
    release.set()
    await behind.wait("p1")
    assert "a" in done
    await behind.flush()
    assert sorted(done) == ["a", "b"] and behind.pending == 0


async def test_wait_on_a_key_with_nothing_pending_returns_at_once() -> None:
    behind = WriteBehind()
    await asyncio.wait_for(behind.wait("nothing"), 1)
    await asyncio.wait_for(behind.flush(), 1)


async def test_a_failed_write_is_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    behind = WriteBehind()

    async def broken() -> None:
        raise OSError("store down")

    with caplog.at_level(logging.WARNING):
        behind.submit(broken(), what="settlement")
        await behind.flush()
    assert "write-behind settlement failed" in caplog.text and behind.pending == 0
