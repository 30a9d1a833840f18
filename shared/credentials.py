"""The one credential path every Azure client uses: managed identity first.

`DefaultAzureCredential` tries, in order, environment service principal, workload identity and
managed identity (`AZURE_CLIENT_ID` picks a user-assigned one), then developer logins. Keys and
connection strings are for the local emulators only, and never reach this module.
"""

from __future__ import annotations

import logging

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential

log = logging.getLogger(__name__)


def create_credential(client_id: str | None) -> AsyncTokenCredential:
    """The app's async credential (the wiring creates one per process, on first use)."""
    log.info(
        "Azure credential: DefaultAzureCredential (%s managed identity)",
        "user-assigned" if client_id else "system-assigned",
    )
    return DefaultAzureCredential(managed_identity_client_id=client_id)
