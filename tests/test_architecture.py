"""The architecture's rules, checked: no import cycle, and no side effect on import."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from shared.config import SETTINGS, load_settings
from shared.services import CONTAINERS, blob_containers, cosmos_containers

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("function_app.py", "shared", "activities", "orchestrators", "devhost")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each project module -> the project modules it imports anywhere in it (in functions and
    under TYPE_CHECKING too: a cycle there is still a cycle in the design)."""
    files = [
        path
        for root in PACKAGES
        for path in ([ROOT / root] if root.endswith(".py") else sorted((ROOT / root).rglob("*.py")))
    ]
    modules = {module_name(path): path for path in files}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_there_is_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_importing_function_app_only_declares_functions() -> None:
    environment = {
        **os.environ,
        "COSMOS_ENDPOINT": "https://127.0.0.1:9",  # nothing listens: a connection would fail
        "AzureWebJobsStorage": "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;"
        "BlobEndpoint=http://127.0.0.1:9/x;",
        "DOCGATE_CREATE_RESOURCES": "true",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    probe = (
        "import json, function_app, shared.services as s, shared.telemetry as t\n"
        "from opentelemetry import trace\n"
        "print(json.dumps({'services': s._services is None, 'telemetry': t._configured,"
        " 'provider': type(trace.get_tracer_provider()).__name__,"
        " 'functions': len(function_app.app.get_functions())}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["services"] is True  # no client, store or resource was created
    assert state["telemetry"] is None  # no exporter or provider installed
    assert state["provider"] == "ProxyTracerProvider"
    assert state["functions"] > 20


def test_settings_and_containers_can_be_enumerated_for_the_deployment() -> None:
    assert len({setting.env for setting in SETTINGS}) == len(SETTINGS)
    settings = load_settings({"COSMOS_ENDPOINT": "https://x:443/", "AzureWebJobsStorage": "x"})
    specs = cosmos_containers(settings)
    assert len({spec.name for spec in specs}) == len(specs) == len(CONTAINERS) + 1
    assert all(spec.partition_key_path.startswith("/") for spec in specs)
    assert blob_containers(settings) == ("uploads", "ingest-work")
