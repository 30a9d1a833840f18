"""Composes the local Functions host: one asyncio loop serving every trigger of one app."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from aiohttp import web

from devhost.config import HostConfig, load_host_config
from devhost.durable.api import DurableHttpApi
from devhost.durable.engine import DurableEngine
from devhost.functions import (
    ACTIVITY_TRIGGER,
    BLOB_TRIGGER,
    HTTP_TRIGGER,
    ORCHESTRATION_TRIGGER,
    TIMER_TRIGGER,
    WARMUP_TRIGGER,
    FunctionInfo,
    load_functions,
)
from devhost.invoker import InvocationLogFilter, Invoker

log = logging.getLogger("devhost")


class HostLockedError(Exception):
    """Another host already serves this data folder."""


def configure_logging(level: int = logging.INFO) -> None:
    """One readable line per record, tagged with the invocation that logged it."""
    handler = logging.StreamHandler()
    handler.addFilter(InvocationLogFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s [%(invocation)s] %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "host.lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise HostLockedError(f"another devhost is already using {data_dir}") from error
    return handle


def describe_functions(config: HostConfig, functions: list[FunctionInfo]) -> list[str]:
    """The start-up listing of functions, like `func start` prints."""
    lines = []
    for function in functions:
        trigger = function.trigger
        if function.trigger_type == HTTP_TRIGGER:
            methods = ",".join(trigger.get("methods") or ["ALL"])
            prefix = f"/{config.route_prefix}" if config.route_prefix else ""
            route = trigger.get("route") or function.name
            lines.append(f"{function.name}: [{methods}] {config.base_url}{prefix}/{route}")
        elif function.trigger_type == BLOB_TRIGGER:
            lines.append(f"{function.name}: blobTrigger ({trigger['path']})")
        elif function.trigger_type == TIMER_TRIGGER:
            lines.append(f"{function.name}: timerTrigger ({trigger['schedule']})")
        elif function.trigger_type == WARMUP_TRIGGER:
            lines.append(f"{function.name}: warmupTrigger (once, before serving)")
        else:
            lines.append(f"{function.name}: {function.trigger_type}")
    return lines


async def _close_durable_client_session() -> None:
    """Closes the Durable SDK's module-level aiohttp session, as the worker's shutdown does."""
    http_utils = sys.modules.get("azure.durable_functions.models.utils.http_utils")
    close = getattr(http_utils, "_close_session", None)  # private; absent: nothing to close
    if close is not None:
        await close()


class DevHost:
    """Owns the loop's long-lived parts: the web server, the durable engine, pollers, timers."""

    def __init__(self, config: HostConfig, functions: list[FunctionInfo]) -> None:
        self.config = config
        self.functions = functions
        self.invoker = Invoker()
        self.engine: DurableEngine | None = None
        self.durable_api: DurableHttpApi | None = None
        durable_kinds = {ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER}
        if any(f.trigger_type in durable_kinds or f.durable_client_arg for f in functions):
            self.engine = DurableEngine(config, functions, self.invoker)
            self.durable_api = DurableHttpApi(self.engine, config)

    def client_binding(self) -> Callable[[FunctionInfo], str] | None:
        """What durable-client parameters receive, when the app uses Durable Functions."""
        api = self.durable_api
        if api is None:
            return None
        return lambda function: api.client_binding(function.durable_client.get("taskHub"))

    def build_web_app(self) -> web.Application:
        """The HTTP surface: host routes first, then the app's functions."""
        from devhost.http_server import create_web_app

        app = create_web_app(self.config, self.functions, self.invoker, self.client_binding())
        if self.durable_api:
            self.durable_api.add_routes(app)
        from devhost import dev_signin
        from devhost.dev_issuer import mount as mount_dev_issuer

        issuer = mount_dev_issuer(app, self.config.data_dir, self.config.base_url)
        if issuer is not None:  # refused in Azure, and the console's sign-in with it
            dev_signin.add_routes(app, issuer)
        return app

    def background_services(self) -> list[Callable[[], object]]:
        """The long-running coroutines besides the web server."""
        services: list[Callable[[], object]] = []
        if self.engine:
            services.append(self.engine.run)
        kinds = {f.trigger_type for f in self.functions}
        if BLOB_TRIGGER in kinds:
            from devhost.blob_trigger import BlobTriggerPoller, read_blob_options

            poller = BlobTriggerPoller(
                self.config,
                self.functions,
                self.invoker,
                self.client_binding(),
                read_blob_options(self.config.host_json),
            )
            services.append(poller.run)
        if TIMER_TRIGGER in kinds:
            from devhost.timer_trigger import TimerScheduler

            scheduler = TimerScheduler(
                self.config, self.functions, self.invoker, self.client_binding()
            )
            services.append(scheduler.run)
        return services

    async def warm_up(self) -> None:
        """Runs the app's warm-up function, as the platform does for a new instance before it
        routes traffic there; a failure is logged and the host serves anyway."""
        from azure.functions.warmup import WarmUpContext

        for function in self.functions:
            if function.trigger_type == WARMUP_TRIGGER:
                try:
                    arguments = {function.trigger_arg: WarmUpContext()}
                    await self.invoker.invoke(function, "warmup", arguments)
                except Exception:
                    log.exception("The warm-up function %s failed", function.name)

    async def serve(self, stop: asyncio.Event) -> None:
        """Serves until `stop` is set, then shuts everything down."""
        services = self.background_services()  # configuration errors surface before serving
        await self.warm_up()
        from devhost.http_server import HostRunner

        runner = HostRunner(self.build_web_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.listen_host, self.config.port)
        await site.start()
        tasks = [asyncio.create_task(service()) for service in services]  # type: ignore[arg-type]
        for line in describe_functions(self.config, self.functions):
            log.info("  %s", line)
        log.info("Host started on %s (Ctrl-C stops it)", self.config.base_url)
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not waiter and task.exception():
                log.error("A host service stopped", exc_info=task.exception())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        waiter.cancel()
        await runner.cleanup()
        await _close_durable_client_session()
        if self.engine:
            self.engine.close()
        self.invoker.close()
        log.info("Host stopped")


async def _run(config: HostConfig, module_name: str) -> None:
    functions = load_functions(config.app_dir, module_name)
    host = DevHost(config, functions)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await host.serve(stop)


def run_host(
    app_dir: Path,
    port: int = 7071,
    data_dir: Path | None = None,
    module_name: str = "function_app",
    listen_host: str = "127.0.0.1",
    settings_file: Path | None = None,
) -> None:
    """Loads the app in `app_dir` and serves it until SIGINT/SIGTERM."""
    config = load_host_config(app_dir.resolve(), data_dir, port, listen_host, settings_file)
    lock = _lock_data_dir(config.data_dir)
    try:
        asyncio.run(_run(config, module_name))
    finally:
        with contextlib.suppress(OSError):
            lock.close()
