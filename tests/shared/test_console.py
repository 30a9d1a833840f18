"""The console's static shell: which files it serves, its headers, and how it signs people in."""

from __future__ import annotations

import re
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


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[index : index + 2], 16) / 255 for index in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_text_colours_meet_wcag_aa_contrast_on_their_backgrounds() -> None:
    css = (WEB_ROOT / "app.css").read_text()
    colours = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{6});", css))
    pairs = [  # (text, background) as the stylesheet combines them
        ("ink", "paper"), ("ink", "wash"), ("muted", "paper"), ("muted", "wash"),
        ("accent", "paper"), ("accent", "wash"), ("accent-ink", "accent"), ("danger", "paper"),
        ("ok", "paper"), ("warn", "paper"), ("ink", "mark"),
    ]  # fmt: skip
    ratios = {pair: contrast(colours[pair[0]], colours[pair[1]]) for pair in pairs}
    assert {pair: round(r, 2) for pair, r in ratios.items() if r < 4.5} == {}
    assert contrast("#ffffff", "#ffffff") == 1.0 and round(contrast("#000000", "#ffffff")) == 21
