"""When the cache must not be read, or must not be written.

Rules, first match wins; `phase` is "lookup" (may we answer from the cache?) or "store" (may we
keep this answer?):
- cache control "no-store": neither read nor store; "no-cache": do not read, but may store
  (the caller wants a fresh answer, and a fresh answer is fine to keep);
- tool calls or tool definitions in the request: the answer depends on tool output;
- temperature above `max_temperature`: the caller asked for variety, not a replay;
- a context-dependent follow-up: earlier user turns exist and the last one leans on them
  (shared.retrieval.condense.is_follow_up, or a pronoun such as "it"/"that"/"they" that points
  back). Its meaning is not in its own text, so neither its lookup nor its key would be sound
  (MeanCache). A multi-turn request whose last turn stands alone is cached on that turn;
- store only: the answer was flagged by validation;
- store only: the answer has no citations. That covers "not found" answers: they cite no
  document, so invalidation on ingestion could never reach them, and a document added later
  would stay hidden behind a cached "not found" until the TTL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NamedTuple

from shared.retrieval.condense import is_follow_up

Phase = Literal["lookup", "store"]
CONTROLS = frozenset({"no-store", "no-cache"})
_ANAPHORA = re.compile(
    r"\b(?:it|its|they|them|their|this|that|these|those|he|she|him|her|his|there|former|"
    r"latter|above|previous|same)\b",
    re.IGNORECASE,
)


class Bypass(NamedTuple):
    """Whether to skip the cache, and why ("" when not skipped)."""

    bypass: bool
    reason: str


USE = Bypass(False, "")


def _text(content: Any) -> str:
    """A message's text: a string or the text parts of an OpenAI-style content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )  # fmt: skip
    return ""


def _user_turns(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """The non-empty user turns, in order."""
    turns = [_text(m.get("content")).strip() for m in messages if m.get("role") == "user"]
    return [turn for turn in turns if turn]


def is_context_dependent(messages: Sequence[Mapping[str, Any]]) -> bool:
    """True when earlier user turns exist and the last one needs them to be understood."""
    turns = _user_turns(messages)
    if len(turns) < 2:
        return False
    last = turns[-1]
    return is_follow_up(last) or _ANAPHORA.search(last) is not None


def has_tool_calls(messages: Sequence[Mapping[str, Any]]) -> bool:
    """True when any message is a tool result or carries tool/function calls."""
    return any(
        m.get("role") in ("tool", "function") or m.get("tool_calls") or m.get("function_call")
        for m in messages
    )


def bypass(
    messages: Sequence[Mapping[str, Any]],
    *,
    max_temperature: float,
    temperature: float = 0.0,
    tools: bool = False,
    cache_control: str | None = None,
    phase: Phase = "lookup",
    flagged: bool = False,
    citations: int | None = None,
) -> Bypass:
    """Decide whether this request skips the cache in `phase` (see the module rules)."""
    control = (cache_control or "").strip().lower() or None
    if control is not None and control not in CONTROLS:
        raise ValueError(f"cache control must be one of {sorted(CONTROLS)}, got {cache_control!r}")
    if control == "no-store":
        return Bypass(True, "no-store requested")
    if control == "no-cache" and phase == "lookup":
        return Bypass(True, "no-cache requested")
    if tools or has_tool_calls(messages):
        return Bypass(True, "tool calls present")
    if temperature > max_temperature:
        return Bypass(True, f"temperature {temperature:g} above {max_temperature:g}")
    if is_context_dependent(messages):
        return Bypass(True, "context-dependent follow-up")
    if phase == "store":
        return _store_decision(flagged, citations)
    return USE


def _store_decision(flagged: bool, citations: int | None) -> Bypass:
    """The rules that only apply to keeping an answer."""
    if flagged:
        return Bypass(True, "answer flagged by validation")
    if not citations:
        return Bypass(True, "answer has no citations")
    return USE


__all__ = ["CONTROLS", "USE", "Bypass", "Phase", "bypass", "has_tool_calls",
           "is_context_dependent"]  # fmt: skip
