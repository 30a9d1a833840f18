"""docgate's settings: small typed sections (`sections.py`), read once from the environment.

In Azure the environment holds the App Settings; locally the host loads `local.settings.json`
`Values` into it. `SETTINGS` lists every setting with its section, documentation, default,
parser and secret flag: it is the one way to enumerate what the app reads (the tests check the
sample settings file and the README against it, and the deployment templates can too).
Settings are data: components never import this package; the wiring (`shared.services`) hands
each one the values it uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cache
from typing import Any, get_type_hints

from shared.config import parsers
from shared.config.sections import (
    DECLARATION,
    AuthSettings,
    BreakerSettings,
    BudgetSettings,
    CacheSettings,
    ChatSettings,
    CosmosSettings,
    CostSettings,
    Declaration,
    EmbeddingSettings,
    ExtractionSettings,
    HealthSettings,
    IdentitySettings,
    IngestionSettings,
    InjectionSettings,
    LlmSettings,
    ProvisioningSettings,
    RateLimitSettings,
    StorageSettings,
    TelemetrySettings,
    WebSettings,
)
from shared.environment import environment


class SettingsError(Exception):
    """One or more settings are missing or invalid; the message names each of them."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All of docgate's settings, parsed and validated, one section per feature."""

    storage: StorageSettings
    cosmos: CosmosSettings
    provisioning: ProvisioningSettings
    identity: IdentitySettings
    telemetry: TelemetrySettings
    health: HealthSettings
    ingestion: IngestionSettings
    extraction: ExtractionSettings
    embedding: EmbeddingSettings
    llm: LlmSettings
    breaker: BreakerSettings
    chat: ChatSettings
    cache: CacheSettings
    rate_limits: RateLimitSettings
    cost: CostSettings
    budgets: BudgetSettings
    auth: AuthSettings
    injection: InjectionSettings
    web: WebSettings

    def __repr__(self) -> str:
        """Shows every setting by its path but masks secrets: a logged Settings leaks none."""
        shown = ", ".join(
            f"{item.path}=" + ("'***'" if item.secret and value else repr(value))
            for item in SETTINGS
            for value in [item.read(self)]
        )
        return f"Settings({shown})"


@dataclass(frozen=True, kw_only=True)
class Setting(Declaration):
    """One environment variable as declared, and where it lands (section.field)."""

    section: str
    field: str

    @property
    def path(self) -> str:
        """`section.field`, e.g. `cosmos.endpoint`."""
        return f"{self.section}.{self.field}"

    def read(self, settings: Settings) -> Any:
        """This setting's value in `settings`."""
        return getattr(getattr(settings, self.section), self.field)


# Section name -> section type, in field order (the annotations are strings until resolved).
_TYPES: dict[str, type] = get_type_hints(Settings)


def _declared() -> tuple[Setting, ...]:
    """Every section field's declaration, in section order."""
    return tuple(
        Setting(**vars(found), section=name, field=item.name)
        for name, section in _TYPES.items()
        for item in fields(section)
        for found in [item.metadata[DECLARATION]]
    )


SETTINGS: tuple[Setting, ...] = _declared()


def _parse(setting: Setting, environ: Mapping[str, str], problems: list[str]) -> Any:
    """One setting's value (blank counts as unset); a problem is recorded, never raised."""
    raw = environ.get(setting.env)
    if raw is None or raw.strip() == "":
        raw = setting.default
    if raw is None:
        if setting.required:
            problems.append(f"{setting.env} is required: {setting.doc}")
        return None
    try:
        return setting.parse(raw.strip())
    except ValueError as error:
        if setting.secret:  # the parser's message may quote the value (float() does)
            problems.append(f"{setting.env}=*** is invalid (details hidden: secret)")
        else:
            problems.append(f"{setting.env}={raw!r} is invalid: {error}")
        return None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Reads and validates every setting; raises SettingsError naming each bad one."""
    source = environment() if environ is None else environ
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {name: {} for name in _TYPES}
    for setting in SETTINGS:
        values[setting.section][setting.field] = _parse(setting, source, problems)
    built = {name: _TYPES[name](**section) for name, section in values.items()}
    for section in built.values():
        check = getattr(section, "problems", None)
        problems += check() if check else []
    if problems:
        raise SettingsError("Invalid docgate settings:\n- " + "\n- ".join(problems))
    return Settings(**built)


@cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use."""
    return load_settings()


__all__ = [
    "SETTINGS",
    "AuthSettings",
    "BreakerSettings",
    "BudgetSettings",
    "CacheSettings",
    "ChatSettings",
    "CosmosSettings",
    "CostSettings",
    "EmbeddingSettings",
    "ExtractionSettings",
    "HealthSettings",
    "IdentitySettings",
    "IngestionSettings",
    "InjectionSettings",
    "LlmSettings",
    "ProvisioningSettings",
    "RateLimitSettings",
    "Setting",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "TelemetrySettings",
    "WebSettings",
    "get_settings",
    "load_settings",
    "parsers",
]
