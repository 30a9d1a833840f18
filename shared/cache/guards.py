"""A cheap token-level guard against known false hits of embedding similarity.

Sentence embeddings place "revenue in 2022" and "revenue in 2023", or "north region" and
"south region", very close: the few tokens that change the answer weigh little in a mean of
token vectors. So a similar cached question is only accepted when these salient tokens agree:

- numbers: digit runs ("2023", "3.5", "1,000" -> "1000") and number words ("three" -> "3");
  years are numbers too;
- codes: tokens mixing letters and digits ("Q3", "FY2024", "H1", "ISO27001"), compared
  case-insensitively;
- names: capitalised words ("Contoso", "Berlin") and acronyms ("EMEA", "VPN"). A
  sentence-initial word is a name only when it is not a common opener ("What", "How", ...).
  Names are matched case-insensitively against all of the other question's words (possessive
  "'s" dropped), so "contoso's" typed in lower case still matches "Contoso";
- closed word classes that flip meaning: compass directions, months, weekdays;
- negation: whether the question is negated at all ("not", "no", "never", "without", "n't"),
  so "not" and "never" paraphrase each other but "can" and "cannot" do not;
- opposite poles: a small lexicon of antonym pairs (maximum/minimum, increase/decrease,
  before/after, add/remove, above/below, internal/external, ...). Only a conflict counts: one
  side says one pole and the other the opposite one ("above 500" and "over 500" agree; a
  pole on one side only is left to the similarity threshold).

It does not catch same-words-different-meaning swaps of ordinary words ("carry over" vs "cash
out"); the similarity threshold has to. bench/cache_quality.py measures both together.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_APOSTROPHE = "\u2019"  # the curly apostrophe many keyboards type
_TOKEN = re.compile(r"[^\W_]+(?:[.,'\u2019][^\W_]+)*", re.UNICODE)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_SMALL_NUMBERS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve",
)  # fmt: skip
_NUMBER_WORDS = {word: str(value) for value, word in enumerate(_SMALL_NUMBERS)}
_NUMBER_WORDS.update({"first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5"})
_DIRECTIONS = {
    "north": "north", "northern": "north", "south": "south", "southern": "south",
    "east": "east", "eastern": "east", "west": "west", "western": "west",
    "northeast": "northeast", "northwest": "northwest", "southeast": "southeast",
    "southwest": "southwest", "central": "central",
}  # fmt: skip
_MONTHS = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
    "sept", "oct", "nov", "dec",
}  # fmt: skip
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
_NEGATIONS = {"not", "no", "never", "without", "cannot", "none", "nor", "neither", "nobody"}
# Antonym groups: word -> (group, pole). Synonyms share a pole, so "above"/"over" agree.
_POLES = {
    word: (group, pole)
    for group, poles in {
        "extreme": {
            "max": ("maximum", "max", "highest", "largest", "most", "upper", "cap", "ceiling"),
            "min": ("minimum", "min", "lowest", "smallest", "least", "floor"),
        },
        "change": {
            "up": ("increase", "increases", "increased", "raise", "raised", "rise", "growth"),
            "down": ("decrease", "decreases", "decreased", "reduce", "reduced", "reduction",
                     "cut", "cuts", "decline", "drop"),
        },
        "time": {
            "before": ("before", "prior", "earlier", "pre"),
            "after": ("after", "following", "later", "post"),
        },
        "membership": {
            "add": ("add", "adding", "added", "grant", "granting", "assign", "assigning"),
            "remove": ("remove", "removing", "removed", "revoke", "revoking", "unassign"),
        },
        "amount": {
            "more": ("above", "over", "exceeding", "more", "greater", "higher", "beyond"),
            "less": ("below", "under", "less", "fewer", "lower"),
        },
        "scope": {"internal": ("internal", "inbound", "import"),
                  "external": ("external", "outbound", "export")},
        "seniority": {"senior": ("senior",), "junior": ("junior", "entry", "new")},
        "state": {"enable": ("enable", "enabling", "activate"),
                  "disable": ("disable", "disabling", "deactivate")},
    }.items()
    for pole, words in poles.items()
    for word in words
}  # fmt: skip
# Capitalised only because they open a question: never names.
_OPENERS = {
    "what", "which", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "was",
    "were", "do", "does", "did", "can", "could", "should", "would", "will", "shall", "may",
    "might", "must", "has", "have", "had", "tell", "list", "show", "give", "explain",
    "describe", "summarise", "summarize", "please", "i", "we", "my", "our", "the", "a", "an",
    "in", "on", "for", "to", "of", "at", "by", "from", "with", "if", "and", "or", "but",
    "any", "all", "there", "it", "this", "that", "these", "those", "define", "compare", "find",
    "up", "after", "before", "since", "during", "under", "over", "about", "as", "so", "then",
    "next", "also", "now", "here", "your", "you", "he", "she", "they", "each", "every", "some",
    "no", "not", "hi", "hello", "hey", "thanks", "according", "based", "regarding",
}  # fmt: skip


@dataclass(frozen=True)
class Salient:
    """The tokens of a question that must agree for a cached answer to be reused."""

    numbers: frozenset[str]
    codes: frozenset[str]
    names: frozenset[str]
    classes: frozenset[str]
    poles: frozenset[tuple[str, str]]
    negated: bool
    words: frozenset[str]


def _tokens(text: str) -> list[str]:
    """Word tokens of the NFKC text, keeping "3.5", "1,000" and "don't" whole."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text))


def _number(token: str) -> str | None:
    """The canonical number a token stands for ("1,000" -> "1000", "three" -> "3")."""
    if _NUMBER.match(token):
        return _THOUSANDS.sub("", token)
    return _NUMBER_WORDS.get(token.lower())


def _is_code(token: str) -> bool:
    """Letters mixed with digits ("Q3", "FY24", "H1")."""
    return any(char.isdigit() for char in token) and any(char.isalpha() for char in token)


def _is_name(token: str, position: int) -> bool:
    """A capitalised word or acronym (2+ letters) that is not a common sentence opener."""
    if not token[:1].isupper() or len(token) < 2:
        return False
    return position > 0 or token.lower() not in _OPENERS


def _word(token: str) -> str:
    """The token lower-cased, curly apostrophe straightened and possessive "'s" dropped."""
    lower = token.lower().replace(_APOSTROPHE, "'")
    return lower[:-2] if lower.endswith("'s") else lower


def _class_of(lower: str) -> str | None:
    """The closed-class value of a word (direction, month, weekday), if any."""
    if lower in _DIRECTIONS:
        return f"dir:{_DIRECTIONS[lower]}"
    if lower in _MONTHS and lower != "may":  # "may" is far more often the verb
        return f"month:{lower[:3]}"
    if lower in _WEEKDAYS:
        return f"day:{lower[:3]}"
    return None


def salient(text: str) -> Salient:
    """Extract the numbers, codes, names, closed-class words and negation of `text`."""
    numbers, codes, names, classes, poles = set(), set(), set(), set(), set()
    negated = False
    tokens = _tokens(text)
    for position, token in enumerate(tokens):
        lower = _word(token)
        number = _number(token)
        if number is not None:
            numbers.add(number)
        elif _is_code(token):
            codes.add(lower)
        elif _is_name(token, position):
            names.add(lower)
        kind = _class_of(lower)
        if kind is not None:
            classes.add(kind)
        if lower in _POLES:
            poles.add(_POLES[lower])
        negated = negated or lower in _NEGATIONS or lower.endswith("n't")
    words = frozenset(_word(token) for token in tokens)
    return Salient(
        frozenset(numbers), frozenset(codes), frozenset(names), frozenset(classes),
        frozenset(poles), negated, words,
    )  # fmt: skip


def _names_agree(left: Salient, right: Salient) -> bool:
    """Each side's names appear (in any case) among the other side's words."""
    return left.names <= right.words and right.names <= left.words


def _poles_conflict(left: Salient, right: Salient) -> bool:
    """Some antonym group has a pole on each side and the poles differ."""
    groups = {group for group, _ in left.poles} & {group for group, _ in right.poles}
    return any(
        {pole for g, pole in left.poles if g == group} != {pole for g, pole in right.poles
                                                           if g == group}
        for group in groups
    )  # fmt: skip


def guard_reason(question: str, cached_question: str) -> str | None:
    """Why a cached question must not answer `question` (None when the guard passes)."""
    new, old = salient(question), salient(cached_question)
    if new.numbers != old.numbers:
        return "numbers differ"
    if new.codes != old.codes:
        return "codes differ"
    if not _names_agree(new, old):
        return "names differ"
    if new.classes != old.classes:
        return "directions/months/weekdays differ"
    if new.negated != old.negated:
        return "negation differs"
    if _poles_conflict(new, old):
        return "opposite terms"
    return None


def guard_passes(question: str, cached_question: str) -> bool:
    """True when the salient tokens of both questions agree."""
    return guard_reason(question, cached_question) is None


__all__ = ["Salient", "guard_passes", "guard_reason", "salient"]
