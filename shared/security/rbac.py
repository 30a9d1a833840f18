"""Roles to permissions, as data, and the one check every route makes."""

from __future__ import annotations

from shared.security.principal import Principal

VIEWER = frozenset({"documents:read"})
USER = VIEWER | {"chat:execute"}
DEVELOPER = USER | {"documents:write"}
ADMIN = DEVELOPER | {"cache:admin", "usage:read-all", "audit:read", "regions:read"}
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": VIEWER,
    "user": USER,
    "developer": DEVELOPER,
    "admin": ADMIN,
}
PERMISSIONS = frozenset().union(*ROLE_PERMISSIONS.values())
# Not a permission: routes declared with it only need an authenticated caller (`GET /api/me`
# must answer a signed-in person whatever their roles, so the console can say what they lack).
SIGNED_IN = "signed-in"


class PermissionDenied(Exception):
    """The caller is authenticated but lacks a permission (the HTTP edge answers 403)."""

    def __init__(self, permission: str, detail: str | None = None) -> None:
        super().__init__(detail or f"this needs the {permission} permission")
        self.permission = permission


def permissions_of(principal: Principal) -> frozenset[str]:
    """Everything the principal's roles grant (unknown roles grant nothing)."""
    granted: frozenset[str] = frozenset()
    for role in principal.roles:
        granted |= ROLE_PERMISSIONS.get(role, frozenset())
    return granted


def has_permission(principal: Principal, permission: str) -> bool:
    """Whether the principal may do `permission`."""
    return permission in permissions_of(principal)


def require_permission(principal: Principal, permission: str) -> None:
    """PermissionDenied unless the principal holds `permission` (SIGNED_IN: always passes)."""
    if permission == SIGNED_IN:
        return
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")  # a bug in our own wiring
    if not has_permission(principal, permission):
        raise PermissionDenied(permission)
