"""Indexes a Python v2 function app into plain descriptions the host's parts can serve."""

from __future__ import annotations

import enum
import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

HTTP_TRIGGER = "httpTrigger"
BLOB_TRIGGER = "blobTrigger"
TIMER_TRIGGER = "timerTrigger"
ORCHESTRATION_TRIGGER = "orchestrationTrigger"
ACTIVITY_TRIGGER = "activityTrigger"
SUPPORTED_TRIGGERS = frozenset(
    {HTTP_TRIGGER, BLOB_TRIGGER, TIMER_TRIGGER, ORCHESTRATION_TRIGGER, ACTIVITY_TRIGGER}
)
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
    return FunctionInfo(
        name=name,
        trigger_type=trigger_type,
        trigger_arg=trigger_repr["name"],
        trigger=trigger_repr,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        durable_client_arg=client_arg,
        durable_client=client_repr,
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
    return [_describe(function) for function in app.get_functions()]
