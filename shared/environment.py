"""The process environment: the one place docgate reads `os.environ`.

Settings are parsed from it once (`shared.config`); the platform marker below is read from it
by the few checks that must hold however the app was configured (a local-only authority or the
dev issuer is refused on an Azure instance, even when built by hand).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Set by App Service / Azure Functions on every instance; never set by docgate's own settings.
AZURE_INSTANCE_MARKER = "WEBSITE_INSTANCE_ID"
# Variables the platform sets and docgate reads, beside its own settings (shared.config).
PLATFORM_VARIABLES: tuple[str, ...] = (AZURE_INSTANCE_MARKER,)


def environment() -> Mapping[str, str]:
    """The process environment: App Settings in Azure, `local.settings.json` Values locally."""
    return os.environ


def running_in_azure(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs on an App Service / Functions instance."""
    return bool((environment() if environ is None else environ).get(AZURE_INSTANCE_MARKER))
