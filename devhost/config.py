"""The host's own configuration: `host.json`, `local.settings.json` and the function keys."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the platform's own request body limit


class HostConfigError(Exception):
    """`host.json` or `local.settings.json` is missing something the host needs."""


class UnsetAppSetting(HostConfigError):
    """A binding expression names an app setting that is not set."""


def expand_app_settings(text: str, environ: Mapping[str, str]) -> str:
    """Resolves `%Setting%` references, as the host does in binding expressions."""

    def lookup(found: re.Match[str]) -> str:
        value = environ.get(found.group(1))
        if value is None:
            raise UnsetAppSetting(f"app setting {found.group(1)!r} (used in {text!r}) is not set")
        return value

    return re.sub(r"%([^%]+)%", lookup, text)


def same_key(presented: str | None, key: str) -> bool:
    """Whether a presented key equals `key`, in constant time. Any text may be presented
    (`?code=ключ`, raw header bytes): compared as bytes, never an error."""
    if not presented:
        return False
    encode = "utf-8", "surrogateescape"  # aiohttp keeps undecodable header bytes as surrogates
    return secrets.compare_digest(presented.encode(*encode), key.encode(*encode))


@dataclass(frozen=True)
class HostKeys:
    """Keys accepted by `function` and `admin` auth levels, like the real host's key store."""

    master: str
    default: str
    functions: dict[str, str] = field(default_factory=dict)

    def accepts(self, auth_level: str, function_name: str, presented: str | None) -> bool:
        """Whether `presented` opens a function with `auth_level` (anonymous needs none)."""
        if auth_level == "anonymous":
            return True
        if same_key(presented, self.master):
            return True
        if auth_level == "admin":
            return False
        function_key = self.functions.get(function_name)
        return same_key(presented, self.default) or bool(
            function_key and same_key(presented, function_key)
        )


@dataclass(frozen=True)
class HostConfig:
    """Everything the host's parts read: paths, the listening address and `host.json` values."""

    app_dir: Path
    data_dir: Path
    keys: HostKeys
    listen_host: str = "127.0.0.1"
    port: int = 7071
    route_prefix: str = "api"
    task_hub: str = "DevHostHub"
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_concurrent_activities: int = 10
    max_concurrent_orchestrations: int = 10
    blob_poll_seconds: float = 2.0
    host_id: str = "devhost"
    host_json: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """The URL clients use to reach the host."""
        return f"http://{self.listen_host}:{self.port}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise HostConfigError(f"{path} is not valid JSON: {error}") from error


def load_local_settings(path: Path) -> dict[str, Any]:
    """Reads `local.settings.json` and exports its `Values`; real environment variables win."""
    if not path.exists():
        return {}
    settings = _read_json(path)
    for name, value in (settings.get("Values") or {}).items():
        os.environ.setdefault(name, "" if value is None else str(value))
    return settings


def _new_key() -> str:
    return secrets.token_urlsafe(32)


def load_keys(path: Path, local_settings: dict[str, Any]) -> HostKeys:
    """Keys from `local.settings.json` `Keys`; generated and saved there on first start."""
    keys = local_settings.get("Keys")
    if not keys:
        keys = {"master": _new_key(), "default": _new_key(), "functions": {}}
        if path.exists():
            path.write_text(json.dumps({**local_settings, "Keys": keys}, indent=2) + "\n")
    try:
        return HostKeys(
            master=keys["master"], default=keys["default"], functions=keys.get("functions", {})
        )
    except KeyError as error:
        raise HostConfigError(f"local.settings.json Keys lacks {error.args[0]!r}") from error


def load_host_config(
    app_dir: Path,
    data_dir: Path | None = None,
    port: int = 7071,
    host: str = "127.0.0.1",
    settings_file: Path | None = None,
) -> HostConfig:
    """Builds the host configuration from the app folder's files."""
    host_json_path = app_dir / "host.json"
    if not host_json_path.exists():
        raise HostConfigError(f"{host_json_path} is missing: every function app needs one")
    host_json = _read_json(host_json_path)
    settings_path = settings_file or app_dir / "local.settings.json"
    local_settings = load_local_settings(settings_path)
    extensions = host_json.get("extensions", {})
    http = extensions.get("http", {})
    durable = extensions.get("durableTask", {})
    return HostConfig(
        app_dir=app_dir,
        data_dir=data_dir or app_dir / ".devhost",
        keys=load_keys(settings_path, local_settings),
        listen_host=host,
        port=port,
        route_prefix=str(http.get("routePrefix", "api")).strip("/"),
        task_hub=str(durable.get("hubName", "DevHostHub")),
        max_concurrent_activities=int(durable.get("maxConcurrentActivityFunctions", 10)),
        max_concurrent_orchestrations=int(durable.get("maxConcurrentOrchestratorFunctions", 10)),
        blob_poll_seconds=float(os.environ.get("DEVHOST_BLOB_POLL_SECONDS", "2")),
        host_json=host_json,
    )
