"""The Durable HTTP API: public webhooks and the RPC endpoint `DurableOrchestrationClient` calls.

Two mounts share one set of handlers:
- `/runtime/webhooks/durabletask/...` for people and HTTP clients, behind the
  `durabletask_extension` system key (`?code=`), as in Azure;
- `{rpcBaseUrl}` for the SDK's client. Azure serves it on a private localhost port; here it shares
  the host's port, so its path carries a per-start secret instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from devhost.config import HostConfig, same_key
from devhost.durable import _protocol as p
from devhost.durable.engine import (
    DurableEngine,
    InstanceConflict,
    InstanceNotFound,
    UnknownOrchestrator,
)
from devhost.durable.store import Instance

WEBHOOK_ROOT = "/runtime/webhooks/durabletask"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text is not None else None


def status_payload(instance: Instance, show_input: bool, history: list[Any] | None) -> dict:
    """An instance as the status query reports it."""
    payload: dict[str, Any] = {
        "name": instance.name,
        "instanceId": instance.instance_id,
        "runtimeStatus": instance.status,
        "input": _loads(instance.input) if show_input else None,
        "customStatus": _loads(instance.custom_status),
        "output": _loads(instance.output),
        "createdTime": instance.created,
        "lastUpdatedTime": instance.updated,
    }
    if history is not None:
        payload["historyEvents"] = history
    return payload


class DurableHttpApi:
    """Serves the Durable HTTP API and builds the client binding JSON for client functions."""

    def __init__(self, engine: DurableEngine, config: HostConfig) -> None:
        self.engine = engine
        self.config = config
        self.rpc_root = f"/durabletask/{secrets.token_urlsafe(16)}"
        self.system_key = (
            config.keys.functions.get("durabletask_extension")
            or hmac.new(
                config.keys.master.encode(), b"durabletask_extension", hashlib.sha256
            ).hexdigest()
        )

    # Binding ----------------------------------------------------------------------------------

    def client_binding(self, task_hub: str | None = None) -> str:
        """The JSON the real host passes to `@app.durable_client_input` parameters."""
        hub = task_hub or self.config.task_hub
        base = f"{self.config.base_url}{WEBHOOK_ROOT}"
        query = f"taskHub={quote(hub)}&connection=Storage&code={self.system_key}"
        instance = f"{base}/instances/INSTANCEID"
        return json.dumps(
            {
                "taskHubName": hub,
                "creationUrls": {
                    "createNewInstancePostUri": f"{base}/orchestrators/{{functionName}}"
                    f"[/{{instanceId}}]?code={self.system_key}",
                    "createAndWaitOnNewInstancePostUri": f"{base}/orchestrators/{{functionName}}"
                    f"[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                    f"&pollingInterval={{intervalInSeconds}}&code={self.system_key}",
                },
                "managementUrls": self._management_urls(instance, query),
                "baseUrl": base,
                "requiredQueryStringParameters": f"code={self.system_key}",
                "rpcBaseUrl": f"{self.config.base_url}{self.rpc_root}/",
                "httpBaseUrl": "",
            }
        )

    @staticmethod
    def _management_urls(instance: str, query: str) -> dict[str, str]:
        return {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
        }

    def management_payload(self, instance_id: str) -> dict[str, str]:
        """The management URLs of one instance (what `create_check_status_response` returns)."""
        binding = json.loads(self.client_binding())
        return {
            key: value.replace("INSTANCEID", quote(instance_id, safe=""))
            for key, value in binding["managementUrls"].items()
        }

    # Routes -----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        """Mounts the API twice: keyed webhooks, and the secret-path RPC endpoint."""
        for root, guard in ((WEBHOOK_ROOT, self._require_key), (self.rpc_root, None)):
            encoded = root != WEBHOOK_ROOT
            for method, path, handler in self._table(encoded):
                app.router.add_route(method, root + path, self._guarded(handler, guard))

    def _table(self, encoded: bool) -> list[tuple[str, str, Handler]]:
        def start(request: web.Request) -> Awaitable[web.StreamResponse]:
            return self._start(request, encoded)

        def raise_event(request: web.Request) -> Awaitable[web.StreamResponse]:
            return self._raise_event(request, encoded)

        return [
            ("POST", "/orchestrators/{name}", start),
            ("POST", "/orchestrators/{name}/{instance_id}", start),
            ("GET", "/instances", self._list),
            ("GET", "/instances/", self._list),
            ("DELETE", "/instances", self._purge_by),
            ("DELETE", "/instances/", self._purge_by),
            ("GET", "/instances/{instance_id}", self._status),
            ("DELETE", "/instances/{instance_id}", self._purge),
            ("POST", "/instances/{instance_id}/raiseEvent/{event}", raise_event),
            ("POST", "/instances/{instance_id}/terminate", self._terminate),
            ("POST", "/instances/{instance_id}/suspend", self._suspend),
            ("POST", "/instances/{instance_id}/resume", self._resume),
        ]

    def _guarded(self, handler: Handler, guard: Callable[[web.Request], None] | None) -> Handler:
        async def serve(request: web.Request) -> web.StreamResponse:
            try:
                if guard:
                    guard(request)
                return await handler(request)
            except InstanceNotFound as error:
                return _json({"Message": str(error)}, 404)
            except UnknownOrchestrator as error:
                return _json({"ExceptionMessage": str(error), "Message": str(error)}, 400)
            except InstanceConflict as error:
                return _json({"ExceptionMessage": str(error), "Message": str(error)}, 409)
            except ValueError as error:
                return _json({"Message": str(error)}, 400)

        return serve

    def _require_key(self, request: web.Request) -> None:
        presented = request.query.get("code") or request.headers.get("x-functions-key", "")
        valid = (self.system_key, self.config.keys.master)
        if not any(same_key(presented, key) for key in valid):
            raise web.HTTPUnauthorized(
                text=json.dumps({"Message": "A valid durabletask_extension key is required."}),
                content_type="application/json",
            )

    @staticmethod
    async def _body_json(request: web.Request, encoded: bool) -> str | None:
        """The input as JSON text. The SDK's client JSON-encodes it once more (a JSON string)."""
        raw = await request.text()
        if not raw.strip():
            return None
        value = json.loads(raw)
        if encoded:
            return value if isinstance(value, str) or value is None else json.dumps(value)
        return json.dumps(value)

    async def _start(self, request: web.Request, encoded: bool) -> web.Response:
        input_json = await self._body_json(request, encoded)
        instance = self.engine.start(
            request.match_info["name"], request.match_info.get("instance_id"), input_json
        )
        payload = self.management_payload(instance.instance_id)
        return _json(
            payload,
            202,
            {"Location": payload["statusQueryGetUri"], "Retry-After": "10"},
        )

    async def _status(self, request: web.Request) -> web.Response:
        instance = self.engine.get(request.match_info["instance_id"])
        query = request.query
        history = None
        if query.get("showHistory", "").lower() == "true":
            history = self.engine.store.history(instance.instance_id)
        payload = status_payload(
            instance, query.get("showInput", "true").lower() != "false", history
        )
        return _json(payload, p.STATUS_HTTP_CODES.get(instance.status, 202))

    def _filtered(self, request: web.Request) -> list[Instance]:
        query = request.query
        statuses = [item for item in query.get("runtimeStatus", "").split(",") if item]
        return self.engine.store.list_instances(
            created_from=query.get("createdTimeFrom"),
            created_to=query.get("createdTimeTo"),
            statuses=statuses,
            prefix=query.get("instanceIdPrefix"),
        )

    async def _list(self, request: web.Request) -> web.Response:
        top = int(request.query.get("top", "0") or 0)
        instances = self._filtered(request)
        if top > 0:
            instances = instances[:top]
        return _json([status_payload(item, True, None) for item in instances])

    async def _purge(self, request: web.Request) -> web.Response:
        instance = self.engine.get(request.match_info["instance_id"])
        deleted = self.engine.purge([instance])
        return _json({"instancesDeleted": deleted}, 200 if deleted else 404)

    async def _purge_by(self, request: web.Request) -> web.Response:
        if not request.query.get("createdTimeFrom"):
            raise ValueError("createdTimeFrom is required to purge by query")
        deleted = self.engine.purge(self._filtered(request))
        return _json({"instancesDeleted": deleted}, 200 if deleted else 404)

    async def _raise_event(self, request: web.Request, encoded: bool) -> web.Response:
        input_json = await self._body_json(request, encoded)
        try:
            self.engine.raise_event(
                request.match_info["instance_id"], request.match_info["event"], input_json
            )
        except InstanceConflict as error:
            return _json({"Message": str(error)}, 410)
        return web.Response(status=202)

    async def _terminate(self, request: web.Request) -> web.Response:
        changed = self.engine.terminate(
            request.match_info["instance_id"], request.query.get("reason", "")
        )
        return web.Response(status=202 if changed else 410)

    async def _suspend(self, request: web.Request) -> web.Response:
        changed = self.engine.set_suspended(request.match_info["instance_id"], True)
        return web.Response(status=202 if changed else 410)

    async def _resume(self, request: web.Request) -> web.Response:
        changed = self.engine.set_suspended(request.match_info["instance_id"], False)
        return web.Response(status=202 if changed else 410)
