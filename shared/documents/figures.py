"""The figure cache: each figure's description, kept by image hash so nothing is described twice.

Container `figures`, partitioned by `/id` (the PNG's SHA-256): a re-ingested document, or
another document with the same image, costs a point read instead of a describer call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from shared.documents.layout import FigureDescription
from shared.documents.records import utc_now
from shared.storage.cosmos import ContainerSpec, CosmosStore

FIGURES_CONTAINER = ContainerSpec("figures", "/id")


class FigureCache:
    """Figure descriptions by image hash in Cosmos."""

    def __init__(self, store: CosmosStore, container: str = FIGURES_CONTAINER.name) -> None:
        """Use `container` of `store` (registered by the caller: see FIGURES_CONTAINER)."""
        self._store = store
        self._container = container

    async def get(self, sha256: str) -> FigureDescription | None:
        """The cached description of the image, or None."""
        item = await self._store.read(self._container, sha256, sha256)
        return FigureDescription(**item["description"]) if item else None

    async def has(self, sha256: str) -> bool:
        """Whether the image is described already."""
        return await self._store.read(self._container, sha256, sha256) is not None

    async def put(self, sha256: str, description: FigureDescription, describer: str) -> None:
        """Keeps a description (idempotent: the same image always gets the same item)."""
        item = {
            "id": sha256,
            "description": asdict(description),
            "describer": describer,
            "created": utc_now(),
        }
        await self._store.upsert(self._container, item)

    async def forget(self, hashes: Iterable[str]) -> int:
        """Deletes the descriptions of these images; returns how many existed."""
        removed = 0
        for sha256 in hashes:
            removed += await self._store.delete(self._container, sha256, sha256)
        return removed
