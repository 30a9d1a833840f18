"""A local Azure AI Content Safety double: Prompt Shields (`text:shieldPrompt`, 2024-09-01).

It checks what the service checks (api-version, a JSON body with a string `userPrompt` of at
most 10K characters and at most 5 string `documents` of at most 10K characters together) and
answers `attackDetected` for the prompt and each document: true when the text contains
`attack_marker`. Scripted failures (429, 500) go through `fail`/`throttle` on the route
"shieldPrompt".
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.doubles import HttpDouble, error_response

API_VERSION = "2024-09-01"
MAX_PROMPT_CHARS = 10_000
MAX_DOCUMENTS = 5
MAX_DOCUMENT_CHARS = 10_000
ATTACK_MARKER = "SHIELDS-ATTACK"


class ContentSafetyDouble(HttpDouble):
    """Prompt Shields on a loopback port; an attack is any text containing the marker."""

    def __init__(self, *, key: str = "test-key", attack_marker: str = ATTACK_MARKER) -> None:
        super().__init__(key=key)
        self.attack_marker = attack_marker
        self.bodies: list[dict[str, Any]] = []

    def routes(self) -> list[web.RouteDef]:
        """The one shieldPrompt route."""
        return [web.post("/contentsafety/text:shieldPrompt", self._shield, name="shieldPrompt")]

    async def _shield(self, request: web.Request) -> web.Response:
        """Validates the body as the service does and answers per text."""
        if request.query.get("api-version") != API_VERSION:
            return error_response(404, "404", "Resource not found")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return error_response(400, "InvalidRequestBody", "The request body is not JSON.")
        problem = _problem(body)
        if problem:
            return error_response(400, "InvalidRequestBody", problem)
        self.bodies.append(body)
        return web.json_response(
            {
                "userPromptAnalysis": {
                    "attackDetected": self._attacked(body.get("userPrompt", ""))
                },
                "documentsAnalysis": [
                    {"attackDetected": self._attacked(document)}
                    for document in body.get("documents", [])
                ],
            }
        )

    def _attacked(self, text: str) -> bool:
        """True when `text` carries the scripted attack marker."""
        return self.attack_marker in text


def _problem(body: Any) -> str | None:
    """Why the body breaks the service's contract, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    prompt, documents = body.get("userPrompt", ""), body.get("documents", [])
    if not isinstance(prompt, str) or not isinstance(documents, list):
        return "userPrompt must be a string and documents a list of strings."
    if not all(isinstance(document, str) for document in documents):
        return "documents must be strings."
    if not prompt and not documents:
        return "userPrompt and documents cannot both be empty."
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"userPrompt is longer than {MAX_PROMPT_CHARS} characters."
    if len(documents) > MAX_DOCUMENTS:
        return f"At most {MAX_DOCUMENTS} documents are allowed."
    if sum(len(document) for document in documents) > MAX_DOCUMENT_CHARS:
        return f"documents total more than {MAX_DOCUMENT_CHARS} characters."
    return None
