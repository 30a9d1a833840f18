"""What the ingestion activities use: built once per process by the wiring (shared.services)."""

from __future__ import annotations

from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob.aio import BlobClient, BlobServiceClient

from shared.cache import SemanticCache
from shared.documents.chunking import ChunkingOptions
from shared.documents.engines.base import FigureDescriber, LayoutEngine
from shared.documents.figures import FigureCache
from shared.documents.validation import ValidationLimits
from shared.documents.work import WorkArea
from shared.embeddings import Embedder
from shared.ingestion.contract import Job
from shared.security.audit import AuditLog
from shared.security.injection import InjectionScreen
from shared.storage.cosmos import CosmosStore


class BlobGone(Exception):
    """The blob version being ingested was overwritten or deleted meanwhile."""


@dataclass(frozen=True)
class IngestionContext:
    """Clients, engines and limits of the ingestion steps."""

    blobs: BlobServiceClient
    store: CosmosStore
    work_container: str
    limits: ValidationLimits
    pages_per_batch: int
    extraction_mode: str
    figure_min_pixels: int
    chunking: ChunkingOptions
    embedding_batch_size: int
    local_engine: LayoutEngine
    azure_engine: LayoutEngine | None
    describer: FigureDescriber
    embedder: Embedder
    figures: FigureCache
    answers: SemanticCache | None  # answers citing a re-indexed document are invalidated
    screen: InjectionScreen  # chunks are screened for prompt injection at ingestion
    audit: AuditLog  # flagged documents are audited once per version

    def work_area(self, job: Job) -> WorkArea:
        """The intermediate blobs of the job's document version."""
        return WorkArea(self.blobs, self.work_container, job.document_id, job.sha256)

    def blob(self, job: Job) -> BlobClient:
        """The uploaded blob the job ingests."""
        return self.blobs.get_blob_client(job.container, job.name)

    async def download_version(self, job: Job) -> bytes:
        """The exact blob version the job names (ETag-conditioned), or BlobGone."""
        try:
            downloader = await self.blob(job).download_blob(
                etag=job.etag, match_condition=MatchConditions.IfNotModified
            )
            return await downloader.readall()
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise BlobGone(f"{job.container}/{job.name} changed or was deleted") from error

    async def is_current_version(self, job: Job) -> bool:
        """Whether the blob still holds the version the job ingests."""
        try:
            properties = await self.blob(job).get_blob_properties()
        except ResourceNotFoundError:
            return False
        return str(properties.etag).strip('"') == job.etag

    async def tag(self, container: str, name: str, tags: dict[str, str]) -> None:
        """Marks a blob with index tags (they do not change its ETag: no new trigger fires)."""
        try:
            await self.blobs.get_blob_client(container, name).set_blob_tags(tags)
        except (ResourceNotFoundError, ResourceModifiedError):
            return  # deleted or replaced meanwhile: nothing to tag
