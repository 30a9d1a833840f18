"""The web console's static shell: files under `web/`, served by the function app at /api/app/.

The shell is anonymous (a browser must load the page before anyone can sign in) and holds no
data: every call it makes to the API carries a bearer token and is authorised like any other.
Its Content-Security-Policy allows scripts, styles and fetches from this origin only (plus the
sign-in authority, for MSAL.js), so injected markup cannot run code or send data elsewhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from shared.errors import NotFound

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
INDEX = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
DEV_SIGNIN_PATH = "/runtime/dev-signin"  # served by devhost (devhost/dev_signin.py), never Azure


class AssetNotFound(NotFound):
    """No such file in the console."""


@dataclass(frozen=True)
class Asset:
    """One static file with the headers it is served with."""

    body: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class SignIn:
    """How the console signs people in: `entra` (MSAL.js), `dev` (devhost) or `none`."""

    mode: str
    client_id: str | None = None
    authority: str | None = None
    scopes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """What `/api/app/config.json` tells the page."""
        if self.mode == "entra":
            return {
                "signin": "entra",
                "clientId": self.client_id,
                "authority": self.authority,
                "scopes": list(self.scopes),
            }
        if self.mode == "dev":
            return {"signin": "dev", "devSignin": DEV_SIGNIN_PATH}
        return {"signin": "none"}


def sign_in(
    web_client_id: str | None,
    web_authority: str,
    web_scopes: tuple[str, ...],
    api_client_id: str | None,
    dev_issuer: bool,
) -> SignIn:
    """Entra ID when the console has an app registration, else the dev issuer when on."""
    if web_client_id:
        scopes = web_scopes or ((f"api://{api_client_id}/.default",) if api_client_id else ())
        return SignIn("entra", web_client_id, web_authority, scopes)
    return SignIn("dev" if dev_issuer else "none")


def content_security_policy(signin: SignIn) -> str:
    """The shell's CSP: this origin only, plus the authority's origin for MSAL's requests."""
    extra = ""
    if signin.mode == "entra" and signin.authority:
        parsed = urlparse(signin.authority)
        extra = f" {parsed.scheme}://{parsed.netloc}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            f"connect-src 'self'{extra}",
            "frame-src" + (extra or " 'none'"),  # MSAL renews tokens in a hidden iframe
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(signin: SignIn) -> dict[str, str]:
    """Headers every console response carries."""
    return {
        "Content-Security-Policy": content_security_policy(signin),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",  # revalidate with the ETag: a deployment shows at once
    }


def asset_path(path: str) -> str:
    """The file a request path names, relative to web/; '' is the shell's index."""
    parts = PurePosixPath(path.strip("/") or INDEX).parts
    if any(part in ("..", ".") or part.startswith(".") for part in parts):
        raise AssetNotFound(f"no console file {path!r}")
    return str(PurePosixPath(*parts))


@lru_cache(maxsize=64)
def _load(file: Path, modified_ns: int) -> Asset:
    body = file.read_bytes()
    return Asset(body, MEDIA_TYPES[file.suffix], '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def read_asset(path: str, root: Path = WEB_ROOT) -> Asset:
    """The console file at `path`, read again only when it changes on disk."""
    relative = asset_path(path)
    file = (root / relative).resolve()
    if (
        not file.is_relative_to(root.resolve())
        or not file.is_file()
        or file.suffix not in MEDIA_TYPES
    ):
        raise AssetNotFound(f"no console file {relative!r}")
    return _load(file, file.stat().st_mtime_ns)
