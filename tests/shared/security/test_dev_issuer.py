"""The dev issuer: tokens it mints pass the very validator Entra tokens pass, served over HTTP by
its own routes; it refuses to run in Azure; its key survives restarts."""

from __future__ import annotations

import base64
import json
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from devhost import dev_issuer
from devhost.dev_issuer import DevIssuer, DevIssuerRefusedError
from devhost.testing import free_port
from shared.security.jwt import (
    AuthConfigError,
    ClaimMapping,
    JwtOptions,
    JwtValidator,
    TokenError,
    dev_issuer_options,
)
from tests.doubles.entra import b64url

CLIENT_ID = "docgate-dev"
MAPPING = ClaimMapping(tenants={"contoso": "contoso", "fabrikam": "fabrikam"})


@pytest.fixture(autouse=True)
def outside_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBSITE_INSTANCE_ID", raising=False)


@pytest.fixture
async def hosted(tmp_path: Path) -> AsyncIterator[tuple[DevIssuer, Path]]:
    """A dev issuer mounted on a running aiohttp app, as the devhost mounts it."""
    app = web.Application()
    runner = web.AppRunner(app)
    port = free_port()  # known before the issuer exists: its URLs name it, as the host's do
    issuer = dev_issuer.mount(app, tmp_path / ".devhost", f"http://127.0.0.1:{port}")
    assert issuer is not None
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield issuer, tmp_path / ".devhost"
    await runner.cleanup()


def validator_for(issuer: DevIssuer) -> JwtValidator:
    return JwtValidator(dev_issuer_options(issuer.authority, CLIENT_ID, MAPPING))


async def test_minted_token_validates_through_the_entra_code_path(
    hosted: tuple[DevIssuer, Path],
) -> None:
    issuer, _ = hosted
    token = issuer.mint_token(
        "alice", "contoso", roles=["user"], groups=["finance"], audience=f"api://{CLIENT_ID}"
    )
    identity = await validator_for(issuer).validate(token)
    assert identity.principal.user_id == "alice"
    assert identity.principal.tenant == "contoso"
    assert identity.principal.roles == ("user",)
    assert identity.principal.groups == ("finance",)


async def test_non_finite_times_are_refused(hosted: tuple[DevIssuer, Path]) -> None:
    issuer, _ = hosted
    good = issuer.mint_token("alice", "contoso", audience=CLIENT_ID)
    header, payload, _ = good.split(".")
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    forever = claims.replace('"exp":', '"exp":Infinity,"was":')
    signing_input = f"{header}.{b64url(forever.encode())}"
    signature = issuer.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    token = f"{signing_input}.{b64url(signature)}"
    with pytest.raises(TokenError, match="malformed claims"):
        await validator_for(issuer).validate(token)


async def test_dev_tokens_meet_the_same_checks(hosted: tuple[DevIssuer, Path]) -> None:
    issuer, _ = hosted
    validator = validator_for(issuer)
    wrong_audience = issuer.mint_token("alice", "contoso", audience="api://another-app")
    with pytest.raises(TokenError, match="wrong audience"):
        await validator.validate(wrong_audience)
    with pytest.raises(TokenError, match="tenant not allowed"):
        await validator.validate(issuer.mint_token("mallory", "evilcorp", audience=CLIENT_ID))


async def test_entra_options_do_not_accept_dev_tokens(hosted: tuple[DevIssuer, Path]) -> None:
    issuer, _ = hosted
    # Same keys, but the Entra issuers: the dev issuer is only trusted where it is configured.
    entra_shaped = JwtValidator(JwtOptions(issuer.authority, CLIENT_ID, MAPPING))
    with pytest.raises(TokenError, match="untrusted issuer"):
        await entra_shaped.validate(issuer.mint_token("alice", "contoso", audience=CLIENT_ID))


async def test_key_is_persisted_across_restarts(hosted: tuple[DevIssuer, Path]) -> None:
    first, data_dir = hosted
    token = first.mint_token("alice", "contoso", roles=["admin"], audience=CLIENT_ID)
    restarted = DevIssuer(data_dir, first.authority.removesuffix(dev_issuer.ROUTE_ROOT))
    assert restarted.kid == first.kid
    assert restarted.jwks() == first.jwks()
    assert (await validator_for(restarted).validate(token)).principal.roles == ("admin",)
    key_file = data_dir / "dev-issuer" / dev_issuer.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_refuses_to_run_in_azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "4f6c0e0e2d")
    with pytest.raises(DevIssuerRefusedError):
        DevIssuer(tmp_path, "http://127.0.0.1:7071")
    assert not (tmp_path / "dev-issuer").exists()  # no key is even generated


def test_host_does_not_mount_it_in_azure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "4f6c0e0e2d")
    app = web.Application()
    assert dev_issuer.mount(app, tmp_path, "http://127.0.0.1:7071") is None
    assert len(app.router.routes()) == 0


def test_validation_refuses_the_dev_issuer_in_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    authority = "http://127.0.0.1:7071/runtime/dev-issuer"
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "4f6c0e0e2d")
    with pytest.raises(AuthConfigError, match="Azure"):
        dev_issuer_options(authority, CLIENT_ID, MAPPING)
    with pytest.raises(AuthConfigError, match="Azure"):
        JwtOptions(authority, CLIENT_ID, MAPPING)  # even configured by hand as a plain authority


def test_cli_prints_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(dev_issuer.AUDIENCE_SETTING, raising=False)
    argv = ["--user", "alice", "--tenant", "contoso", "--role", "user", "--groups", "finance,hr"]
    argv += ["--app-dir", str(tmp_path), "--audience", CLIENT_ID, "--port", "7999"]
    assert dev_issuer.main(argv) == 0
    token = capsys.readouterr().out.strip()
    assert token.count(".") == 2
    issuer = DevIssuer(tmp_path / ".devhost", "http://127.0.0.1:7999")
    _, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["iss"] == issuer.issuer("contoso")
    assert claims["groups"] == ["finance", "hr"]
    assert claims["roles"] == ["user"]


def test_cli_refuses_in_azure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "4f6c0e0e2d")
    argv = ["--user", "alice", "--tenant", "contoso", "--app-dir", str(tmp_path)]
    assert dev_issuer.main([*argv, "--audience", CLIENT_ID]) == 2
    assert capsys.readouterr().out == ""


def test_cli_audience_defaults_to_the_client_id_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(dev_issuer.AUDIENCE_SETTING, "abc")
    assert dev_issuer.main(["--user", "a", "--tenant", "contoso", "--app-dir", str(tmp_path)]) == 0
    monkeypatch.delenv(dev_issuer.AUDIENCE_SETTING)
    assert dev_issuer.main(["--user", "a", "--tenant", "contoso", "--app-dir", str(tmp_path)]) == 2


def test_lifetime_is_bounded(tmp_path: Path) -> None:
    issuer = DevIssuer(tmp_path, "http://127.0.0.1:7071")
    with pytest.raises(ValueError):
        issuer.mint_token("alice", "contoso", lifetime=30 * 24 * 3600)
