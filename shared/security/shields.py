"""Azure AI Content Safety Prompt Shields: an optional second opinion on user text and sources.

`POST {endpoint}/contentsafety/text:shieldPrompt?api-version=2024-09-01` with
`{"userPrompt": str, "documents": [str]}` answers `attackDetected` booleans for the prompt and
each document. One request takes a prompt of at most 10K characters and at most 5 documents of
at most 10K characters in total, so longer input is split into pieces (with a small overlap, so
a phrase cut at a boundary is still seen whole in one piece) and packed into several requests,
capped at `max_calls`: past the cap the rest is left to the heuristics and the result says so.

Any failure (network, timeout, 429, 5xx, an unexpected body) raises `ShieldsError`; the caller
falls back to the heuristics. There are no retries: this sits on the chat path, and a throttled
shield must not stall an answer the heuristics can screen on their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential

API_VERSION = "2024-09-01"
PATH = "/contentsafety/text:shieldPrompt"
SCOPE = "https://cognitiveservices.azure.com/.default"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
MAX_PROMPT_CHARS = 10_000
MAX_DOCUMENTS = 5
MAX_DOCUMENT_CHARS = 10_000  # all documents of one request together
OVERLAP_CHARS = 200
DEFAULT_MAX_CALLS = 4
DEFAULT_TIMEOUT_SECONDS = 5.0


class ShieldsError(Exception):
    """Prompt Shields gave no usable answer; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ShieldsResult:
    """Whether an attack was found in the prompt and in each document, and if all was seen."""

    user_attack: bool
    document_attacks: tuple[bool, ...]
    complete: bool = True


@dataclass
class ShieldsRequest:
    """One request body and, for each document piece in it, the index of its document."""

    user_prompt: str = ""
    documents: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)

    def room(self) -> int:
        """Characters still free for documents in this request."""
        return MAX_DOCUMENT_CHARS - sum(len(document) for document in self.documents)

    def body(self) -> dict[str, Any]:
        """The JSON body the service expects."""
        return {"userPrompt": self.user_prompt, "documents": self.documents}


def split_text(text: str, limit: int, overlap: int = OVERLAP_CHARS) -> list[str]:
    """`text` in pieces of at most `limit` characters, consecutive pieces sharing `overlap`."""
    if len(text) <= limit:
        return [text]
    step = limit - overlap
    return [text[start : start + limit] for start in range(0, len(text) - overlap, step)]


def plan_requests(user_prompt: str, documents: Sequence[str]) -> list[ShieldsRequest]:
    """The requests that cover the prompt and every document within the service's limits."""
    requests: list[ShieldsRequest] = []
    for piece in split_text(user_prompt, MAX_PROMPT_CHARS) if user_prompt else []:
        requests.append(ShieldsRequest(user_prompt=piece))
    pieces = [
        (index, piece)
        for index, document in enumerate(documents)
        for piece in split_text(document, MAX_DOCUMENT_CHARS)
    ]
    for owner, piece in pieces:
        target = next((r for r in requests if _fits(r, piece)), None)
        if target is None:
            target = ShieldsRequest()
            requests.append(target)
        target.documents.append(piece)
        target.owners.append(owner)
    return requests


def _fits(request: ShieldsRequest, piece: str) -> bool:
    """True when `piece` can join `request` without breaking the count or size limit."""
    return len(request.documents) < MAX_DOCUMENTS and len(piece) <= request.room()


class PromptShields:
    """A small async client for shieldPrompt, authenticated by key (doubles) or Entra token."""

    def __init__(
        self,
        endpoint: str,
        *,
        key: str | None = None,
        credential: AsyncTokenCredential | None = None,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_calls: int = DEFAULT_MAX_CALLS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if key is None and credential is None:
            raise ValueError("Prompt Shields needs a key or a credential")
        self.url = f"{endpoint.rstrip('/')}{PATH}"
        self._key = key
        self._credential = credential
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self.max_calls = max_calls
        self._session = session
        self._owns_session = session is None

    async def analyze(self, user_prompt: str, documents: Sequence[str] = ()) -> ShieldsResult:
        """Attack verdicts for the prompt and each document; raises ShieldsError on failure."""
        planned = plan_requests(user_prompt, documents)
        sent = planned[: self.max_calls]
        answers = await asyncio.gather(*(self._send(request) for request in sent))
        document_attacks = [False] * len(documents)
        user_attack = False
        for request, answer in zip(sent, answers, strict=True):
            user_attack |= bool(request.user_prompt) and _user_attack(answer)
            for owner, attacked in zip(
                request.owners, _document_attacks(answer, request), strict=True
            ):
                document_attacks[owner] |= attacked
        return ShieldsResult(user_attack, tuple(document_attacks), len(sent) == len(planned))

    async def close(self) -> None:
        """Closes the HTTP session if this client opened it."""
        if self._session is not None and self._owns_session:
            await self._session.close()
            self._session = None

    async def _send(self, request: ShieldsRequest) -> dict[str, Any]:
        """One shieldPrompt call; its JSON answer or ShieldsError."""
        session = self._get_session()
        headers = await self._auth_headers()
        try:
            async with session.post(
                self.url,
                params={"api-version": API_VERSION},
                json=request.body(),
                headers=headers,
                timeout=self._timeout,
            ) as response:
                if response.status != 200:
                    detail = (await response.text())[:300]
                    raise ShieldsError(f"HTTP {response.status}: {detail}", response.status)
                answer = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise ShieldsError(f"{type(error).__name__}: {error}") from error
        if not isinstance(answer, dict):
            raise ShieldsError("answer is not a JSON object")
        return answer

    async def _auth_headers(self) -> dict[str, str]:
        """The key header, or a bearer token for the Cognitive Services scope."""
        if self._key is not None:
            return {KEY_HEADER: self._key}
        assert self._credential is not None  # checked in __init__
        token = await self._credential.get_token(SCOPE)
        return {"Authorization": f"Bearer {token.token}"}

    def _get_session(self) -> aiohttp.ClientSession:
        """The shared session, opened on first use (inside the running event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session


def _user_attack(answer: dict[str, Any]) -> bool:
    """`userPromptAnalysis.attackDetected`, strictly typed."""
    analysis = answer.get("userPromptAnalysis")
    if not isinstance(analysis, dict) or not isinstance(analysis.get("attackDetected"), bool):
        raise ShieldsError("answer without userPromptAnalysis.attackDetected")
    return analysis["attackDetected"]


def _document_attacks(answer: dict[str, Any], request: ShieldsRequest) -> list[bool]:
    """`documentsAnalysis[].attackDetected`, one per document sent."""
    analyses = answer.get("documentsAnalysis") or []
    if len(analyses) != len(request.documents):
        raise ShieldsError(f"{len(analyses)} document analyses for {len(request.documents)} sent")
    flags = [item.get("attackDetected") if isinstance(item, dict) else None for item in analyses]
    if not all(isinstance(flag, bool) for flag in flags):
        raise ShieldsError("document analysis without attackDetected")
    return [bool(flag) for flag in flags]
