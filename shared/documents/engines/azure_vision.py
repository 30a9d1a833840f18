"""Azure AI Vision Image Analysis 4.0 as a FigureDescriber, through the real async SDK.

One `describe` is one synchronous analyze call asking for caption, tags and read (OCR).
Captions exist only in some regions: when the service says so, the call is repeated once
without caption, and caption is never asked of that endpoint again in this process.
"""

from __future__ import annotations

import asyncio
import io
import math
from typing import Any

from azure.ai.vision.imageanalysis.aio import ImageAnalysisClient
from azure.ai.vision.imageanalysis.models import ImageAnalysisResult, VisualFeatures
from azure.core.exceptions import AzureError, HttpResponseError
from PIL import Image, UnidentifiedImageError

from shared.documents.engines.azure_layout import (
    Credential,
    build_retry_policy,
    check_endpoint,
    map_service_error,
    service_error_detail,
)
from shared.documents.engines.base import ExtractionError, TransientEngineError
from shared.documents.layout import FigureDescription

DESCRIBER_NAME = "image-analysis"
SERVICE = "Image Analysis"
MIN_SIDE_PX = 50
MAX_SIDE_PX = 16000
MAX_BYTES = 20 * 1024 * 1024
WITH_CAPTION = [VisualFeatures.CAPTION, VisualFeatures.TAGS, VisualFeatures.READ]
WITHOUT_CAPTION = [VisualFeatures.TAGS, VisualFeatures.READ]
_PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})

# Endpoints whose region refused captions: the refusal is a property of the resource's region,
# so asking again would only double every call for the life of the process.
_CAPTIONLESS_ENDPOINTS: set[str] = set()


def forget_caption_refusals() -> None:
    """Forgets which endpoints refused captions (after a resource moves region; tests)."""
    _CAPTIONLESS_ENDPOINTS.clear()


class ImageAnalysisDescriber:
    """Describes figure images with Image Analysis 4.0: caption, confident tags, read text.

    The SDK client is created on first use and kept; call `close()` or use `async with` when
    done. Extra keyword arguments go to the SDK client.
    """

    name = DESCRIBER_NAME

    def __init__(
        self,
        endpoint: str,
        credential: Credential,
        *,
        min_tag_confidence: float = 0.5,
        max_retries: int = 3,
        retry_backoff_seconds: float = 0.8,
        max_retry_after_seconds: float = 60.0,
        timeout_seconds: float = 60.0,
        **client_options: Any,
    ) -> None:
        check_endpoint(endpoint, credential)
        self.endpoint = endpoint
        self.min_tag_confidence = min_tag_confidence
        self.timeout_seconds = timeout_seconds
        self._credential = credential
        self._client_options = {
            "retry_policy": build_retry_policy(
                max_retries, retry_backoff_seconds, max_retry_after_seconds
            ),
            **client_options,
        }
        self._client: ImageAnalysisClient | None = None

    @property
    def caption_supported(self) -> bool:
        """False once this endpoint's region refused captions (for the process lifetime)."""
        return _endpoint_key(self.endpoint) not in _CAPTIONLESS_ENDPOINTS

    async def describe(self, png: bytes) -> FigureDescription:
        """Caption (None where the region has none), tags and the text read in the image."""
        image = fit_for_analysis(png)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await self._analyze(image)
        except TimeoutError as error:
            raise TransientEngineError(
                f"{SERVICE} did not answer within {self.timeout_seconds:g} s"
            ) from error
        except AzureError as error:
            mapped = map_service_error(error, SERVICE)
            if mapped is error:
                raise
            raise mapped from error
        return describe_result(result, self.min_tag_confidence)

    async def close(self) -> None:
        """Closes the SDK client (and its HTTP session)."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __aenter__(self) -> ImageAnalysisDescriber:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _sdk(self) -> ImageAnalysisClient:
        if self._client is None:
            self._client = ImageAnalysisClient(
                self.endpoint, self._credential, **self._client_options
            )
        return self._client

    async def _analyze(self, image: bytes) -> ImageAnalysisResult:
        """Analyzes with caption where supported; falls back once when the region refuses."""
        if self.caption_supported:
            try:
                return await self._sdk().analyze(image, WITH_CAPTION)
            except HttpResponseError as error:
                if not is_caption_unsupported(error):
                    raise
                _CAPTIONLESS_ENDPOINTS.add(_endpoint_key(self.endpoint))
        return await self._sdk().analyze(image, WITHOUT_CAPTION)


def is_caption_unsupported(error: HttpResponseError) -> bool:
    """Whether a 400 says the region has no caption feature (NotSupportedFeature)."""
    if error.status_code != 400:
        return False
    code, message = service_error_detail(error)
    outer = (error.error.message if error.error else None) or ""
    text = f"{message} {outer}".lower()
    return code == "NotSupportedFeature" or ("caption" in text and "not supported" in text)


def describe_result(result: ImageAnalysisResult, min_tag_confidence: float) -> FigureDescription:
    """Our FigureDescription from the service's result."""
    tags = [
        tag.name
        for tag in (result.tags.list if result.tags else [])
        if tag.confidence >= min_tag_confidence
    ]
    lines = [
        line.text for block in (result.read.blocks if result.read else []) for line in block.lines
    ]
    return FigureDescription(
        caption=result.caption.text if result.caption else None,
        tags=tags,
        text="\n".join(lines),
        source=DESCRIBER_NAME,
    )


def fit_for_analysis(image_bytes: bytes, max_bytes: int = MAX_BYTES) -> bytes:
    """The image unchanged when the service accepts it (sides 50-16000 px, at most 20 MB),
    else a PNG scaled (and, for extreme aspect ratios, padded) into those limits."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as opened:
            opened.load()
            image = opened.copy()
    except (UnidentifiedImageError, OSError) as error:
        raise ExtractionError(f"the figure image could not be decoded: {error}") from error
    scale = _scale_into_limits(*image.size)
    if scale == 1.0 and len(image_bytes) <= max_bytes:
        return image_bytes
    fitted = _padded(_scaled(image, scale))
    data = _png(fitted)
    for _ in range(8):  # each pass aims 10% under the limit; PNG size is not exactly linear
        if len(data) <= max_bytes:
            return data
        fitted = _padded(_scaled(fitted, math.sqrt(max_bytes / len(data)) * 0.9))
        data = _png(fitted)
    raise ExtractionError(f"the figure image stays above {max_bytes} bytes when downscaled")


def _scale_into_limits(width: int, height: int) -> float:
    """The factor that brings the short side to at least 50 px and the long one to at most
    16000 px (the long side wins when both cannot hold)."""
    scale = 1.0
    if min(width, height) < MIN_SIDE_PX:
        scale = MIN_SIDE_PX / min(width, height)
    if max(width, height) * scale > MAX_SIDE_PX:
        scale = MAX_SIDE_PX / max(width, height)
    return scale


def _scaled(image: Image.Image, scale: float) -> Image.Image:
    if scale == 1.0:
        return image
    size = (
        min(MAX_SIDE_PX, max(1, round(image.width * scale))),
        min(MAX_SIDE_PX, max(1, round(image.height * scale))),
    )
    return image.resize(size, Image.Resampling.LANCZOS)


def _padded(image: Image.Image) -> Image.Image:
    """The image centred on a white canvas whose short side is 50 px, when it is shorter."""
    if min(image.size) >= MIN_SIDE_PX:
        return image
    size = (max(image.width, MIN_SIDE_PX), max(image.height, MIN_SIDE_PX))
    canvas = Image.new("RGB", size, "white")
    offset = ((size[0] - image.width) // 2, (size[1] - image.height) // 2)
    rgba = image.convert("RGBA")
    canvas.paste(rgba, offset, rgba)
    return canvas


def _png(image: Image.Image) -> bytes:
    if image.mode not in _PNG_MODES:  # e.g. CMYK or YCbCr from a JPEG
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _endpoint_key(endpoint: str) -> str:
    return endpoint.rstrip("/").lower()
