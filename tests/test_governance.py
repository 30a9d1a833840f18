"""Governance end to end: semantic cache, rate limits, budgets and the usage ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apphost import API_KEYS, request, wait_until
from tests.conftest import EmulatorEndpoints
from tests.test_chat import REVENUE_NOTES
from tests.test_ingestion import Deployment, deploy

pytestmark = pytest.mark.emulators
PRICES = json.dumps(
    {
        "models": {
            "gpt-4o-mini": {"input_per_1k": 0.00015, "output_per_1k": 0.0006},
            "gpt-4o": {"input_per_1k": 0.0025, "output_per_1k": 0.01},
        },
        "tiers": {
            "economy": {"*": "gpt-4o-mini"},
            "standard": {"*": "gpt-4o-mini"},
            "premium": {"*": "gpt-4o"},
        },
    }
)


def ask(app: Deployment, question: str, tenant: str = "contoso", **extra: Any):
    body = json.dumps({"messages": [{"role": "user", "content": question}], **extra}).encode()
    return request(
        app.host, "POST", "/api/chat", body=body,
        headers={"content-type": "application/json"}, tenant=tenant,
    )  # fmt: skip


def with_finance_notes(deployment: Deployment, tenant: str = "contoso") -> str:
    doc_id = deployment.upload(f"kb/{tenant}/finance.txt", REVENUE_NOTES.encode(), tenant=tenant)
    assert deployment.wait_done(doc_id, tenant=tenant)["state"] == "succeeded"
    return doc_id


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory, emulators: EmulatorEndpoints
) -> Iterator[Deployment]:
    for deployment in deploy(tmp_path_factory.mktemp("governance"), emulators, LLM_PRICES=PRICES):
        deployment.doc_id = with_finance_notes(deployment)  # type: ignore[attr-defined]
        with_finance_notes(deployment, tenant="fabrikam")
        yield deployment


def test_the_same_question_twice_is_a_cache_hit(app: Deployment) -> None:
    status, first_headers, first = ask(app, "What was revenue in 2023?")
    assert status == 200 and first_headers["x-docgate-cache"] == "miss"
    status, headers, second = ask(app, "What was revenue in 2023?")
    assert status == 200
    assert headers["x-docgate-cache"].startswith("hit; exact"), headers["x-docgate-cache"]
    assert second["cached"] is True and second["answer"] == first["answer"]
    assert second["citations"] == first["citations"]
    assert second["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}


def test_a_paraphrase_hits_and_a_near_miss_does_not(app: Deployment) -> None:
    ask(app, "What was revenue in 2023?")  # make sure it is cached
    _, headers, body = ask(app, "What was the revenue for 2023?")
    assert headers["x-docgate-cache"].startswith("hit; semantic"), headers["x-docgate-cache"]
    assert "5.3 million" in body["answer"]
    # 0.948 similar to the cached question, but another year: must not be served its answer.
    _, headers, body = ask(app, "What was revenue in 2022?")
    assert headers["x-docgate-cache"] == "miss"
    assert "4.1 million" in body["answer"]


def test_tenants_never_share_cached_answers(app: Deployment) -> None:
    ask(app, "What were operating costs in 2023?")
    _, headers, _ = ask(app, "What were operating costs in 2023?")
    assert headers["x-docgate-cache"].startswith("hit")
    _, headers, body = ask(app, "What were operating costs in 2023?", tenant="fabrikam")
    assert headers["x-docgate-cache"] == "miss"
    assert {c["document_id"] for c in body["citations"]}  # fabrikam's own copy, not contoso's


def test_no_store_and_follow_ups_bypass_the_cache(app: Deployment) -> None:
    _, headers, _ = ask(app, "What was revenue in 2023?", cache="no-store")
    assert headers["x-docgate-cache"].startswith("bypass")
    body = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "What was revenue in 2022?"},
                {"role": "assistant", "content": "4.1 million euros [1]."},
                {"role": "user", "content": "and in 2023?"},
            ]
        }
    ).encode()
    _, headers, _ = request(
        app.host, "POST", "/api/chat", body=body, headers={"content-type": "application/json"}
    )
    assert headers["x-docgate-cache"].startswith("bypass")


def test_reingesting_a_cited_document_invalidates_its_answers(app: Deployment) -> None:
    ask(app, "What were operating costs in 2022?")
    _, headers, _ = ask(app, "What were operating costs in 2022?")
    assert headers["x-docgate-cache"].startswith("hit")
    before = app.status(app.doc_id)["updated"]  # type: ignore[attr-defined]
    changed = REVENUE_NOTES.replace("2.0 million", "2.2 million")
    app.upload("kb/contoso/finance.txt", changed.encode())
    assert app.wait_done(app.doc_id, since=before)["state"] == "succeeded"  # type: ignore[attr-defined]
    _, headers, body = ask(app, "What were operating costs in 2022?")
    assert headers["x-docgate-cache"] == "miss"  # the cached answer cited the old version
    # Retrieval's in-process index catches up within its refresh period (5 s); answers built
    # from the old version meanwhile cite deleted chunks and are not cached.
    fresh = wait_until(
        lambda: "2.2 million" in ask(app, "What were operating costs in 2022?")[2]["answer"],
        timeout=20, host=app.host,
    )  # fmt: skip
    assert fresh
    _, headers, body = ask(app, "What were operating costs in 2022?")
    assert "2.2 million" in body["answer"]


def test_usage_ledger_and_cache_admin(app: Deployment) -> None:
    status, _, usage = request(app.host, "GET", "/api/usage")
    assert status == 200
    assert usage["tenant"] == "contoso" and usage["total"]["requests"] >= 5
    assert set(usage["by_user"]) == {"user-contoso"}
    status, _, stats = request(app.host, "GET", "/api/cache/stats")
    assert status == 200 and stats["overall"]["hits"] >= 1
    assert request(app.host, "DELETE", "/api/cache?tenant=contoso")[2]["deleted"] >= 1


# Limits and budgets: each in its own deployment, with small numbers.


def test_a_user_over_the_rate_limit_gets_429_with_headers(
    tmp_path: Path, emulators: EmulatorEndpoints
) -> None:
    limits = json.dumps({"roles": {"user": {"rpm": 2, "tpm": 1_000_000}}, "tenant": None})
    keys = json.dumps(
        [{"key": API_KEYS["contoso"], "user": "u1", "tenant": "contoso", "roles": ["user"]}]
    )
    for app in deploy(tmp_path, emulators, RATE_LIMITS=limits, DOCGATE_API_KEYS=keys):
        statuses = [ask(app, f"What was revenue in {year}?") for year in (2020, 2021, 2022)]
        assert [status for status, _, _ in statuses] == [200, 200, 429]
        _, headers, problem = statuses[-1]
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert int(headers["Retry-After"]) >= 1 and "x-ratelimit-reset" in headers
        assert headers["Content-Type"].startswith("application/problem+json")
        assert problem["status"] == 429 and problem["code"] == "rate_limited"
        assert statuses[0][1]["x-ratelimit-remaining-requests"] == "1"


def test_a_tenant_over_a_hard_budget_is_refused(
    tmp_path: Path, emulators: EmulatorEndpoints
) -> None:
    budgets = json.dumps({"tenant": {"daily_usd": 0.00001, "monthly_usd": 1.0}})
    for app in deploy(tmp_path, emulators, LLM_PRICES=PRICES, BUDGETS=budgets):
        status, headers, problem = ask(app, "What was revenue in 2023?")
        assert status == 403, problem
        assert problem["code"] == "budget_exceeded" and "daily" in problem["detail"]
        assert headers["Content-Type"].startswith("application/problem+json")
