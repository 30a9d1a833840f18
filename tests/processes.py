"""Spawned OS processes that start together: the harness of the multi-process tests."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any


def run_together(
    target: Callable[..., None], jobs: Sequence[Any], start_lines: int = 1
) -> list[dict[str, Any]]:
    """Run `target(job, *barriers, results)` in one spawned process per job; return what each
    put on `results`. Each barrier is one start line every process reaches before any passes."""
    context = multiprocessing.get_context("spawn")
    barriers = [context.Barrier(len(jobs)) for _ in range(start_lines)]
    results = context.Queue()
    processes = [context.Process(target=target, args=(job, *barriers, results)) for job in jobs]
    for process in processes:
        process.start()
    reports = [results.get(timeout=180) for _ in jobs]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0, f"child exited with {process.exitcode}"
    return reports
