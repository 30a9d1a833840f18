"""A local Image Analysis 4.0 (2023-10-01) double: the synchronous `imageanalysis:analyze` POST.

It checks what the real service checks (api-version, features, an image of 50-16000 px and at
most 20 MB) and answers with the features asked for. `caption_supported=False` plays a region
without caption support: asking for caption or denseCaptions is then a 400, as in the service.
Scripted failures go through `fail`/`throttle` on the route "analyze".
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from PIL import Image, UnidentifiedImageError

from tests.doubles import HttpDouble, error_response

API_VERSION = "2023-10-01"
MIN_PIXELS = 50
MAX_PIXELS = 16000
MAX_BYTES = 20 * 1024 * 1024
CAPTION_UNSUPPORTED = "The feature 'Caption' is not supported in this region."
KNOWN_FEATURES = frozenset(
    {"caption", "densecaptions", "tags", "objects", "read", "people", "smartcrops"}
)


@dataclass
class ReceivedImage:
    """What one analyze request carried."""

    features: list[str]
    width: int
    height: int
    size: int


class ImageAnalysisDouble(HttpDouble):
    """Image Analysis on a loopback port, answering with the scripted caption, tags and text."""

    def __init__(
        self,
        *,
        key: str = "test-key",
        caption_supported: bool = True,
        caption: tuple[str, float] = ("a bar chart showing revenue by quarter", 0.83),
        tags: list[tuple[str, float]] | None = None,
        lines: list[str] | None = None,
    ) -> None:
        super().__init__(key=key)
        self.caption_supported = caption_supported
        self.caption = caption
        self.tags = tags if tags is not None else [("text", 0.99), ("chart", 0.91), ("font", 0.42)]
        self.lines = lines if lines is not None else ["Revenue 2024", "Q1 Q2 Q3 Q4"]
        self.received: list[ReceivedImage] = []

    def routes(self) -> list[web.RouteDef]:
        """The one analyze route."""
        return [web.post("/computervision/imageanalysis:analyze", self._analyze, name="analyze")]

    async def _analyze(self, request: web.Request) -> web.Response:
        if request.query.get("api-version") != API_VERSION:
            return error_response(404, "404", "Resource not found.")
        features = [name.lower() for name in request.query.get("features", "").split(",") if name]
        problem = self._check_features(features)
        if problem is not None:
            return problem
        body = await request.read()
        image = _open_image(body)
        if isinstance(image, web.Response):
            return image
        self.received.append(ReceivedImage(features, image.width, image.height, len(body)))
        return web.json_response(self._result(features, image.width, image.height))

    def _check_features(self, features: list[str]) -> web.Response | None:
        unknown = [name for name in features if name not in KNOWN_FEATURES]
        if not features or unknown:
            return _invalid("InvalidParameter", f"Invalid visual features: {unknown or 'none'}.")
        if not self.caption_supported and {"caption", "densecaptions"} & set(features):
            return _invalid("NotSupportedFeature", CAPTION_UNSUPPORTED)
        return None

    def _result(self, features: list[str], width: int, height: int) -> dict[str, Any]:
        result: dict[str, Any] = {
            "modelVersion": "2023-10-01",
            "metadata": {"width": width, "height": height},
        }
        if "caption" in features:
            result["captionResult"] = {"text": self.caption[0], "confidence": self.caption[1]}
        if "tags" in features:
            result["tagsResult"] = {
                "values": [{"name": name, "confidence": score} for name, score in self.tags]
            }
        if "read" in features:
            result["readResult"] = {
                "blocks": [{"lines": [_line(text, row) for row, text in enumerate(self.lines)]}]
            }
        return result


def _open_image(body: bytes) -> Image.Image | web.Response:
    """The decoded image, or the service's 400 for a bad size or format."""
    if len(body) > MAX_BYTES:
        return _invalid("InvalidImageSize", "The input image is too large.")
    try:
        image = Image.open(io.BytesIO(body))
        image.load()
    except (UnidentifiedImageError, OSError):
        return _invalid("InvalidImageFormat", "Input data is not a valid image.")
    if not all(MIN_PIXELS <= side <= MAX_PIXELS for side in image.size):
        return _invalid(
            "InvalidImageSize",
            f"Image must be between {MIN_PIXELS} x {MIN_PIXELS} and "
            f"{MAX_PIXELS} x {MAX_PIXELS} pixels.",
        )
    return image


def _invalid(inner_code: str, message: str) -> web.Response:
    return error_response(
        400,
        "InvalidRequest",
        message,
        innererror={"code": inner_code, "message": message},
    )


def _line(text: str, row: int) -> dict[str, Any]:
    """A read line with a polygon and its words, laid out on rows 30 px apart."""
    top, bottom = 10 + 30 * row, 34 + 30 * row
    words = []
    left = 10
    for word in text.split():
        right = left + 12 * len(word)
        words.append(
            {"text": word, "boundingPolygon": _points(left, top, right, bottom), "confidence": 0.98}
        )
        left = right + 12
    return {"text": text, "boundingPolygon": _points(10, top, left, bottom), "words": words}


def _points(left: int, top: int, right: int, bottom: int) -> list[dict[str, int]]:
    return [
        {"x": left, "y": top},
        {"x": right, "y": top},
        {"x": right, "y": bottom},
        {"x": left, "y": bottom},
    ]
