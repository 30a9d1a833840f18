"""Grounded chat end to end, offline (extractive answerer), through our API and OpenAI clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from shared.llm.prompts import NOT_FOUND_ANSWER
from tests.apphost import API_KEYS, request
from tests.conftest import EmulatorEndpoints
from tests.fixtures import documents
from tests.test_ingestion import Deployment, deploy

pytestmark = pytest.mark.emulators

REVENUE_NOTES = (
    "Finance summary\n\n"
    "Revenue in 2022 was 4.1 million euros, driven by container handling.\n\n"
    "Revenue in 2023 was 5.3 million euros after the new cranes came online.\n\n"
    "Operating costs stayed flat at 2.0 million euros in both years.\n"
)


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[Deployment]:
    for deployment in deploy(tmp_path_factory.mktemp("chat"), emulators):
        uploads = {
            "report.pdf": documents.report_pdf(),
            "finance.txt": REVENUE_NOTES.encode(),
            "handbook.docx": documents.docx_document(),
        }
        ids = {name: deployment.upload(f"kb/{name}", content) for name, content in uploads.items()}
        for doc_id in ids.values():
            assert deployment.wait_done(doc_id)["state"] == "succeeded"
        deployment.ids = ids  # type: ignore[attr-defined]
        yield deployment


def ask(app: Deployment, messages: list[dict[str, str]], tenant: str = "contoso", **extra: Any):
    body = json.dumps({"messages": messages, **extra}).encode()
    return request(
        app.host, "POST", "/api/chat", body=body,
        headers={"content-type": "application/json"}, tenant=tenant,
    )  # fmt: skip


def page_of(app: Deployment, doc_id: str, words: str) -> list[int]:
    return next(chunk["pages"] for chunk in app.chunks(doc_id) if words in chunk["text"])


def test_answer_is_grounded_and_cites_document_and_page(app: Deployment) -> None:
    fleet = documents.REPORT_SECTIONS[0][1]  # "The fleet grew to forty vessels ..."
    status, headers, body = ask(
        app, [{"role": "user", "content": "How many vessels are in the fleet?"}]
    )
    assert status == 200, body
    assert "forty vessels" in body["answer"]
    assert body["model"] == "local-extractive" and body["region"] == "local"
    citation = body["citations"][0]
    assert citation["document_id"] == app.ids["report.pdf"]
    assert citation["document_name"] == "kb/report.pdf"
    assert citation["page"] in page_of(app, app.ids["report.pdf"], fleet)
    assert "forty vessels" in citation["quote"]
    assert f"[{citation['number']}]" in body["answer"]
    assert body["usage"]["prompt_tokens"] > 0 and body["cached"] is False and body["trace_id"]
    assert headers["x-docgate-model"] == "local-extractive"
    assert headers["x-docgate-region"] == "local"
    assert headers["x-docgate-cache"] == "miss"
    assert float(headers["x-docgate-overhead-ms"]) >= 0


def test_nothing_relevant_says_so_instead_of_inventing(app: Deployment) -> None:
    status, _, body = ask(app, [{"role": "user", "content": "Who painted the Mona Lisa in 1503?"}])
    assert status == 200, body
    assert body["answer"] == NOT_FOUND_ANSWER
    assert body["citations"] == []


def test_follow_up_is_condensed_before_retrieval(app: Deployment) -> None:
    messages = [
        {"role": "user", "content": "What was revenue in 2022?"},
        {"role": "assistant", "content": "Revenue in 2022 was 4.1 million euros [1]."},
        {"role": "user", "content": "and in 2023?"},
    ]
    status, _, body = ask(app, messages)
    assert status == 200, body
    assert "5.3 million" in body["answer"]
    assert body["citations"][0]["document_id"] == app.ids["finance.txt"]


def test_another_tenant_sees_nothing_of_these_documents(app: Deployment) -> None:
    status, _, body = ask(
        app, [{"role": "user", "content": "How many vessels are in the fleet?"}], tenant="fabrikam"
    )
    assert status == 200, body
    assert body["citations"] == [] and body["answer"] == NOT_FOUND_ANSWER


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"messages": []}', "application/json", 400),
        (b'{"messages": [{"role": "user", "content": "hi"}], "top_k": 0}', "application/json", 400),
        (b'{"messages": [{"role": "robot", "content": "hi"}]}', "application/json", 400),
        (
            b'{"messages": [{"role": "user", "content": "hi"}], "filters": {"$where": 1}}',
            "application/json",
            400,
        ),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "text/plain", 415),
    ],
)
def test_bad_chat_requests_are_problem_json(
    app: Deployment, body: bytes, content_type: str, status: int
) -> None:
    code, headers, problem = request(
        app.host, "POST", "/api/chat", body=body, headers={"content-type": content_type}
    )
    assert code == status, problem
    assert headers["Content-Type"].startswith("application/problem+json")
    assert problem["detail"]


# OpenAI clients, unmodified.


FRESH = {"Cache-Control": "no-cache"}


def openai_client(app: Deployment, tenant: str = "contoso") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.host.base_url}/api/v1", api_key=API_KEYS[tenant])


def test_chat_streams_delta_events_then_the_whole_answer(app: Deployment) -> None:
    question = [{"role": "user", "content": "What was revenue in 2023?"}]
    status, headers, raw = ask(app, question, stream=True, cache="no-store")
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1][6:]))
        for block in raw.decode().strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[-1] == "done" and set(names[:-1]) == {"delta"} and len(names) > 2
    done = events[-1][1]
    assert "".join(data["text"] for _, data in events[:-1]) == done["answer"]
    assert "5.3 million" in done["answer"]
    assert done["citations"] and done["model"] == headers["x-docgate-model"]
    plain = ask(app, question, cache="no-store")[2]
    assert {key: plain[key] for key in ("answer", "citations", "tier")} == {
        key: done[key] for key in ("answer", "citations", "tier")
    }


def test_a_refused_stream_is_a_problem_before_any_event(app: Deployment) -> None:
    status, headers, problem = ask(app, [{"role": "assistant", "content": "hi"}], stream=True)
    assert status == 400 and headers["Content-Type"] == "application/problem+json"
    assert "user message" in problem["detail"]


def test_openai_sdk_chat_completion_carries_citations(app: Deployment) -> None:
    completion = openai_client(app).chat.completions.create(
        model="docgate",
        messages=[{"role": "user", "content": "How many vessels are in the fleet?"}],
        extra_headers=FRESH,  # an earlier test asked this: skip the cache to see real usage
    )
    content = completion.choices[0].message.content
    assert "forty vessels" in content and "Sources:" in content and "kb/report.pdf" in content
    assert completion.usage.total_tokens > 0
    extra = completion.model_extra["docgate"]
    assert extra["citations"][0]["document_id"] == app.ids["report.pdf"]


def test_openai_sdk_streams_the_same_answer(app: Deployment) -> None:
    client = openai_client(app)
    question = [{"role": "user", "content": "What was revenue in 2023?"}]
    plain = client.chat.completions.create(model="docgate", messages=question, extra_headers=FRESH)
    stream = client.chat.completions.create(
        model="docgate",
        messages=question,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=FRESH,
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_openai_sdk_models_and_errors(app: Deployment) -> None:
    client = openai_client(app)
    ids = {model.id for model in client.models.list()}
    assert ids == {"docgate", "docgate-economy", "docgate-standard", "docgate-premium"}
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["type"] == "not_found_error"
    bad = openai.OpenAI(base_url=f"{app.host.base_url}/api/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="docgate", messages=[])


def test_langchain_chat_openai_works_unmodified(app: Deployment) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{app.host.base_url}/api/v1", api_key=API_KEYS["contoso"], model="docgate"
    )
    reply = llm.invoke("How many vessels are in the fleet?")
    assert "forty vessels" in reply.content
    streamed = "".join(part.content for part in llm.stream("What was revenue in 2023?"))
    assert "5.3 million" in streamed


# OpenAI compatibility: every parameter honoured or refused by name (shared/chat/compat.py).

REFUSED = [
    ("n", {"n": 2}),
    ("response_format", {"response_format": {"type": "json_object"}}),
    (
        "response_format",
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}},
    ),
    (
        "tools",
        {
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "tool_choice": "required",
        },
    ),
    ("logprobs", {"logprobs": True}),
    ("stop", {"stop": ["\n"]}),
]


@pytest.mark.parametrize(
    ("param", "extra"), REFUSED, ids=[f"{p}-{i}" for i, (p, _) in enumerate(REFUSED)]
)
def test_openai_parameters_docgate_cannot_honour_are_refused_by_name(
    app: Deployment, param: str, extra: dict[str, Any]
) -> None:
    client = openai.OpenAI(
        base_url=f"{app.host.base_url}/api/v1", api_key=API_KEYS["contoso"], max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="docgate",
            messages=[{"role": "user", "content": "How big is the fleet?"}],
            **extra,
        )
    assert refused.value.body["param"] == param and param in refused.value.body["message"]


def test_openai_parameters_docgate_honours(app: Deployment) -> None:
    client = openai_client(app)
    question = {"role": "user", "content": "How many vessels are in the fleet?"}
    developer = {"role": "developer", "content": "Answer briefly."}
    full = client.chat.completions.create(
        model="docgate", messages=[developer, question], n=1, seed=7, logprobs=False,
        response_format={"type": "text"}, extra_headers=FRESH,
    )  # fmt: skip
    assert "forty vessels" in full.choices[0].message.content
    assert full.choices[0].finish_reason == "stop"
    cut = client.chat.completions.create(
        model="docgate", messages=[question], max_tokens=1, extra_headers=FRESH
    )
    assert cut.choices[0].finish_reason == "length"
    assert len(cut.choices[0].message.content.split()) < len(
        full.choices[0].message.content.split()
    )


def test_langchain_tools_and_structured_output_are_refused_not_ignored(app: Deployment) -> None:
    from langchain_openai import ChatOpenAI
    from pydantic import BaseModel

    class Fleet(BaseModel):
        vessels: int

    llm = ChatOpenAI(
        base_url=f"{app.host.base_url}/api/v1", api_key=API_KEYS["contoso"], model="docgate",
        max_retries=0,
    )  # fmt: skip
    with pytest.raises(openai.BadRequestError) as tools:
        llm.bind_tools([Fleet], tool_choice="required").invoke("How many vessels?")
    assert tools.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as structured:
        llm.with_structured_output(Fleet, method="json_schema").invoke("How many vessels?")
    assert structured.value.body["param"] == "response_format"
