"""Every authenticated route's gate: throttle, authenticate, authorise, and audit failures.

Order matters: a source throttled for bad credentials is refused before its credentials are
checked (so a 429 reveals nothing about a guess); a bad credential is audited and counted
against its source; a missing permission is audited. Throttling fails open: when the shared
store cannot be reached, credentials are still checked, only not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from shared.security.audit import AuditLog
from shared.security.auth import (
    Authenticator,
    IdentityProviderUnavailable,
    Unauthenticated,
    presented_credential,
)
from shared.security.principal import Principal
from shared.security.rbac import PermissionDenied, require_permission
from shared.security.throttle import CredentialsThrottled, CredentialThrottle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Gatekeeper:
    """Admits a caller to a route that needs one permission."""

    authenticator: Authenticator
    audit: AuditLog
    throttle: CredentialThrottle | None = None

    async def admit(
        self, headers: Mapping[str, str], peer: str | None, target: str, permission: str
    ) -> Principal:
        """The caller, or Unauthenticated / IdentityProviderUnavailable / CredentialsThrottled /
        PermissionDenied."""
        source = self.throttle.source_of(headers, peer) if self.throttle else "-"
        if presented_credential(headers) is not None:
            await self._check(source)
        try:
            principal = await self.authenticator.authenticate(headers)
        except (Unauthenticated, IdentityProviderUnavailable) as error:
            await self.audit.record(
                "auth_failure", actor="-", tenant=None, outcome="denied", target=target,
                reason=str(error),
            )  # fmt: skip
            if isinstance(error, Unauthenticated) and error.invalid_token:
                await self._count_failure(source, target)
            raise
        try:
            require_permission(principal, permission)
        except PermissionDenied:
            await self.audit.record(
                "permission_denied", actor=principal.user_id, tenant=principal.tenant,
                outcome="denied", target=target, reason=permission,
            )  # fmt: skip
            raise
        return principal

    async def _check(self, source: str) -> None:
        if self.throttle is None:
            return
        try:
            await self.throttle.check(source)
        except CredentialsThrottled:
            raise
        except Exception:  # the store is down: check the credentials anyway
            log.warning("credential throttle unavailable; not checked", exc_info=True)

    async def _count_failure(self, source: str, target: str) -> None:
        """Counts the failure; raises the 429 when it emptied the source's allowance."""
        if self.throttle is None:
            return
        try:
            refusal = await self.throttle.failed(source)
        except Exception:
            log.warning("credential throttle unavailable; failure not counted", exc_info=True)
            return
        if refusal is None:
            return
        await self.audit.record(
            "auth_throttled", actor="-", tenant=None, outcome="blocked", target=target,
            reason=(
                f"source {source}: over {self.throttle.per_minute} bad credentials a minute; "
                f"blocked for {refusal.retry_after_seconds} s"
            ),
        )  # fmt: skip
        raise refusal from None


__all__ = ["Gatekeeper"]
