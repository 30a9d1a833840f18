"""The console's static shell: which files it serves, its headers, and how it signs people in."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.console import (
    WEB_ROOT,
    AssetNotFound,
    content_security_policy,
    read_asset,
    security_headers,
    sign_in,
)


def test_the_index_and_the_modules_it_loads_are_served_with_their_types() -> None:
    index = read_asset("")
    assert index.media_type.startswith("text/html") and b'src="js/main.js"' in index.body
    assert read_asset("js/main.js").media_type.startswith("text/javascript")
    assert read_asset("app.css").media_type.startswith("text/css")
    assert read_asset("index.html").etag == index.etag


@pytest.mark.parametrize(
    "path", ["../function_app.py", "js/../../host.json", ".hidden", "missing.js", "vendor"]
)
def test_nothing_outside_web_or_unknown_is_served(path: str) -> None:
    with pytest.raises(AssetNotFound):
        read_asset(path)


def test_a_file_of_an_unlisted_type_is_not_served(tmp_path: Path) -> None:
    (tmp_path / "secret.py").write_text("KEY = 1")
    (tmp_path / "page.html").write_text("<p>hi</p>")
    assert read_asset("page.html", tmp_path).body == b"<p>hi</p>"
    with pytest.raises(AssetNotFound):
        read_asset("secret.py", tmp_path)


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    file = tmp_path / "app.css"
    file.write_text("a {}")
    first = read_asset("app.css", tmp_path)
    file.write_text("b { color: red }")
    assert read_asset("app.css", tmp_path).etag != first.etag


def test_every_module_the_console_imports_exists() -> None:
    for module in (WEB_ROOT / "js").glob("*.js"):
        for line in module.read_text().splitlines():
            if line.startswith("import ") or ' from "./' in line:
                target = line.split('"')[1] if '"' in line else ""
                if target.startswith("./"):
                    assert (module.parent / target).is_file(), f"{module.name} imports {target}"


def test_sign_in_prefers_entra_then_the_dev_issuer() -> None:
    entra = sign_in("web-app", "https://login.microsoftonline.com/t1", (), "api-app", True)
    assert entra.as_json() == {
        "signin": "entra",
        "clientId": "web-app",
        "authority": "https://login.microsoftonline.com/t1",
        "scopes": ["api://api-app/.default"],
    }
    scoped = sign_in(
        "web-app", "https://login.microsoftonline.com/t1", ("api://x/Chat",), None, False
    )
    assert scoped.scopes == ("api://x/Chat",)
    assert sign_in(None, "https://x", (), "api-app", True).as_json() == {
        "signin": "dev",
        "devSignin": "/runtime/dev-signin",
    }
    assert sign_in(None, "https://x", (), "api-app", False).as_json() == {"signin": "none"}


def test_the_policy_allows_this_origin_and_only_the_entra_authority_besides() -> None:
    local = content_security_policy(sign_in(None, "https://x", (), None, True))
    assert "script-src 'self';" in local and "connect-src 'self';" in local
    assert "frame-src 'none'" in local and "'unsafe-inline'" not in local
    entra = sign_in("web", "https://login.microsoftonline.com/t1/v2.0", (), "api", False)
    policy = content_security_policy(entra)
    assert "connect-src 'self' https://login.microsoftonline.com;" in policy
    assert "frame-src https://login.microsoftonline.com;" in policy
    headers = security_headers(entra)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
