"""Multi-turn questions without an LLM: a follow-up is rewritten into a standalone question.

The user turns are read in order, each follow-up folded into the question before it, so a
chain ("revenue in 2022?" -> "and in 2023?" -> "what about the southern region?") keeps every
slot it set. Assistant turns are ignored. The last user turn is returned unchanged when it is
standalone.

A turn is a follow-up when it
- opens with "and", "or", "also", "what/how about", "what of" or "same for", or
- uses "its"/"their" (a reference back to the previous question's subject), or
- is at most four words and does not open with a question word ("2023?", "in Q3?").

It is rewritten against the previous question Q, by the first rule that applies:
1. Time slots: years (2023), fiscal years (FY2023), quarters (Q3) and months. Each value
   replaces Q's value of the same kind in order, or is appended ("in 2023") if Q has none.
   Whatever the follow-up says besides these goes on through the rules below.
2. Possessive: "its/their X" becomes "<Q's opening> the X of <Q's subject>", keeping Q's time
   slots ("and its headcount?" after "What was the revenue of Contoso in 2022?" ->
   "What was the headcount of Contoso in 2022?"). The subject is Q's first capitalised phrase
   after its first word, else the words after Q's last "of/about/for".
3. Same head noun: when the follow-up's last word (compared stemmed) is in Q, the phrase ending
   there (up to three words back, stopping at a preposition or verb) is replaced ("the southern
   region" replaces "the northern region"). Same preposition: a follow-up opening with a
   preposition replaces Q's last phrase after that preposition, unless it is a time value
   ("and for team leads?" after "the refund limit for support agents?").
4. Same kind of word: a compass direction replaces Q's direction, in Q's form ("south" for
   "northern" gives "southern").
5. New subject: a capitalised follow-up ("what about Globex?") replaces Q's subject.
6. Otherwise the follow-up is appended: as it is when it opens with a preposition, else after
   "for".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared.retrieval.keyword import stem

_OPENER = re.compile(
    r"^(?:(?:and|or|also|but)\s+)?(?:(?:what|how)\s+about|what\s+of|(?:the\s+)?same\s+for)\s+"
    r"|^(?:and|or|also)\s+",
    re.IGNORECASE,
)
_POSSESSIVE = re.compile(r"\b(?:its|their)\s+", re.IGNORECASE)
_QUESTION_WORDS = frozenset(
    [
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "is",
        "are",
        "was",
        "were",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "has",
        "have",
        "had",
        "tell",
        "list",
        "show",
        "give",
        "explain",
        "describe",
    ]
)
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
SLOTS: dict[str, re.Pattern[str]] = {
    "fiscal_year": re.compile(r"\bFY\s?\d{2,4}\b", re.IGNORECASE),
    "year": re.compile(r"(?<!FY)(?<!FY )\b(?:19|20)\d{2}\b", re.IGNORECASE),
    "quarter": re.compile(r"\bQ[1-4]\b", re.IGNORECASE),
    "month": re.compile(rf"\b(?:{_MONTHS})\b", re.IGNORECASE),
}
_SLOT_PREPOSITION = r"(?:\b(?:in|for|during|of|on|at)\s+)?"
_PREPOSITIONS = frozenset(
    [
        "in",
        "of",
        "for",
        "at",
        "on",
        "by",
        "to",
        "from",
        "with",
        "during",
        "about",
        "across",
        "per",
        "within",
        "under",
        "over",
        "between",
    ]
)
_VERBS = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "did",
        "does",
        "do",
        "has",
        "have",
        "had",
        "will",
        "would",
        "can",
    ]
)
_DIRECTIONS = {
    "north": "northern",
    "south": "southern",
    "east": "eastern",
    "west": "western",
    "northeast": "northeastern",
    "northwest": "northwestern",
    "southeast": "southeastern",
    "southwest": "southwestern",
}
_ADJECTIVE_DIRECTIONS = {adjective: root for root, adjective in _DIRECTIONS.items()}
_CAPITALISED = re.compile(r"\b[A-Z][\w&.'-]*(?:\s+[A-Z][\w&.'-]*)*")
_OPENING = re.compile(r"^(?:what|which|how\s+\w+)\s+(?:is|are|was|were)\b", re.IGNORECASE)


def standalone_question(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last user turn as a standalone question, follow-ups resolved against earlier turns."""
    question = ""
    for message in messages:
        if message.get("role") != "user":
            continue
        text = _text_of(message.get("content")).strip()
        if not text:
            continue
        question = rewrite(question, text) if question and is_follow_up(text) else text
    return question


def _text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of an OpenAI-style content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, Mapping)]
        return " ".join(part for part in parts if isinstance(part, str))
    return ""


def is_follow_up(text: str) -> bool:
    """Whether `text` leans on the previous question (see the module rules)."""
    if _OPENER.match(text) or _POSSESSIVE.search(text):
        return True
    words = _words(text)
    return 0 < len(words) <= 4 and words[0].lower() not in _QUESTION_WORDS


def rewrite(previous: str, follow_up: str) -> str:
    """`follow_up` as a standalone question, using `previous` for what it leaves out."""
    fragment = _OPENER.sub("", follow_up.strip()).strip().rstrip("?.!").strip()
    question, fragment = _apply_slots(previous.strip(), fragment)
    if not fragment:
        return question
    for rule in (_possessive, _same_head, _same_preposition, _same_direction, _new_subject):
        rewritten = rule(question, fragment)
        if rewritten is not None:
            return rewritten
    return _append(question, fragment)


def _words(text: str) -> list[str]:
    """Whitespace-separated words with surrounding punctuation stripped."""
    return [word for word in (w.strip("?.!,;:\"'()") for w in text.split()) if word]


def _ending(question: str) -> tuple[str, str]:
    """The question without its final punctuation, and that punctuation (default "?")."""
    body = question.rstrip()
    stripped = body.rstrip("?.!")
    return stripped, body[len(stripped) :] or "?"


# Rule 1: time slots ----------------------------------------------------------------------------


def _apply_slots(question: str, fragment: str) -> tuple[str, str]:
    """Substitutes or appends the fragment's time values; returns what is left of it."""
    for pattern in SLOTS.values():
        values = pattern.findall(fragment)
        if not values:
            continue
        question = _substitute(question, pattern, values)
        fragment = re.sub(_SLOT_PREPOSITION + pattern.pattern, "", fragment, flags=re.I)
    return question, " ".join(fragment.split())


def _substitute(question: str, pattern: re.Pattern[str], values: list[str]) -> str:
    """Replaces Q's values of one kind in order; appends "in <value>" when Q has none."""
    if not pattern.search(question):
        body, end = _ending(question)
        return f"{body} in {' and '.join(values)}{end}"
    remaining = iter(values)
    return pattern.sub(lambda match: next(remaining, match.group(0)), question)


# Rule 2: possessive ----------------------------------------------------------------------------


def _possessive(question: str, fragment: str) -> str | None:
    """ "its/their X" -> "<opening> the X of <subject><time slots>"."""
    match = _POSSESSIVE.search(fragment)
    subject = _subject(question)
    if match is None or subject is None:
        return None
    attribute = fragment[match.end() :].strip()
    opening = _OPENING.match(question)
    verb = opening.group(0) if opening else "What is"
    slots = _slots_phrase(question)
    return f"{verb[0].upper()}{verb[1:]} the {attribute} of {subject}{slots}?"


def _subject(question: str) -> str | None:
    """Q's first capitalised phrase after its first word, else what follows its last "of"."""
    body, _ = _ending(question)
    for match in _CAPITALISED.finditer(body):
        if match.start() == 0:
            continue
        phrase = _without_slots(match.group(0))
        if phrase:
            return phrase
    tail = re.split(r"\b(?:of|about|for)\s+", body, flags=re.IGNORECASE)
    if len(tail) < 2:
        return None
    subject = _without_slots(tail[-1])
    return subject or None


def _without_slots(text: str) -> str:
    """`text` with its time values (and their prepositions) removed."""
    for pattern in SLOTS.values():
        text = re.sub(_SLOT_PREPOSITION + pattern.pattern, "", text, flags=re.I)
    return " ".join(text.split())


def _slots_phrase(question: str) -> str:
    """Q's time values as " in 2022 Q3" (empty when it has none)."""
    values = [value for pattern in SLOTS.values() for value in pattern.findall(question)]
    return f" in {' '.join(values)}" if values else ""


# Rules 3-5: replacing a slot of Q --------------------------------------------------------------


def _same_head(question: str, fragment: str) -> str | None:
    """Replaces Q's phrase that ends in the fragment's last word."""
    head = _words(fragment)[-1] if _words(fragment) else ""
    words = question.split()
    for end, word in enumerate(words):
        if stem(_clean(word)) != stem(head.lower()):
            continue
        start = end
        while start > 0 and end - start < 3 and not _is_boundary(words[start - 1]):
            start -= 1
        trailing = word[len(word.rstrip("?.!,;:")) :]
        return " ".join([*words[:start], fragment + trailing, *words[end + 1 :]])
    return None


def _same_preposition(question: str, fragment: str) -> str | None:
    """Replaces the phrase after Q's last use of the fragment's opening preposition."""
    preposition = _clean(fragment.split()[0])
    if preposition not in _PREPOSITIONS:
        return None
    words = question.split()
    for index in range(len(words) - 2, -1, -1):
        if _clean(words[index]) != preposition or _is_time(words[index + 1]):
            continue
        end = index + 1
        while end + 1 < len(words) and end - index < 4 and not _is_boundary(words[end + 1]):
            end += 1
        trailing = words[end][len(words[end].rstrip("?.!,;:")) :]
        return " ".join([*words[:index], fragment + trailing, *words[end + 1 :]])
    return None


def _is_time(word: str) -> bool:
    """Whether a word is a time value (year, quarter, month)."""
    return any(pattern.fullmatch(_clean(word)) for pattern in SLOTS.values())


def _clean(word: str) -> str:
    """A word lowercased without surrounding punctuation."""
    return word.strip("?.!,;:\"'()").lower()


def _is_boundary(word: str) -> bool:
    """Where a replaced phrase stops: prepositions, verbs, question words, clause breaks."""
    clean = _clean(word)
    return (
        clean in _PREPOSITIONS
        or clean in _VERBS
        or clean in _QUESTION_WORDS
        or word.endswith((",", ";", ":"))
    )


def _same_direction(question: str, fragment: str) -> str | None:
    """A compass direction in the fragment replaces Q's, in Q's form."""
    new = next((_root(_clean(w)) for w in fragment.split() if _root(_clean(w))), None)
    if new is None:
        return None
    words = question.split()
    for index, word in enumerate(words):
        old = _clean(word)
        if _root(old) is None:
            continue
        replacement = _DIRECTIONS[new] if old in _ADJECTIVE_DIRECTIONS else new
        if word[:1].isupper():
            replacement = replacement.capitalize()
        words[index] = word.replace(word.strip("?.!,;:\"'()"), replacement, 1)
        return " ".join(words)
    return None


def _root(word: str) -> str | None:
    """ "north" for "north" or "northern"; None for anything else."""
    if word in _DIRECTIONS:
        return word
    return _ADJECTIVE_DIRECTIONS.get(word)


def _new_subject(question: str, fragment: str) -> str | None:
    """A capitalised fragment replaces Q's subject."""
    if not fragment[:1].isupper():
        return None
    subject = _subject(question)
    if subject is None or subject not in question:
        return None
    return question.replace(subject, fragment, 1)


# Rule 6: appending -----------------------------------------------------------------------------


def _append(question: str, fragment: str) -> str:
    """Q with the fragment appended (after "for" unless it opens with a preposition)."""
    body, end = _ending(question)
    first = _clean(fragment.split()[0])
    joiner = " " if first in _PREPOSITIONS else " for "
    return f"{body}{joiner}{fragment}{end}"


__all__ = ["SLOTS", "is_follow_up", "rewrite", "standalone_question"]
