"""The one credential path every Azure client uses: managed identity first.

`DefaultAzureCredential` tries, in order, environment service principal, workload identity and
managed identity (`AZURE_CLIENT_ID` picks a user-assigned one), then developer logins. Keys and
connection strings are for the local emulators only, and never reach this module.
"""

from __future__ import annotations

import logging

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential

from shared.config import Settings

log = logging.getLogger(__name__)
_credential: AsyncTokenCredential | None = None


def get_credential(settings: Settings) -> AsyncTokenCredential:
    """The process-wide async credential, created on first use."""
    global _credential
    if _credential is None:
        client_id = settings.identity.client_id
        _credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        log.info(
            "Azure credential: DefaultAzureCredential (%s managed identity)",
            "user-assigned" if client_id else "system-assigned",
        )
    return _credential
