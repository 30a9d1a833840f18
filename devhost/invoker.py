"""Runs user functions: async ones on the loop, sync ones in a thread pool; logs each once."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devhost.functions import FunctionInfo

log = logging.getLogger("devhost")
_invocation: contextvars.ContextVar[str] = contextvars.ContextVar("devhost_invocation", default="")


class InvocationFailed(Exception):
    """A user function raised; `cause` is what it raised, `invocation_id` the logged id."""

    def __init__(self, function_name: str, invocation_id: str, cause: BaseException) -> None:
        super().__init__(f"function {function_name} failed (invocation {invocation_id})")
        self.invocation_id = invocation_id
        self.cause = cause


class InvocationLogFilter(logging.Filter):
    """Tags every record with the function invocation it was logged from (or `host`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.invocation = _invocation.get() or "host"
        return True


class Invoker:
    """Calls functions with prepared arguments and reports each invocation on one line."""

    def __init__(self, max_threads: int = 32) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="fn")

    async def run_sync(self, target: Callable[..., Any], *args: Any) -> Any:
        """Runs a blocking callable in the pool, keeping the caller's context variables."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._executor, functools.partial(context.run, target, *args)
        )

    async def invoke(
        self, function: FunctionInfo, trigger_label: str, arguments: dict[str, Any]
    ) -> Any:
        """Invokes `function` with keyword `arguments`; a raise becomes `InvocationFailed`."""
        invocation_id = uuid.uuid4().hex[:12]
        token = _invocation.set(f"{function.name}:{invocation_id}")
        started = time.perf_counter()
        outcome = "Succeeded"
        try:
            if function.is_async:
                return await function.user_function(**arguments)
            return await self.run_sync(functools.partial(function.user_function, **arguments))
        except asyncio.CancelledError:
            outcome = "Cancelled"
            raise
        except Exception as error:
            outcome = "Failed"
            raise InvocationFailed(function.name, invocation_id, error) from error
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            _invocation.reset(token)
            log.info(
                "Executed 'Functions.%s' (%s, trigger=%s, Id=%s, Duration=%.0fms)",
                function.name,
                outcome,
                trigger_label,
                invocation_id,
                elapsed_ms,
            )

    def close(self) -> None:
        """Stops the thread pool without waiting for stragglers."""
        self._executor.shutdown(wait=False, cancel_futures=True)
