"""No 500 for a client's mistake: every field of every route's body and query model, sent with
values of the wrong type (or out of range), is a 4xx naming that field, never a 500.

The routes and their models come from the app's own route table (`function_app.api.routes`,
read in a subprocess: importing the app reads settings) as JSON schemas; the wrong values are
derived from each field's schema, not listed by hand. Each route's schema example is the valid
base every wrong value is planted in, and it is itself accepted.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import pytest

from devhost.testing import HostProcess
from tests.apphost import ROOT, app_environment, request, start_app
from tests.conftest import EmulatorEndpoints

pytestmark = pytest.mark.emulators

ROUTE_TABLE = """
import json, function_app
print(json.dumps([
    {"path": r.path, "methods": list(r.methods), "openai": r.render is not None,
     "body": r.inputs.body.model_json_schema() if r.inputs.body else None,
     "query": r.inputs.query.model_json_schema() if r.inputs.query else None}
    for r in function_app.api.routes
]))
"""
# One sample of each JSON type: a field refuses every sample whose type its schema lacks.
SAMPLES: dict[str, Any] = {
    "string": "text",
    "integer": 7,
    "number": 0.5,
    "boolean": True,
    "null": None,
    "array": [1],
    "object": {"a": 1},
}
Path_ = tuple[str | int, ...]


def route_table() -> list[dict[str, Any]]:
    environment = {
        **os.environ,
        "COSMOS_ENDPOINT": "https://127.0.0.1:9",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    }
    done = subprocess.run(
        [sys.executable, "-c", ROUTE_TABLE], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def branches(schema: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's alternatives (anyOf), each resolved."""
    schema = resolve(schema, defs)
    if "anyOf" in schema:
        return [b for option in schema["anyOf"] for b in branches(option, defs)]
    return [schema]


def accepted_types(schema: dict[str, Any], defs: dict[str, Any]) -> set[str]:
    types: set[str] = set()
    for branch in branches(schema, defs):
        kind = branch.get("type", "object" if "properties" in branch else None)
        types.update(kind if isinstance(kind, list) else [kind] if kind else SAMPLES)
    if "number" in types:
        types.add("integer")  # 7 is a number
    return types


def wrong_json_values(schema: dict[str, Any], defs: dict[str, Any]) -> list[Any]:
    """Values of every JSON type the field does not take, and of its type but out of bounds."""
    accepted = accepted_types(schema, defs)
    wrong = [sample for kind, sample in SAMPLES.items() if kind not in accepted]
    for branch in branches(schema, defs):
        if "enum" in branch or "const" in branch:
            wrong.append("not-one-of-the-choices")
        if "minimum" in branch:
            wrong.append(branch["minimum"] - 1)
        if "maximum" in branch:
            wrong.append(branch["maximum"] + 1)
        if branch.get("type") == "integer" and "number" not in accepted:
            wrong.append(1.5)
        if "maxLength" in branch:
            wrong.append("x" * (branch["maxLength"] + 1))
        if "minItems" in branch:
            wrong.append([])
    return wrong


def wrong_query_values(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """Query-string text the field cannot hold."""
    wrong: list[str] = []
    for branch in branches(schema, defs):
        kind = branch.get("type")
        if kind in ("integer", "number"):
            wrong += ["seven", "1e400", "nan", "inf"]
        if kind == "integer":
            wrong += ["1.5", "99999999999999999999999999"]
        if "minimum" in branch:
            wrong.append(str(branch["minimum"] - 1))
        if "maximum" in branch:
            wrong.append(str(branch["maximum"] + 1))
        if branch.get("format") == "date-time":
            wrong += ["yesterday", "1700000000"]
            wrong += ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]  # not in UTC
        if "maxLength" in branch:
            wrong.append("x" * (branch["maxLength"] + 1))
        if "pattern" in branch:
            wrong.append("not/the-pattern")
    return wrong


def fields(schema: dict[str, Any], defs: dict[str, Any], at: Path_ = ()) -> Iterator[tuple]:
    """(path, schema) of every field, nested objects and the first item of arrays included."""
    for branch in branches(schema, defs):
        for name, child in branch.get("properties", {}).items():
            yield (*at, name), child
            yield from fields(child, defs, (*at, name))
        if branch.get("type") == "array" and at:
            yield from fields(branch["items"], defs, (*at, 0))


def planted(base: Any, path: Path_, value: Any) -> Any:
    """`base` with `value` at `path` (missing parent objects created empty)."""
    body = deepcopy(base)
    node = body
    for step in path[:-1]:
        if isinstance(step, str) and not isinstance(node.get(step), dict | list):
            node[step] = {}
        node = node[step]
    node[path[-1]] = value
    return body


def param_of(status: int, headers: dict[str, str], body: Any, openai: bool) -> Any:
    assert 400 <= status < 500, (status, body)
    content_type = headers.get("Content-Type", headers.get("content-type", ""))
    if openai:
        assert content_type.startswith("application/json"), content_type
        return body["error"]["param"]
    assert content_type.startswith("application/problem+json"), content_type
    assert body["status"] == status and body["detail"]
    return body.get("param")


def url_of(route: dict[str, Any]) -> str:
    """The route's URL, path parameters filled with ids that name nothing."""
    return "/api/" + re.sub(r"\{[^}]+\}", "0123456789abcdef", route["path"])


def dotted(path: Path_) -> str:
    return ".".join(str(step) for step in path)


@pytest.fixture(scope="module")
def host(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[HostProcess]:
    folder = tmp_path_factory.mktemp("inputs")
    running = start_app(folder, app_environment(emulators, f"t-inputs-{os.getpid()}"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def routes() -> list[dict[str, Any]]:
    return route_table()


def body_cases(routes: list[dict[str, Any]]) -> Iterator[tuple[dict, Path_, Any]]:
    for route in routes:
        schema = route["body"]
        if schema:
            defs = schema.get("$defs", {})
            for path, child in fields(schema, defs):
                for value in wrong_json_values(child, defs):
                    yield route, path, value


def test_the_route_table_declares_the_models_of_every_json_and_query_input(
    routes: list[dict[str, Any]],
) -> None:
    declared = {(r["path"], m) for r in routes for m in r["methods"] if r["body"] or r["query"]}
    assert {
        ("chat", "POST"),
        ("v1/chat/completions", "POST"),
        ("documents", "POST"),
        ("usage", "GET"),
        ("audit", "GET"),
    } <= declared
    for route in routes:
        if route["body"]:
            assert route["body"]["examples"], f"{route['path']}: its body model needs an example"


def test_every_type_wrong_body_field_is_a_4xx_naming_it(
    host: HostProcess, routes: list[dict[str, Any]]
) -> None:
    cases = list(body_cases(routes))
    assert len(cases) > 60  # derived from the models: every field, several wrong values each
    for route in {id(r): r for r, _, _ in cases}.values():
        base = route["body"]["examples"][0]
        status, _, answer = request(
            host, route["methods"][0], url_of(route), json.dumps(base).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        # Valid: served (or, for a document that does not exist, 404 after validation).
        assert status == (404 if "{" in route["path"] else 200), (route["path"], answer)
    failures = []
    for route, path, value in cases:
        body = planted(route["body"]["examples"][0], path, value)
        status, headers, answer = request(
            host, route["methods"][0], url_of(route), json.dumps(body).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            param = param_of(status, headers, answer, route["openai"])
            assert param == dotted(path), param
        except (AssertionError, KeyError, TypeError) as error:
            failures.append((route["path"], dotted(path), repr(value)[:40], status, str(error)))
    assert not failures, "\n".join(map(str, failures))


def test_every_wrong_query_parameter_is_a_4xx_naming_it(
    host: HostProcess, routes: list[dict[str, Any]]
) -> None:
    cases = []
    for route in routes:
        schema = route["query"]
        if not schema:
            continue
        defs = schema.get("$defs", {})
        for name, child in schema["properties"].items():
            for value in wrong_query_values(child, defs):
                cases.append((route, [(name, value)], name))
            cases.append((route, [(name, "1"), (name, "2")], name))  # given twice
        cases.append((route, [("no_such_parameter", "1")], "no_such_parameter"))
    assert len(cases) > 30
    failures = []
    for route, pairs, name in cases:
        method = route["methods"][0]
        body = b"hello" if method == "POST" else None
        url = f"{url_of(route)}?{urllib.parse.urlencode(pairs)}"
        status, headers, answer = request(host, method, url, body)
        try:
            assert param_of(status, headers, answer, route["openai"]) == name
        except (AssertionError, KeyError, TypeError) as error:
            failures.append((route["path"], pairs, status, str(error)[:300]))
    assert not failures, "\n".join(map(str, failures))


def chat_body(**extra: Any) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "Refunds?"}], **extra}).encode()


PART_TEXT = "messages.0.content.0.text"
TEXT_5 = [{"role": "user", "content": [{"type": "text", "text": 5}]}]
TEXT_NULL = [{"role": "user", "content": [{"type": "text", "text": None}]}]
ISSUE_EXAMPLES = [  # issue 9, finding 7: each was a 500 or silently accepted
    ("POST", "/api/chat", json.dumps({"messages": TEXT_5}).encode(), PART_TEXT),
    ("POST", "/api/chat", json.dumps({"messages": TEXT_NULL}).encode(), PART_TEXT),
    ("POST", "/api/v1/chat/completions", json.dumps({"messages": TEXT_5}).encode(),
     PART_TEXT),
    ("POST", "/api/v1/chat/completions", chat_body(docgate={"cache": "bogus"}), "docgate.cache"),
    ("POST", "/api/v1/chat/completions", chat_body(temperature=True), "temperature"),
    ("POST", "/api/v1/chat/completions", chat_body(stream="yes"), "stream"),
    ("GET", "/api/audit?since=0001-01-01T00:00:00%2B01:00", None, "since"),
    ("GET", "/api/audit?until=9999-12-31T23:59:59-01:00", None, "until"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "param"), ISSUE_EXAMPLES)
def test_the_reported_mistakes_are_4xx(
    host: HostProcess, method: str, path: str, body: bytes | None, param: str
) -> None:
    headers = {"Content-Type": "application/json"} if body else {}
    status, got, answer = request(host, method, path, body, headers)
    assert status == 400, answer
    assert param_of(status, got, answer, openai="/v1/" in path) == param


def test_a_multipart_upload_with_two_files_is_refused(host: HostProcess) -> None:
    boundary = "docgate-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: text/plain\r\n\r\n{text}\r\n"
        for name, text in (("a.txt", "first file"), ("b.txt", "second file"))
    ]
    body = ("".join(parts) + f"--{boundary}--\r\n").encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    status, _, answer = request(
        host, "POST", "/api/documents", body, {"Content-Type": content_type}
    )
    assert status == 400, answer
    assert "one file" in answer["detail"]
    status, _, listed = request(host, "GET", "/api/documents")
    assert status == 200 and listed["documents"] == []  # neither was kept
