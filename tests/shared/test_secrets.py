"""SecretStore through the real Key Vault SDK against the HTTPS double, and the canary: a secret
value must never reach logs, exception text or spans."""

from __future__ import annotations

import asyncio
import logging
import pickle
import traceback
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.settings import settings as azure_settings
from azure.keyvault.secrets.aio import SecretClient
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.secrets import (
    MissingSecret,
    SecretStore,
    SecretStoreOptions,
    SecretUnavailable,
    SecretValue,
    env_name_of,
    validate_name,
)
from tests.doubles.document_intelligence import DocumentIntelligenceDouble
from tests.doubles.key_vault import SCOPE, FakeCredential, KeyVaultDouble

CANARY = "canary-7f3e91c4-kv-value-do-not-log"
TTL = 60.0


class FakeClock:
    """A settable monotonic clock: TTL expiry without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class PartnerCallFailed(Exception):
    """What application code raises when a call made with a secret fails."""


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    """Spans finished in this process. The global provider can be set only once per process:
    reuse an SDK provider someone else installed, else install ours."""
    memory = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "another non-SDK provider is installed"
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    """The exporter, emptied, with the Azure SDK's own spans switched on too."""
    exporter.clear()
    azure_settings.tracing_enabled.set_value(True)
    yield exporter
    azure_settings.tracing_enabled.unset_value()
    exporter.clear()


@pytest.fixture
async def kv(tmp_path: Path) -> AsyncIterator[KeyVaultDouble]:
    """A started Key Vault double with its own CA in tmp_path."""
    async with KeyVaultDouble(tmp_path) as double:
        yield double


@pytest.fixture
def credential(kv: KeyVaultDouble) -> FakeCredential:
    """A credential whose token the double accepts."""
    return FakeCredential(token=kv.key)


@pytest.fixture
def clock() -> FakeClock:
    """The store's clock."""
    return FakeClock()


def make_store(
    kv: KeyVaultDouble,
    credential: FakeCredential,
    clock: FakeClock,
    environ: dict[str, str] | None = None,
    **options: Any,
) -> SecretStore:
    """A store on the double, trusting its CA, reaching it through its resolver."""
    settings = SecretStoreOptions(
        vault_url=kv.vault_url, ttl_seconds=TTL, connection_verify=str(kv.tls.ca_path), **options
    )
    return SecretStore(
        settings, credential, environ=environ or {}, clock=clock, transport=kv.transport()
    )


@pytest.fixture
async def store(
    kv: KeyVaultDouble, credential: FakeCredential, clock: FakeClock
) -> AsyncIterator[SecretStore]:
    """A store on the double with an empty environment."""
    async with make_store(kv, credential, clock) as secret_store:
        yield secret_store


# SecretValue ------------------------------------------------------------------------------


def test_secret_value_masks_every_printed_form() -> None:
    secret = SecretValue(CANARY)
    printed = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret:>80}",
    ]
    printed.append("%s %r" % (secret, secret))  # noqa: UP031  # how logging formats arguments
    printed.append(repr({"key": secret, "list": [secret]}))
    assert all(CANARY not in text for text in printed)
    assert secret.reveal() == CANARY


def test_secret_value_compares_but_does_not_hash_or_pickle() -> None:
    assert SecretValue("a") == SecretValue("a")
    assert SecretValue("a") != SecretValue("b")
    with pytest.raises(TypeError):
        hash(SecretValue("a"))
    with pytest.raises(TypeError) as raised:
        pickle.dumps(SecretValue(CANARY))
    assert CANARY not in str(raised.value)


def test_name_mapping_and_validation() -> None:
    assert env_name_of("llm-api-key") == "LLM_API_KEY"
    assert env_name_of("MY-SECRET") == "MY_SECRET"
    assert validate_name("a-B-9") == "a-B-9"
    for bad in ("", "a_b", "../keys/x", "a/b", "x" * 128):
        with pytest.raises(ValueError):
            validate_name(bad)


def test_options_refuse_weakening() -> None:
    with pytest.raises(ValueError, match="https"):
        SecretStoreOptions(vault_url="http://kv.vault.azure.net")
    with pytest.raises(ValueError, match="TLS"):
        SecretStoreOptions(vault_url="https://kv.vault.azure.net", connection_verify=False)
    with pytest.raises(ValueError, match="cache-forever"):
        SecretStoreOptions(ttl_seconds=0)
    with pytest.raises(ValueError, match="credential"):
        SecretStore(SecretStoreOptions(vault_url="https://kv.vault.azure.net"))


# Sources, TTL, errors ------------------------------------------------------------------------


async def test_key_vault_first_then_environment(
    kv: KeyVaultDouble, credential: FakeCredential, clock: FakeClock
) -> None:
    kv.set_secret("db-password", "from-vault")
    environ = {"DB_PASSWORD": "from-env", "ONLY_IN_ENV": "env-value"}
    async with make_store(kv, credential, clock, environ) as store:
        assert (await store.get_required("db-password")).reveal() == "from-vault"
        assert (await store.get_required("only-in-env")).reveal() == "env-value"
        assert await store.get("nowhere") is None


async def test_environment_only_without_a_vault() -> None:
    store = SecretStore(SecretStoreOptions(), environ={"MY_SECRET": "local"})
    assert (await store.get_required("MY-SECRET")).reveal() == "local"
    assert await store.get("other") is None


async def test_env_fallback_can_be_turned_off(
    kv: KeyVaultDouble, credential: FakeCredential, clock: FakeClock
) -> None:
    environ = {"MY_SECRET": "local"}
    async with make_store(kv, credential, clock, environ, env_fallback=False) as store:
        assert await store.get("my-secret") is None


async def test_401_challenge_then_bearer_token_for_the_challenged_scope(
    kv: KeyVaultDouble, store: SecretStore, credential: FakeCredential
) -> None:
    kv.set_secret("api-key", "v1")
    await store.get_required("api-key")
    first, second = kv.seen("secrets")
    assert "Authorization" not in first.headers
    assert second.headers["Authorization"] == f"Bearer {kv.key}"
    assert "api-version" in second.query
    [asked] = credential.requests
    assert asked.scopes == (SCOPE,)
    assert asked.tenant_id == kv.tenant  # parsed from the challenge's authorization URI


async def test_ttl_expiry_picks_up_rotation(
    kv: KeyVaultDouble, store: SecretStore, clock: FakeClock
) -> None:
    kv.set_secret("api-key", "v1")
    assert (await store.get_required("api-key")).reveal() == "v1"
    kv.set_secret("api-key", "v2")
    clock.now += TTL - 1
    assert (await store.get_required("api-key")).reveal() == "v1"  # still cached
    clock.now += 2
    assert (await store.get_required("api-key")).reveal() == "v2"
    assert len(kv.authenticated()) == 2


async def test_versions_are_read_and_cached_separately(
    kv: KeyVaultDouble, store: SecretStore
) -> None:
    old = kv.set_secret("api-key", "v1")
    kv.set_secret("api-key", "v2")
    assert (await store.get_required("api-key", version=old)).reveal() == "v1"
    assert (await store.get_required("api-key")).reveal() == "v2"
    assert any(request.path.endswith(f"/api-key/{old}") for request in kv.requests)
    assert await store.get("api-key", version="0" * 32) is None


async def test_get_required_names_the_missing_secret(
    kv: KeyVaultDouble, store: SecretStore
) -> None:
    with pytest.raises(MissingSecret) as raised:
        await store.get_required("partner-api-key")
    message = str(raised.value)
    assert "'partner-api-key'" in message
    assert "PARTNER_API_KEY" in message
    assert kv.vault_url in message
    assert raised.value.secret_name == "partner-api-key"


async def test_concurrent_gets_share_one_fetch(kv: KeyVaultDouble, store: SecretStore) -> None:
    kv.set_secret("api-key", "v1")
    names = ["api-key", "API-KEY"] * 10  # one secret: Key Vault names ignore case
    values = await asyncio.gather(*(store.get_required(name) for name in names))
    assert {value.reveal() for value in values} == {"v1"}
    assert len(kv.authenticated()) == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(
    kv: KeyVaultDouble, store: SecretStore
) -> None:
    kv.set_secret("api-key", "v1")
    impatient = asyncio.create_task(store.get("api-key"))
    patient = asyncio.create_task(store.get("api-key"))
    await asyncio.sleep(0)
    impatient.cancel()
    value = await patient
    assert value is not None and value.reveal() == "v1"


async def test_vault_outage_serves_the_earlier_value_then_gives_up(
    kv: KeyVaultDouble, credential: FakeCredential, clock: FakeClock
) -> None:
    kv.set_secret("api-key", "v1")
    async with make_store(kv, credential, clock, max_stale_seconds=TTL * 3) as store:
        await store.get_required("api-key")
        kv.disable("api-key")
        clock.now += TTL + 1
        assert (await store.get_required("api-key")).reveal() == "v1"
        clock.now += TTL * 3
        with pytest.raises(SecretUnavailable, match=r"'api-key'.*HTTP 403 Forbidden"):
            await store.get_required("api-key")


async def test_a_forbidden_secret_does_not_fall_back_to_the_environment(
    kv: KeyVaultDouble, credential: FakeCredential, clock: FakeClock
) -> None:
    kv.set_secret("api-key", "vault")
    kv.disable("api-key")
    async with make_store(kv, credential, clock, {"API_KEY": "stale-local"}) as store:
        with pytest.raises(SecretUnavailable):
            await store.get("api-key")


async def test_invalidate_forces_a_fresh_read(kv: KeyVaultDouble, store: SecretStore) -> None:
    kv.set_secret("api-key", "v1")
    await store.get("api-key")
    kv.set_secret("api-key", "v2")
    store.invalidate("api-key")
    assert (await store.get_required("api-key")).reveal() == "v2"


async def test_the_apps_secret_store_uses_the_app_credential() -> None:
    from shared.services import Services

    given = FakeCredential()
    identity = SimpleNamespace(
        key_vault_url="https://docgate.vault.azure.net", secrets_ttl_seconds=120.0, client_id=None
    )
    services = Services(SimpleNamespace(identity=identity))  # type: ignore[arg-type]
    services.credential = given  # type: ignore[misc]  # what create_credential would build
    store = services.secret_store
    assert store._credential is given
    assert store._options.ttl_seconds == 120.0
    local = SimpleNamespace(key_vault_url=None, secrets_ttl_seconds=300.0, client_id=None)
    assert Services(SimpleNamespace(identity=local)).secret_store._credential is None  # type: ignore[arg-type]


# The canary ---------------------------------------------------------------------------------


def leaks(text: str) -> bool:
    """Whether `text` holds the canary."""
    return CANARY in text


def span_texts(finished: tuple[ReadableSpan, ...]) -> list[str]:
    """Everything a span exporter would send: names, attributes, events, statuses."""
    texts = []
    for finished_span in finished:
        texts += [finished_span.name, str(finished_span.status.description)]
        texts += [f"{key}={value}" for key, value in finished_span.attributes.items()]
        for event in finished_span.events:
            texts += [event.name, *(f"{k}={v}" for k, v in event.attributes.items())]
    return texts


def log_texts(records: list[logging.LogRecord]) -> list[str]:
    """Each record fully formatted, tracebacks and extras included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return [formatter.format(record) + repr(record.__dict__) for record in records]


def exception_texts(error: BaseException) -> list[str]:
    """str, repr and the whole formatted chain of an exception."""
    return [str(error), repr(error), "".join(traceback.format_exception(error))]


async def call_partner(endpoint: str, key: SecretValue) -> None:
    """Application code using the secret as an API key in a request that fails."""
    from azure.ai.documentintelligence.aio import DocumentIntelligenceClient

    async with DocumentIntelligenceClient(endpoint, AzureKeyCredential(key.reveal())) as client:
        try:
            await client.get_analyze_result_figure("prebuilt-layout", "0", "1.1")
        except HttpResponseError as error:
            raise PartnerCallFailed(
                f"partner refused key {key}: HTTP {error.status_code}"
            ) from error


async def test_canary_never_reaches_logs_exceptions_or_spans(
    kv: KeyVaultDouble,
    store: SecretStore,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")
    kv.set_secret("partner-api-key", CANARY)
    kv.answer_raw("broken-secret", f'{{"value": "{CANARY}", "id": '.encode())
    kv.answer_raw("odd-secret", f'{{"value": 1, "id": "{CANARY}"}}'.encode())
    errors: list[BaseException] = []
    async with DocumentIntelligenceDouble(key="the-right-key") as partner:
        with trace.get_tracer("canary").start_as_current_span("request") as request_span:
            key = await store.get_required("partner-api-key")
            request_span.set_attribute("partner.key", str(key))
            logging.getLogger("docgate.canary").info("calling partner with %s / %r", key, key)
            with pytest.raises(PartnerCallFailed) as refused:
                await call_partner(partner.endpoint, key)
            request_span.record_exception(refused.value)
            logging.getLogger("docgate.canary").exception("partner call failed")
            errors.append(refused.value)
            for bad in ("broken-secret", "odd-secret"):
                with pytest.raises(SecretUnavailable) as unavailable:
                    await store.get(bad)
                errors.append(unavailable.value)
        assert partner.requests[0].headers["Ocp-Apim-Subscription-Key"] == CANARY  # it was used

    assert key.reveal() == CANARY
    assert caplog.records and any(r.name.startswith("azure") for r in caplog.records)
    assert not [text for text in log_texts(caplog.records) if leaks(text)]
    assert not [text for error in errors for text in exception_texts(error) if leaks(text)]
    finished = spans.get_finished_spans()
    assert any(s.name == "secrets.get" for s in finished)
    # Off on purpose: the SDK span's status description is str(DecodeError), the body.
    assert not any(s.name.startswith("SecretClient.") for s in finished)
    assert any(s.name.endswith(".get_analyze_result_figure") for s in finished)  # SDK spans on
    assert not [text for text in span_texts(finished) if leaks(text)]
    assert not [text for text in log_texts(caplog.records) if kv.key in text]  # the bearer token


async def test_the_sdk_network_trace_would_leak_which_is_why_it_is_pinned_off(
    kv: KeyVaultDouble, credential: FakeCredential, caplog: pytest.LogCaptureFixture
) -> None:
    """Pins the SDK behaviour docs/secrets.md describes: logging_enable=True logs the body."""
    caplog.set_level(logging.DEBUG, logger="azure")
    kv.set_secret("partner-api-key", CANARY)
    verify = str(kv.tls.ca_path)
    client = SecretClient(kv.vault_url, credential, transport=kv.transport(), logging_enable=True)
    async with client:
        await client.get_secret("partner-api-key", connection_verify=verify)
    assert any(leaks(text) for text in log_texts(caplog.records))
    assert any(f"Bearer {kv.key}" in text for text in log_texts(caplog.records))
