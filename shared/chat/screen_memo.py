"""Each distinct question is screened for prompt injection once per process, not per request.

Screening a question embeds it with MiniLM (the learned detector) and, when configured, asks
Prompt Shields: ~16-22 ms of CPU per call on our 2 cores, the largest cost left on a cache
hit, whose question is by definition one asked before. The screen is a pure function of the
text for a given detector and policy (both fixed for the life of the process), so its outcome
is kept for the most recent `size` distinct texts. A verdict made while Prompt Shields could
not answer ("unavailable" or "partial") is not kept: the next request asks again.

What is kept is the screen's outcome only: the caller still audits and refuses per request.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from shared.security.injection import Screening

TRANSIENT = frozenset({"unavailable", "partial"})


class UserScreen(Protocol):
    """What is memoised: InjectionScreen.screen_user."""

    async def screen_user(self, text: str) -> Screening:
        """The action for a user question."""
        ...


class ScreenMemo:
    """`screen_user` with the outcomes of the last `size` distinct texts kept."""

    def __init__(self, screen: UserScreen, size: int = 4096) -> None:
        """Memoise `screen`."""
        self._screen = screen
        self._size = size
        self._kept: OrderedDict[str, Screening] = OrderedDict()

    async def screen_user(self, text: str) -> Screening:
        """The kept outcome for `text`, or the screen's (kept unless Shields was unsure)."""
        kept = self._kept.get(text)
        if kept is not None:
            self._kept.move_to_end(text)
            return kept
        screening = await self._screen.screen_user(text)
        if screening.shields not in TRANSIENT:
            self._kept[text] = screening
            if len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return screening


__all__ = ["ScreenMemo"]
