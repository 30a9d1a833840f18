"""Entra ID bearer-token validation: an attack suite, each rejected with its short reason, and the
positive cases (v1/v2, audiences, roles and scopes, groups and overage, leeway).

Keys and discovery come from the Entra double over real HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devhost.testing import free_port
from shared.problems import problem_for
from shared.security.auth import rejected
from shared.security.claims import parse_role_map, parse_tenants
from shared.security.jwt import (
    AuthConfigError,
    ClaimMapping,
    Identity,
    JwtOptions,
    JwtValidator,
    SigningKeysUnavailableError,
    TokenError,
    fetch_json,
)
from tests.doubles.entra import CLIENT_ID, TENANT_ID, EntraDouble, b64url, jwk_of, segment

OTHER_TENANT = "0b3c4d5e-6f70-4812-9a3b-4c5d6e7f8091"
MAPPING = ClaimMapping(
    tenants={TENANT_ID: "contoso"},
    app_roles={"DocGate.User": ("user",), "DocGate.Admin": ("admin",)},
    scopes={"Documents.Read": ("viewer",)},
)


class FakeClock:
    """A monotonic clock the test moves by hand (the key refetch throttle reads it)."""

    def __init__(self) -> None:
        self.value = 1000.0

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture(autouse=True)
def outside_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)


@pytest.fixture
async def entra() -> AsyncIterator[EntraDouble]:
    async with EntraDouble() as double:
        yield double


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_options(entra: EntraDouble, **overrides: Any) -> JwtOptions:
    return JwtOptions(entra.authority(), CLIENT_ID, MAPPING, **overrides)


@pytest.fixture
def validator(entra: EntraDouble, clock: FakeClock) -> JwtValidator:
    return JwtValidator(make_options(entra), monotonic=clock)


async def rejection(validator: JwtValidator, token: str) -> str:
    """The reason the validator gives for refusing `token`."""
    with pytest.raises(TokenError) as caught:
        await validator.validate(token)
    if len(token) > 16:  # the reason never echoes the token (short junk could match by chance)
        assert token not in str(caught.value)
    return caught.value.reason


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: str = "") -> str:
    return f"{segment(header)}.{segment(claims)}.{signature}"


# Attacks ---------------------------------------------------------------------------------------


async def test_alg_none_is_rejected_before_any_key_fetch(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    token = unsigned({"alg": "none", "typ": "JWT", "kid": "entra-key-1"}, entra.claims())
    assert await rejection(validator, token) == "unsupported algorithm"
    assert entra.requests == []


@pytest.mark.parametrize("alg", ["None", "NONE", "RS512", "PS256", "ES256", "HS512", None])
async def test_every_other_algorithm_is_rejected(
    entra: EntraDouble, validator: JwtValidator, alg: str | None
) -> None:
    token = entra.token(entra.claims(), alg=alg)
    assert await rejection(validator, token) == "unsupported algorithm"


async def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    public_pem = (
        entra.keys["entra-key-1"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "entra-key-1"}
    signing_input = f"{segment(header)}.{segment(entra.claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert await rejection(validator, f"{signing_input}.{b64url(mac)}") == "unsupported algorithm"
    assert entra.requests == []


async def test_expired(entra: EntraDouble, validator: JwtValidator) -> None:
    token = entra.token(entra.claims(now=time.time() - 7200))
    assert await rejection(validator, token) == "token expired"


async def test_not_before_in_the_future(entra: EntraDouble, validator: JwtValidator) -> None:
    token = entra.token(entra.claims(nbf=int(time.time()) + 600))
    assert await rejection(validator, token) == "token not yet valid"


async def test_issued_in_the_future(entra: EntraDouble, validator: JwtValidator) -> None:
    token = entra.token(entra.claims(now=time.time() + 600))
    assert await rejection(validator, token) == "token not yet valid"
    no_nbf = {k: v for k, v in entra.claims(now=time.time() + 600).items() if k != "nbf"}
    assert await rejection(validator, entra.token(no_nbf)) == "token issued in the future"


@pytest.mark.parametrize("missing", ["exp", "iat"])
async def test_required_time_claims(
    entra: EntraDouble, validator: JwtValidator, missing: str
) -> None:
    claims = {k: v for k, v in entra.claims().items() if k != missing}
    assert await rejection(validator, entra.token(claims)) == "missing time claims"


def signed_text(entra: EntraDouble, payload: str) -> str:
    """A token signed by Entra's key whose payload is exactly `payload` (JSON text)."""
    header = segment({"typ": "JWT", "alg": "RS256", "kid": "entra-key-1"})
    signing_input = f"{header}.{b64url(payload.encode())}"
    key = entra.keys["entra-key-1"]
    signature = key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@pytest.mark.parametrize(
    ("claim", "literal"),
    [
        ("exp", "1e400"),  # JSON reads it as infinity: a token that never expires
        ("exp", "-1e400"),
        ("nbf", "-1e400"),
        ("iat", "-1e400"),
        ("exp", "1e12"),  # the year 33658
        ("exp", str(2**70)),
        ("iat", "-5"),
        ("iat", "0"),
        ("exp", "NOW.5"),  # not whole seconds
        ("exp", '"NOW"'),
        ("exp", "true"),
        ("nbf", "[1]"),
    ],
)
async def test_time_claims_are_finite_integers_in_sane_bounds(
    entra: EntraDouble, validator: JwtValidator, claim: str, literal: str
) -> None:
    claims = entra.claims()
    claims[claim] = "@@"
    payload = json.dumps(claims).replace('"@@"', literal.replace("NOW", str(int(time.time()))))
    assert await rejection(validator, signed_text(entra, payload)) == "invalid time claims"


async def test_whole_seconds_written_as_floats_are_read(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    claims = entra.claims()
    claims["exp"] = float(claims["exp"])
    assert await validator.validate(entra.token(claims))


async def test_a_token_valid_for_more_than_a_day_is_refused(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    token = entra.token(entra.claims(lifetime=24 * 3600 + 1))
    assert await rejection(validator, token) == "token lifetime too long"
    assert await validator.validate(entra.token(entra.claims(lifetime=24 * 3600)))


@pytest.mark.parametrize(
    "audience",
    ["api://another-app", "00000003-0000-0000-c000-000000000000", f"{CLIENT_ID}/", ["other"], 7],
)
async def test_wrong_audience(
    entra: EntraDouble, validator: JwtValidator, audience: object
) -> None:
    token = entra.token(entra.claims(audience=audience))  # type: ignore[arg-type]
    assert await rejection(validator, token) == "wrong audience"


@pytest.mark.parametrize(
    "issuer",
    [
        f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0",  # another tenant's issuer
        f"https://sts.windows.net/{OTHER_TENANT}/",
        f"https://evil.example/{TENANT_ID}/v2.0",
        f"https://login.microsoftonline.com/{TENANT_ID}/v2.0/",
        "https://login.microsoftonline.com/{tid}/v2.0",
        None,
    ],
)
async def test_wrong_issuer(entra: EntraDouble, validator: JwtValidator, issuer: object) -> None:
    token = entra.token(entra.claims(iss=issuer))
    assert await rejection(validator, token) == "untrusted issuer"


@pytest.mark.parametrize("tid", [OTHER_TENANT, None, "contoso", "../" + TENANT_ID])
async def test_tenant_not_allowed(entra: EntraDouble, validator: JwtValidator, tid: object) -> None:
    claims = {**entra.claims(OTHER_TENANT), "tid": tid}
    assert await rejection(validator, entra.token(claims)) == "tenant not allowed"


async def test_unknown_kid_refetches_once_then_rejects(
    entra: EntraDouble, validator: JwtValidator, clock: FakeClock
) -> None:
    await validator.validate(entra.token(entra.claims()))
    assert len(entra.key_fetches()) == 1
    entra.add_key("not-published", publish=False)
    forged = entra.token(entra.claims(), kid="not-published")
    clock.advance(301)
    assert await rejection(validator, forged) == "unknown signing key"
    assert len(entra.key_fetches()) == 2  # exactly one refetch
    assert await rejection(validator, forged) == "unknown signing key"
    assert len(entra.key_fetches()) == 2  # throttled: a flood of unknown kids costs nothing


async def test_unknown_kid_within_the_throttle_window_is_not_fetched(
    entra: EntraDouble, validator: JwtValidator, clock: FakeClock
) -> None:
    await validator.validate(entra.token(entra.claims()))
    entra.add_key("rotated")
    clock.advance(299)
    assert await rejection(validator, entra.token(entra.claims(), kid="rotated")) == (
        "unknown signing key"
    )
    assert len(entra.key_fetches()) == 1


async def test_rotated_key_is_picked_up_by_the_refetch(
    entra: EntraDouble, validator: JwtValidator, clock: FakeClock
) -> None:
    await validator.validate(entra.token(entra.claims()))
    entra.add_key("rotated")
    clock.advance(300)
    identity = await validator.validate(entra.token(entra.claims(), kid="rotated"))
    assert identity.principal.tenant == "contoso"
    assert len(entra.key_fetches()) == 2


async def test_tampered_payload(entra: EntraDouble, validator: JwtValidator) -> None:
    header, _, signature = entra.token(entra.claims()).split(".")
    escalated = segment(entra.claims(roles=["DocGate.Admin"]))
    assert await rejection(validator, f"{header}.{escalated}.{signature}") == "invalid signature"


async def test_signature_from_another_key(entra: EntraDouble, validator: JwtValidator) -> None:
    entra.add_key("second")
    header = entra.token(entra.claims()).split(".")[0]
    _, payload, signature = entra.token(entra.claims(), kid="second").split(".")
    assert await rejection(validator, f"{header}.{payload}.{signature}") == "invalid signature"


@pytest.mark.parametrize(
    "kid",
    [
        "../../../../etc/passwd",
        "..%2f..%2fkeys",
        "keys/entra-key-1",
        "entra-key-1\x00",
        "entra key 1",
        "clé",
        "k" * 129,
        "",
        17,
        ["entra-key-1"],
    ],
)
async def test_odd_kid_is_rejected_before_any_key_fetch(
    entra: EntraDouble, validator: JwtValidator, kid: object
) -> None:
    token = unsigned({"alg": "RS256", "typ": "JWT", "kid": kid}, entra.claims(), "c2ln")
    assert await rejection(validator, token) == "invalid key id"
    assert entra.requests == []


async def test_missing_kid(entra: EntraDouble, validator: JwtValidator) -> None:
    token = unsigned({"alg": "RS256", "typ": "JWT"}, entra.claims(), "c2ln")
    assert await rejection(validator, token) == "missing key id"


async def test_oversized_token_is_rejected_before_parsing(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    groups = [f"group-{n:05d}-0000-0000-0000-000000000000" for n in range(400)]
    token = entra.token(entra.claims(groups=groups))
    assert len(token) > 16 * 1024
    assert await rejection(validator, token) == "token too large"
    assert entra.requests == []


async def test_missing_signature(entra: EntraDouble, validator: JwtValidator) -> None:
    header, payload, _ = entra.token(entra.claims()).split(".")
    assert await rejection(validator, f"{header}.{payload}.") == "missing signature"
    assert entra.requests == []


@pytest.mark.parametrize(
    "token",
    ["", "abc", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.c=", "a b.c.d", "eyJ.eyJ.sig"],
)
async def test_malformed_tokens(validator: JwtValidator, token: str) -> None:
    assert await rejection(validator, token) in {"malformed token", "malformed header"}


async def test_critical_header_and_token_type(entra: EntraDouble, validator: JwtValidator) -> None:
    critical = entra.token(entra.claims(), crit=["exp"])
    assert await rejection(validator, critical) == "unsupported header"
    assert await rejection(validator, entra.token(entra.claims(), typ="JWE")) == (
        "unsupported token type"
    )


async def test_duplicate_claims_are_rejected(entra: EntraDouble, validator: JwtValidator) -> None:
    # Signed, so only a parser differential (which copy wins?) could exploit it: refuse outright.
    header = segment({"alg": "RS256", "typ": "JWT", "kid": "entra-key-1"})
    claims = json.dumps(entra.claims())[:-1] + f', "tid": "{OTHER_TENANT}"}}'
    signing_input = f"{header}.{b64url(claims.encode())}"
    signature = entra.keys["entra-key-1"].sign(
        signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
    )
    token = f"{signing_input}.{b64url(signature)}"
    assert await rejection(validator, token) == "malformed claims"


async def test_jwks_down_fails_closed_for_new_kids_and_keeps_cached_ones(
    entra: EntraDouble, validator: JwtValidator, clock: FakeClock
) -> None:
    cached = entra.token(entra.claims())
    await validator.validate(cached)
    entra.add_key("rotated")
    new = entra.token(entra.claims(), kid="rotated")
    await entra.stop()  # connection refused from now on
    clock.advance(301)
    with pytest.raises(SigningKeysUnavailableError) as caught:
        await validator.validate(new)
    assert caught.value.reason == "signing keys unavailable"
    identity = await validator.validate(cached)
    assert identity.principal.user_id == "00000000-0000-0000-0000-00000000a11c"


async def test_jwks_error_on_a_cold_cache_fails_closed(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    entra.fail("keys", 500, "500", "Internal Server Error")
    with pytest.raises(SigningKeysUnavailableError):
        await validator.validate(entra.token(entra.claims()))
    assert len(entra.key_fetches()) == 1


async def test_stale_keys_keep_working_while_the_endpoint_is_down(
    entra: EntraDouble, validator: JwtValidator, clock: FakeClock
) -> None:
    token = entra.token(entra.claims())
    await validator.validate(token)
    entra.fail("keys", 503, "503", "Service Unavailable")
    clock.advance(25 * 3600)  # past the keys' maximum age: a refresh is attempted and fails
    assert (await validator.validate(token)).principal.tenant == "contoso"
    assert len(entra.key_fetches()) == 2


async def test_keys_dropped_by_the_authority_stop_working(
    entra: EntraDouble, validator: JwtValidator, clock: FakeClock
) -> None:
    token = entra.token(entra.claims())
    await validator.validate(token)
    entra.add_key("successor")
    entra.published.remove("entra-key-1")
    clock.advance(25 * 3600)
    assert await rejection(validator, token) == "unknown signing key"


async def test_jwks_uri_on_another_origin_is_not_followed(entra: EntraDouble) -> None:
    async def fetch(url: str) -> Any:
        return {"jwks_uri": "https://attacker.example/keys"}

    validator = JwtValidator(make_options(entra), fetch=fetch)
    with pytest.raises(SigningKeysUnavailableError):
        await validator.validate(entra.token(entra.claims()))


async def test_concurrent_cold_validations_share_one_fetch(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    token = entra.token(entra.claims())
    await asyncio.gather(*(validator.validate(token) for _ in range(10)))
    assert len(entra.key_fetches()) == 1
    assert len(entra.seen("metadata")) == 1


async def test_small_and_non_rsa_keys_are_not_used(entra: EntraDouble) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    jwks = {"keys": [jwk_of(weak, "weak"), {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]}
    documents = {"metadata": {"jwks_uri": f"{entra.authority()}/discovery/v2.0/keys"}}

    async def fetch(url: str) -> Any:
        return documents["metadata"] if url.endswith("openid-configuration") else jwks

    validator = JwtValidator(make_options(entra), fetch=fetch)
    with pytest.raises(SigningKeysUnavailableError):
        await validator.validate(entra.token(entra.claims()))


# Positives -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("audience", [CLIENT_ID, f"api://{CLIENT_ID}"])
async def test_v1_and_v2_tokens_with_either_audience(
    entra: EntraDouble, validator: JwtValidator, version: str, audience: str
) -> None:
    identity = await validator.validate(
        entra.token(entra.claims(version=version, audience=audience))
    )
    assert identity.principal.user_id == "00000000-0000-0000-0000-00000000a11c"
    assert identity.principal.tenant == "contoso"
    assert identity.claims["ver"] == version
    assert not identity.groups_overage


async def test_audience_list_naming_this_api(entra: EntraDouble, validator: JwtValidator) -> None:
    token = entra.token(entra.claims(aud=["https://graph.microsoft.com", CLIENT_ID]))
    assert (await validator.validate(token)).principal.tenant == "contoso"


async def test_keys_are_cached(entra: EntraDouble, validator: JwtValidator) -> None:
    for _ in range(3):
        await validator.validate(entra.token(entra.claims()))
    assert len(entra.key_fetches()) == 1


async def test_roles_and_scopes_map_to_our_roles(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    claims = entra.claims(roles=["DocGate.User", "Something.Else"], scp="Documents.Read openid")
    identity = await validator.validate(entra.token(claims))
    assert identity.principal.roles == ("user", "viewer")


async def test_no_mapped_role_means_no_roles(entra: EntraDouble, validator: JwtValidator) -> None:
    identity = await validator.validate(entra.token(entra.claims(scp="openid profile")))
    assert identity.principal.roles == ()


async def test_groups_are_read(entra: EntraDouble, validator: JwtValidator) -> None:
    identity = await validator.validate(entra.token(entra.claims(groups=["finance", "legal"])))
    assert identity.principal.groups == ("finance", "legal")
    assert not identity.groups_overage


@pytest.mark.parametrize(
    "overage",
    [
        {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "x"}}},
        {"hasgroups": True},
    ],
)
async def test_group_overage_gives_no_groups_and_the_flag(
    entra: EntraDouble, validator: JwtValidator, overage: dict[str, Any]
) -> None:
    identity = await validator.validate(entra.token(entra.claims(**overage)))
    assert identity.principal.groups == ()
    assert identity.groups_overage


async def test_malformed_role_claims_are_rejected(
    entra: EntraDouble, validator: JwtValidator
) -> None:
    assert await rejection(validator, entra.token(entra.claims(roles="admin"))) == (
        "invalid claims"
    )
    assert await rejection(validator, entra.token(entra.claims(scp=["a"]))) == "invalid claims"


async def test_missing_user_id(entra: EntraDouble, validator: JwtValidator) -> None:
    claims = {k: v for k, v in entra.claims().items() if k != "oid"}
    assert await rejection(validator, entra.token(claims)) == "missing user id"


async def test_leeway_absorbs_clock_skew(entra: EntraDouble) -> None:
    now = 1_800_000_000.0
    validator = JwtValidator(make_options(entra, leeway_seconds=60), now=lambda: now)
    expired_recently = entra.claims(now=now - 3600 - 30, lifetime=3600)
    assert isinstance(await validator.validate(entra.token(expired_recently)), Identity)
    not_yet = entra.claims(now=now + 30)
    assert isinstance(await validator.validate(entra.token(not_yet)), Identity)
    expired_long_ago = entra.claims(now=now - 3600 - 90, lifetime=3600)
    assert await rejection(validator, entra.token(expired_long_ago)) == "token expired"
    strict = JwtValidator(make_options(entra, leeway_seconds=0), now=lambda: now)
    assert await rejection(strict, entra.token(expired_recently)) == "token expired"


# HTTP answer and configuration ---------------------------------------------------------------


def test_problem_is_a_401_challenge_with_only_the_reason() -> None:
    problem = problem_for(rejected(TokenError("token expired")))
    assert problem is not None
    assert problem.status == 401
    assert problem.detail == "the credentials are not valid: token expired"
    assert problem.headers["WWW-Authenticate"] == (
        'Bearer realm="docgate", error="invalid_token", error_description="token expired"'
    )
    unavailable = problem_for(rejected(SigningKeysUnavailableError("signing keys unavailable")))
    assert unavailable is not None and unavailable.status == 503


def test_authority_must_be_https_or_local(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthConfigError):
        JwtOptions("http://login.example.com/organizations", CLIENT_ID, MAPPING)
    JwtOptions("http://127.0.0.1:7071/runtime/dev-issuer", CLIENT_ID, MAPPING)
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "abc123")
    with pytest.raises(AuthConfigError):
        JwtOptions("http://127.0.0.1:7071/runtime/dev-issuer", CLIENT_ID, MAPPING)
    JwtOptions("https://login.microsoftonline.com/organizations", CLIENT_ID, MAPPING)


def test_options_refuse_incomplete_configuration() -> None:
    with pytest.raises(AuthConfigError):
        ClaimMapping(tenants={})
    with pytest.raises(AuthConfigError):
        JwtOptions("https://login.microsoftonline.com/organizations", "", MAPPING)
    with pytest.raises(AuthConfigError):
        JwtOptions("https://login.example.com", CLIENT_ID, MAPPING, issuers=("https://x/",))


def test_settings_parsers() -> None:
    assert parse_tenants(f'{{"{TENANT_ID}": "contoso"}}') == {TENANT_ID: "contoso"}
    assert parse_tenants("contoso, fabrikam") == {"contoso": "contoso", "fabrikam": "fabrikam"}
    with pytest.raises(ValueError):
        parse_tenants('{"../x": "contoso"}')
    assert parse_role_map('{"DocGate.Admin": "admin", "Docs.Read": ["viewer"]}') == {
        "DocGate.Admin": ("admin",),
        "Docs.Read": ("viewer",),
    }
    with pytest.raises(ValueError):
        parse_role_map('{"DocGate.Admin": "root"}')
    with pytest.raises(ValueError):
        parse_role_map('{"DocGate.Admin": 5}')


async def test_key_documents_are_read_whole_and_bounded() -> None:
    async def sized(request: web.Request) -> web.Response:
        padding_bytes = int(request.query["bytes"])
        return web.json_response({"keys": [], "padding": "x" * padding_bytes})

    app = web.Application()
    app.router.add_get("/doc", sized)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        document = await fetch_json(f"http://127.0.0.1:{port}/doc?bytes=300000", 5)
        assert len(document["padding"]) == 300000  # several network chunks, all read
        with pytest.raises(ValueError, match="too large"):
            await fetch_json(f"http://127.0.0.1:{port}/doc?bytes=2000000", 5)
    finally:
        await runner.cleanup()
