"""Indexes a Python v2 function app into plain descriptions the host's parts can serve."""

from __future__ import annotations

import enum
import importlib
import inspect
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

HTTP_TRIGGER = "httpTrigger"
BLOB_TRIGGER = "blobTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
WARMUP_TRIGGER = "warmupTrigger"
SUPPORTED_TRIGGERS = frozenset(
    {
        HTTP_TRIGGER,
        BLOB_TRIGGER,
        TIMER_TRIGGER,
        ORCHESTRATION_TRIGGER,
        ACTIVITY_TRIGGER,
        WARMUP_TRIGGER,
    }
)
INIT_INDEXING_SETTING = "PYTHON_ENABLE_INIT_INDEXING"
DURABLE_CLIENT = "durableClient"
HTTP_OUTPUT = "http"


class AppIndexError(Exception):
    """The app cannot be served: it failed to import or uses a binding the host lacks."""


@dataclass(frozen=True)
class FunctionInfo:
    """One indexed function: its trigger, its extra bindings and the callable to invoke."""

    name: str
    trigger_type: str
    trigger_arg: str
    trigger: dict[str, Any]
    user_function: Callable[..., Any]
    is_async: bool
    durable_client_arg: str | None = None
    durable_client: dict[str, Any] = field(default_factory=dict)
    http_streams: bool = False  # an HTTP function taking the HTTP streams extension's Request


def _plain(value: Any) -> Any:
    """Turns the SDK's enums (auth level, methods, direction) into their wire values."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def find_app(module: Any) -> func.FunctionRegister:
    """Returns the module's one `FunctionApp`/`DFApp` instance, as the real worker does."""
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    if len(apps) != 1:
        raise AppIndexError(
            f"{module.__name__} must define exactly one FunctionApp; found {len(apps)}"
        )
    return apps[0]


def _describe(function: Any) -> FunctionInfo:
    trigger = function.get_trigger()
    if trigger is None:
        raise AppIndexError(f"function {function.get_function_name()} has no trigger")
    trigger_repr = _plain(trigger.get_dict_repr())
    trigger_type = trigger_repr["type"]
    name = function.get_function_name()
    if trigger_type not in SUPPORTED_TRIGGERS:
        raise AppIndexError(f"function {name}: trigger type {trigger_type!r} is not supported")
    client_arg = None
    client_repr: dict[str, Any] = {}
    for binding in function.get_bindings():
        binding_repr = _plain(binding.get_dict_repr())
        kind = binding_repr["type"]
        if kind == DURABLE_CLIENT:
            client_arg, client_repr = binding_repr["name"], binding_repr
        elif kind not in (trigger_type, HTTP_OUTPUT):
            raise AppIndexError(f"function {name}: binding type {kind!r} is not supported")
    user_function = function.get_user_function()
    streams = trigger_type == HTTP_TRIGGER and takes_streams_request(
        user_function, trigger_repr["name"]
    )
    return FunctionInfo(
        name=name,
        trigger_type=trigger_type,
        trigger_arg=trigger_repr["name"],
        trigger=trigger_repr,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        durable_client_arg=client_arg,
        durable_client=client_repr,
        http_streams=streams,
    )


def takes_streams_request(user_function: Callable[..., Any], argument: str) -> bool:
    """Whether the function's request parameter is the HTTP streams extension's Request type
    (`azurefunctions-extensions-http-fastapi`), the check the Python worker makes."""
    try:
        from azurefunctions.extensions.base import RequestTrackerMeta
    except ImportError:  # the extension is not installed: classic HttpRequest only
        return False
    try:
        annotation = typing.get_type_hints(user_function).get(argument)
    except Exception:  # unresolvable annotations: the worker would not see the type either
        annotation = inspect.signature(user_function).parameters[argument].annotation
    return RequestTrackerMeta.check_type(annotation)


def check_http_streams(functions: list[FunctionInfo], environ: Mapping[str, str]) -> None:
    """Like the worker: once an app uses HTTP streams every HTTP function must, and the
    worker's init indexing must be on (without it the real host never proxies to the worker)."""
    http = [f for f in functions if f.trigger_type == HTTP_TRIGGER]
    streaming = [f.name for f in http if f.http_streams]
    if not streaming:
        return
    classic = [f.name for f in http if not f.http_streams]
    if classic:
        raise AppIndexError(
            f"functions {classic} take func.HttpRequest but {streaming} use HTTP streams: with "
            "the azurefunctions-extensions-http-fastapi extension every HTTP function of the "
            "app receives its Request type"
        )
    if environ.get(INIT_INDEXING_SETTING, "").strip().lower() not in ("1", "true"):
        raise AppIndexError(
            f"the app uses HTTP streams, which need the app setting {INIT_INDEXING_SETTING}=1 "
            "(set it in local.settings.json Values, and in the Azure app settings)"
        )


def load_functions(app_dir: Path, module_name: str = "function_app") -> list[FunctionInfo]:
    """Imports `module_name` from `app_dir` and indexes it with `get_functions()` (once)."""
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise AppIndexError(f"importing {module_name} failed: {error}") from error
    app = find_app(module)
    functions = [_describe(function) for function in app.get_functions()]
    check_http_streams(functions, os.environ)
    return functions
