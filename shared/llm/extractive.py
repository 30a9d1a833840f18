"""The offline answerer: quotes the source sentences that best match the question, with citations.

It reads the same grounded prompt a language model would get (`prompts.parse_sources`), splits
the sources into sentences, and scores each sentence against the question with BM25 over
lightly stemmed content words (document names count at half weight; numbers and years count
triple, matched or missing, because a sentence about another year does not answer the question).
The answer is the best sentence plus up to two more that cover question words the earlier ones
missed, each followed by its source's marker. When those sentences together cover too little of
the question's weight, the answer is the fixed not-found sentence, without a citation.

What real documents need (measured by bench/answers.py on its tuning half):
- Lines are candidates as well as sentences: bullets, table rows, slide text and option lists
  end without a full stop. A chunk's heading path is context, not a claim: its words count at
  half weight for the sentences under it (like document names), and it is never quoted.
- Identifiers are terms whole as well as in parts (`asn1_get_length_der`, `audio/x-midi`,
  `--strict`, `user.mime_type`), so the exact one outranks a sentence sharing its pieces.
- The expected kind of answer: a question asking for a quantity (how many, which version, what
  size...) is answered by a sentence holding a number the question does not; one asking for a
  name of something technical (which function, option, file, key...) by one holding a code-like
  token. When the best sentence only restates the question ("Sets the duration of page
  transitions."), the neighbouring sentence of the same source that holds such a value
  ("Default value: 1000 ms.") joins the answer.
- Words broken by a hyphen at a PDF line end are joined again ("manip-\nulation").
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.llm.prompts import NOT_FOUND_ANSWER, Source, parse_sources
from shared.llm.types import LlmChunk, LlmError, LlmRequest, LlmResponse, Usage
from shared.resilience.retry import Deadline
from shared.tokens import count_tokens, truncate_to_tokens

MODEL = "local-extractive"
MAX_SENTENCES = 3
MAX_SENTENCE_CHARS = 400
BM25_K1, BM25_B = 1.2, 0.75
NUMBER_WEIGHT = 3.0
NAME_WEIGHT = 0.5
COMPANION_SHARE = 0.5  # a second or third sentence must score at least half the best one

STOPWORD_TEXT = """
a about after all also am an and any are as at be been before being but by can could did do
does doing done during each for from get gets got had has have having he her here hers him his
how i if in into is it its just me might more most much must my no nor not of off on once only
or other our ours out over own please same she should so some such tell than that the their
theirs them then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours many say says said
give show list explain describe document documents often long soon
"""
STOPWORDS = frozenset(STOPWORD_TEXT.split())
SUFFIXES = (("sses", "ss"), ("ies", "y"), ("ing", ""), ("ed", ""), ("s", ""))
ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "no", "fig", "approx"}
)

_WORD = re.compile(r"[a-z]+|\d+(?:[.,]\d+)*")
# Identifiers kept whole beside their parts: snake_case, dotted, slashed or dashed names, options.
_IDENTIFIER = re.compile(r"(?<![\w-])(?:--?[a-z][\w-]*|[a-z0-9]+(?:[_./-]+[a-z0-9]+)+)")
# A value-like token: a number, or something code-like (identifier, option, [key], ALLCAPS, @).
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_CODE = re.compile(
    r"(?<![\w-])(?:--?[A-Za-z][\w-]*|[\w.+-]*[_/@][\w./@+-]*\w|\w+(?:\.\w+)+|\[[^\]\s]{1,12}\]"
    r"|[?_]*[A-Z][A-Z0-9_]{2,}\b|[A-Za-z]+\d\w*)"
)
_QUANTITY_WORDS = """many much version versions size port percent duration radius factor number
maximum minimum weight bytes speed long often timeout depth default"""
_CODE_WORDS = """function option variable file attribute command flag header key keys suffix
pattern string name address email type library"""
QUANTITY_CUES = frozenset(_QUANTITY_WORDS.split())  # the question asks for a number
CODE_CUES = frozenset(_CODE_WORDS.split())  # the question asks for a technical name
NEIGHBOURS = (1, -1, 2, -2)  # where a value restated by the best sentence may sit
_HEADING_LINE = re.compile(r"^\s*#{1,6}\s")
_HYPHEN_BREAK = re.compile(r"(?<=[a-z])-\n(?=[a-z])")
_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:tr|p|br|li|ul|ol|table|figure|figcaption|caption|h[1-6]|div)\b[^>]*>", re.I
)
_TAG = re.compile(r"<[^>]+>")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_LINE_MARKUP = re.compile(r"^\s*(?:#{1,6}\s+|[-*+•]\s+|\d+[.)]\s+|>\s*)")
_WORD_PIECE = re.compile(r"\S+\s*")


@dataclass(frozen=True)
class Sentence:
    """One candidate sentence, where it came from, and its stemmed terms."""

    source: int
    position: int
    text: str
    terms: Counter[str]
    name_terms: frozenset[str]  # the document name's and the heading path's terms


@dataclass(frozen=True)
class Scored:
    """A sentence with its BM25 score and the question terms it covers."""

    sentence: Sentence
    score: float
    covered: frozenset[str]


class ExtractiveAnswerer:
    """An `LlmClient` that answers from the prompt's sources without a language model."""

    def __init__(self, *, min_coverage: float = 0.5) -> None:
        self.name = "local"
        self.model = MODEL
        self.min_coverage = min_coverage

    async def complete(self, request: LlmRequest, timeout_seconds: float) -> LlmResponse:
        """The extractive answer (the timeout is moot: the work is a few milliseconds)."""
        answer, finish_reason = self.answer(request), "stop"
        if request.max_tokens and count_tokens(answer) > request.max_tokens:
            # max_tokens is honoured as a model honours it: the answer stops there.
            answer, finish_reason = truncate_to_tokens(answer, request.max_tokens), "length"
        usage = Usage(_prompt_tokens(request), count_tokens(answer))
        return LlmResponse(answer, self.model, usage, finish_reason)

    async def serve(
        self, request: LlmRequest, tier: str, deadline: Deadline
    ) -> tuple[LlmResponse, str]:
        """The chat path's model call when no region is configured: every tier is this one."""
        return await self.complete(request, deadline.remaining()), self.name

    async def serve_stream(
        self, request: LlmRequest, tier: str, deadline: Deadline
    ) -> tuple[AsyncIterator[LlmChunk], str, str]:
        """The chat path's streaming model call: word-sized pieces, this answerer, its model."""
        return self.stream(request, deadline.remaining()), self.name, self.model

    async def stream(self, request: LlmRequest, timeout_seconds: float) -> AsyncIterator[LlmChunk]:
        """The same answer as `complete`, word by word; the last piece carries usage."""
        response = await self.complete(request, timeout_seconds)
        pieces = _WORD_PIECE.findall(response.content)
        for piece in pieces[:-1]:
            yield LlmChunk(delta=piece)
        yield LlmChunk(
            delta=pieces[-1] if pieces else "",
            usage=response.usage,
            finish_reason=response.finish_reason,
        )

    def answer(self, request: LlmRequest) -> str:
        """The answer text for a grounded prompt."""
        try:
            question, sources = parse_sources(request.messages)
        except ValueError as error:
            raise LlmError("client", f"local: {error}") from error
        chosen = self.choose(question, sources)
        if not chosen:
            return NOT_FOUND_ANSWER
        return " ".join(_cite(scored.sentence) for scored in chosen)

    def choose(self, question: str, sources: list[Source]) -> list[Scored]:
        """The best sentence and its companions, or nothing when they cover too little."""
        sentences = [sentence for source in sources for sentence in split_source(source)]
        query = question_terms(question)
        if not sentences or not query:
            return []
        weights = _query_weights(query, sentences)
        ranked = rank(sentences, weights)
        if not ranked:
            return []
        chosen = _companions(ranked)
        if coverage(chosen, weights) < self.min_coverage:
            return []
        return _with_value(chosen, sentences, weights, answer_kind(question), question)


def question_terms(question: str) -> list[str]:
    """The question's distinct content terms, stemmed."""
    return list(dict.fromkeys(terms_of(question)))


def terms_of(text: str) -> list[str]:
    """Stemmed content words and normalised numbers, in order, then whole identifiers."""
    lowered = text.lower()
    words = (_normalise_number(word) for word in _WORD.findall(lowered))
    terms = [
        stem(word) for word in words if word not in STOPWORDS and (len(word) > 1 or word.isdigit())
    ]
    return terms + [identifier.strip(".") for identifier in _IDENTIFIER.findall(lowered)]


def stem(word: str) -> str:
    """A light suffix strip, so 'policies'/'policy' and 'employees'/'employee' meet."""
    if word[0].isdigit() or len(word) <= 3:
        return word
    for suffix, replacement in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                return word  # 'class', 'status', 'analysis' are not plurals
            return word[: -len(suffix)] + replacement
    return word


def split_source(source: Source) -> list[Sentence]:
    """The source's sentences and lines, markup removed, each with its terms; heading lines
    are context (their terms join the document name's), not candidates."""
    text = _HYPHEN_BREAK.sub("", source.text)
    lines = text.split("\n")
    headings = " ".join(line for line in lines if _HEADING_LINE.match(line))
    body = "\n".join(line for line in lines if not _HEADING_LINE.match(line))
    name = source.document_name.rsplit(".", 1)[0]
    name_terms = frozenset(terms_of(f"{name} {headings}"))
    texts = [text for line in _plain_lines(body) for text in _sentences(line)]
    return [
        Sentence(source.number, position, text, Counter(terms_of(text)), name_terms)
        for position, text in enumerate(texts)
        if len(terms_of(text)) >= 2  # fragments such as "Page 3" answer nothing
    ]


def answer_kind(question: str) -> str | None:
    """ "number" or "code" when the question asks for a quantity or a technical name."""
    words = set(re.findall(r"[a-z]+", question.lower()))
    if words & QUANTITY_CUES and not words & {"function", "option", "file", "variable"}:
        return "number"
    if words & CODE_CUES:
        return "code"
    return None


def holds_answer(sentence: str, kind: str | None, question: str) -> bool:
    """Whether the sentence holds a value of the asked kind that the question does not."""
    if kind is None:
        return True
    pattern = _NUMBER if kind == "number" else _CODE
    asked = {token.casefold() for token in pattern.findall(question)}
    return any(token.casefold() not in asked for token in pattern.findall(sentence))


def rank(sentences: list[Sentence], weights: dict[str, float]) -> list[Scored]:
    """Sentences that share a term with the question, best first (ties: source, position)."""
    average = sum(s.terms.total() for s in sentences) / len(sentences) or 1.0
    scored = [_score(sentence, weights, average) for sentence in sentences]
    matching = [item for item in scored if item.covered]
    return sorted(matching, key=lambda s: (-s.score, s.sentence.source, s.sentence.position))


def coverage(chosen: list[Scored], weights: dict[str, float]) -> float:
    """The share of the question's weight the chosen sentences (or their documents' names) cover."""
    total = sum(weights.values())
    got = sum(weight * _term_credit(term, chosen) for term, weight in weights.items())
    return got / total if total else 0.0


def _term_credit(term: str, chosen: list[Scored]) -> float:
    """1 when a chosen sentence contains the term, half when only a document name does."""
    credits = [
        1.0 if term in scored.sentence.terms else NAME_WEIGHT
        for scored in chosen
        if term in scored.covered
    ]
    return max(credits, default=0.0)


def _query_weights(query: list[str], sentences: list[Sentence]) -> dict[str, float]:
    """BM25 idf per question term over the sentences; numbers weigh triple."""
    count = len(sentences)
    weights = {}
    for term in query:
        frequency = sum(1 for sentence in sentences if term in sentence.terms)
        idf = math.log(1 + (count - frequency + 0.5) / (frequency + 0.5))
        weights[term] = idf * (NUMBER_WEIGHT if term[0].isdigit() else 1.0)
    return weights


def _score(sentence: Sentence, weights: dict[str, float], average: float) -> Scored:
    """BM25 of one sentence; a term found only in the document name scores at half weight."""
    length_norm = 1 - BM25_B + BM25_B * sentence.terms.total() / average
    score, covered = 0.0, set()
    for term, weight in weights.items():
        frequency = sentence.terms.get(term, 0)
        if frequency:
            score += weight * frequency * (BM25_K1 + 1) / (frequency + BM25_K1 * length_norm)
            covered.add(term)
        elif term in sentence.name_terms:
            score += weight * NAME_WEIGHT
            covered.add(term)
    return Scored(sentence, score, frozenset(covered))


def _companions(ranked: list[Scored]) -> list[Scored]:
    """The best sentence plus up to two that are nearly as good and cover new question terms."""
    best = ranked[0]
    chosen, covered, seen = [best], set(best.covered), {best.sentence.text.lower()}
    for candidate in ranked[1:]:
        if len(chosen) == MAX_SENTENCES or candidate.score < COMPANION_SHARE * best.score:
            break
        text = candidate.sentence.text.lower()
        if text in seen or not set(candidate.covered) - covered:
            continue  # a duplicate chunk, or a sentence that adds nothing the question asked
        chosen.append(candidate)
        covered |= candidate.covered
        seen.add(text)
    return chosen


def _with_value(
    chosen: list[Scored],
    sentences: list[Sentence],
    weights: dict[str, float],
    kind: str | None,
    question: str,
) -> list[Scored]:
    """The chosen sentences, with a neighbour of the best one (up to two sentences away in its
    source) beside it when only the neighbour holds the asked kind of value; among several, the
    one sharing most question weight, then the nearest."""
    best = chosen[0]
    if any(holds_answer(s.sentence.text, kind, question) for s in chosen):
        return chosen
    by_place = {(s.source, s.position): s for s in sentences}
    found = []
    for offset in NEIGHBOURS:
        neighbour = by_place.get((best.sentence.source, best.sentence.position + offset))
        if neighbour is not None and holds_answer(neighbour.text, kind, question):
            shared = sum(weights[term] for term in set(neighbour.terms) & set(weights))
            found.append((-shared, abs(offset), offset, neighbour))
    if not found:
        return chosen
    _, _, offset, neighbour = min(found, key=lambda item: item[:3])
    scored = Scored(neighbour, best.score, frozenset(set(neighbour.terms) & set(weights)))
    pair = [best, scored] if offset > 0 else [scored, best]
    return pair + [s for s in chosen[1:] if s.sentence is not neighbour]


def _plain_lines(text: str) -> list[str]:
    """The text's lines without HTML, comments and markdown list or heading markers."""
    text = _TAG.sub(" ", _BLOCK_TAG.sub("\n", _COMMENT.sub("\n", text)))
    lines = (
        _LINE_MARKUP.sub("", line).replace("**", "").replace("|", " ") for line in text.split("\n")
    )
    return [" ".join(line.split()) for line in lines if line.strip()]


def _sentences(line: str) -> list[str]:
    """A line split into sentences, not after common abbreviations."""
    pieces, start = [], 0
    for boundary in _SENTENCE_END.finditer(line):
        before = line[start : boundary.start()].rstrip(".!?\"')]").rsplit(" ", 1)[-1].lower()
        if before in ABBREVIATIONS or (len(before) == 1 and before.isalpha()):
            continue  # "e.g. Paris" or "J. Smith" do not end a sentence
        pieces.append(line[start : boundary.end(1)])  # closing quotes stay with the sentence
        start = boundary.end()
    pieces.append(line[start:])
    return [_shorten(piece.strip()) for piece in pieces if piece.strip()]


def _shorten(sentence: str) -> str:
    """A run-on 'sentence' (a table row, a list without stops) cut at a word boundary."""
    if len(sentence) <= MAX_SENTENCE_CHARS:
        return sentence
    return sentence[:MAX_SENTENCE_CHARS].rsplit(" ", 1)[0] + "…"


def _cite(sentence: Sentence) -> str:
    """The sentence with its marker before the closing punctuation: 'Text [2].'"""
    text = sentence.text.rstrip()
    end = len(text.rstrip(".!?;:"))
    closing = text[end:] or "."
    return f"{text[:end]} [{sentence.source}]{closing[0]}"


def _normalise_number(word: str) -> str:
    """'2,000' -> '2000'; decimals keep their point."""
    if not word[0].isdigit():
        return word
    return word.replace(",", "")


def _prompt_tokens(request: LlmRequest) -> int:
    """The prompt's token count, as a model would bill it (approximately)."""
    return sum(count_tokens(str(message.get("content", ""))) for message in request.messages)
