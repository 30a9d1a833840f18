"""Answers that cannot carry data out: neutralising what a client would fetch, run or flood.

An injected instruction that slips past the screens usually wants the answer to leak data
through the client that renders it: a markdown image whose URL carries the conversation in its
query (fetched with no click), an HTML tag with an event handler, a link to the attacker's host,
a `javascript:` or `data:` URL, or a word repeated a thousand times (cost and denial of service).
`AnswerNeutraliser` removes them from every answer, whatever the screens decided:

| construct                                  | becomes                                   |
|--------------------------------------------|-------------------------------------------|
| markdown image `![alt](url)`, `![alt][r]`  | its alt text (nothing is fetched)         |
| HTML tag or comment                        | removed (the text between tags stays)     |
| link / autolink / bare URL / reference     | its text, or `[link removed: host]`,      |
| definition to a host not allowed           | unless the host is allow-listed or the    |
|                                            | URL is quoted verbatim by a cited source  |
| `javascript:`, `vbscript:`, `data:` URL    | removed, even on an allowed host          |
| a unit repeated MAX_REPEATS times in a row | KEPT_REPEATS copies and `[…]`            |

Incremental by design, for token-by-token streaming: `feed()` returns the text that is safe to
send now and holds back only what might still become a construct (an unclosed `<`, `[`, `](`,
the trailing token that may grow into a URL, a run of repeats that may still grow), at most
MAX_HOLD characters; `finish()` flushes the rest. A whole answer is `feed(answer) + finish()`,
so streamed and whole answers are neutralised by the same code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_REPEATS = 20
KEPT_REPEATS = 3
MAX_UNIT = 80
MAX_HOLD = 8192
ELLIPSIS = " […]"

KINDS = ("markdown_image", "html", "link", "script_url", "repetition")

_URL_CHARS = r"[^\s<>()\[\]\"'`]"
_BARE_URL = re.compile(rf"\b(?:https?|ftp)://{_URL_CHARS}+", re.IGNORECASE)
_SCRIPT_URL = re.compile(
    r"\b(?:javascript|vbscript)\s*:[^\s<>\"'`]*|\bdata:[a-z]+/[a-z0-9+.-]+[;,][^\s<>\"'`]*",
    re.IGNORECASE,
)
_TARGET = r"(?:[^()\n]|\([^()\n]{0,200}\)){0,2000}"  # a link target, one level of (...)
_IMAGE = re.compile(
    rf"!\[(?P<alt>[^\]\n]{{0,300}})\](?:\((?P<target>{_TARGET})\)|\[(?P<ref>[^\]\n]{{0,100}})\])"
)
_LINK = re.compile(rf"\[(?P<text>[^\]\n]{{0,300}})\]\((?P<target>{_TARGET})\)")
_REFERENCE = re.compile(r"(?m)^ {0,3}\[[^\]\n]{1,100}\]:[ \t]*(?P<target>\S+)[^\n]*$")
_AUTOLINK = re.compile(r"<(?P<target>[a-z][a-z0-9+.-]{1,31}:[^\s<>]*)>", re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_TAG = re.compile(r"</?[a-z][a-z0-9:-]*(?:[\s/][^<>]*)?>", re.IGNORECASE)
_REPEAT = re.compile(rf"(?P<unit>.{{1,{MAX_UNIT}}}?)(?P=unit){{{MAX_REPEATS - 1},}}", re.DOTALL)
# Constructs still open at the end of the pending text: hold them back until they close.
_OPEN_AT_END = (
    re.compile(r"<[^<>]{0,2000}$"),  # a tag still being written
    re.compile(r"<!--(?:(?!-->)[\s\S]){0,4000}$"),  # a comment still open
    re.compile(r"!?\[[^\]\n]{0,300}$"),
    re.compile(r"!?\[[^\]\n]{0,300}\]$"),  # "[text]" may be followed by "(url)"
    re.compile(rf"!?\[[^\]\n]{{0,300}}\]\({_TARGET}(?:\([^()\n]{{0,200}})?$"),
    re.compile(r"(?m)^ {0,3}\[[^\]\n]{1,100}\]:[^\n]*$"),  # a reference definition's line
    re.compile(r"!$"),
)
_TRAILING_TOKEN = re.compile(r"\S{1,2000}$")  # may still grow into a URL or a scheme


@dataclass(frozen=True)
class LinkPolicy:
    """Which link targets an answer may keep: allow-listed hosts and URLs its sources quote."""

    allowed_hosts: frozenset[str] = frozenset()
    source_urls: frozenset[str] = frozenset()

    @classmethod
    def for_sources(cls, allowed_hosts: Iterable[str], sources: Iterable[str]) -> LinkPolicy:
        """A policy allowing `allowed_hosts` and every URL quoted in the `sources` texts."""
        urls = {match[0] for text in sources for match in _BARE_URL.finditer(text)}
        hosts = {host.strip().lower() for host in allowed_hosts if host.strip()}
        return cls(frozenset(hosts), frozenset(urls))

    def allows(self, target: str) -> bool:
        """True for an http(s) URL on an allowed host (or a subdomain) or quoted by a source;
        always False for script and data URLs."""
        url = target.strip().strip("<>").split(" ", 1)[0]
        if _SCRIPT_URL.match(url):
            return False
        if url in self.source_urls:
            return True
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        host = (parts.hostname or "").lower()
        if parts.scheme.lower() not in ("http", "https") or not host:
            return False
        return any(
            host == allowed or host.endswith("." + allowed) for allowed in self.allowed_hosts
        )


@dataclass
class AnswerNeutraliser:
    """Removes exfiltration constructs from an answer, incrementally (see the module doc)."""

    policy: LinkPolicy = field(default_factory=LinkPolicy)
    findings: Counter[str] = field(default_factory=Counter)
    _pending: str = ""
    _swallow: str = ""  # a collapsed unit: further copies of it are dropped
    _tail: str = ""  # the end of the text already released: a run may have begun there

    def feed(self, text: str) -> str:
        """The part of everything fed so far that is safe to emit now."""
        self._pending += text
        self._drop_swallowed()
        cut = self._safe_cut(self._pending)
        ready, self._pending = self._pending[:cut], self._pending[cut:]
        flood = self._released_run(ready)
        if flood:  # a run begun in text already sent reached MAX_REPEATS: swallow it
            self.findings["repetition"] += 1
            self._swallow, self._tail = flood, ""
            self._drop_swallowed()
            return ELLIPSIS
        self._tail = (self._tail + ready)[-MAX_UNIT * MAX_REPEATS :]
        return self._emit(ready)

    def finish(self) -> str:
        """Everything still held back, neutralised (open constructs are treated as text)."""
        self._drop_swallowed()
        ready, self._pending = self._pending, ""
        return self._emit(ready, final=True)

    @property
    def total(self) -> int:
        """How many constructs were neutralised."""
        return sum(self.findings.values())

    # Holding back ------------------------------------------------------------------------------

    def _safe_cut(self, pending: str) -> int:
        """The end of the prefix of `pending` with no construct still open."""
        if len(pending) > MAX_HOLD:
            return len(pending) - MAX_HOLD // 2  # bounded memory and delay: treat as text
        token = _TRAILING_TOKEN.search(pending)
        cut = token.start() if token else len(pending)
        while True:  # moving the cut back may leave another construct open before it
            start = max(0, cut - 4096)
            prefix = pending[start:cut]
            opened = [match.start() for p in _OPEN_AT_END if (match := p.search(prefix))]
            if not opened:
                break
            cut = start + min(opened)
        run = trailing_run(self._tail + pending[:cut])
        if run is not None and run[0] < len(run[1]) * MAX_REPEATS:
            cut -= min(cut, run[0])  # a run that may still reach MAX_REPEATS: hold it
        return cut

    def _released_run(self, ready: str) -> str:
        """The unit of a run that began in released text and reaches MAX_REPEATS with `ready`
        (which then holds only copies of it), else ""."""
        if not self._tail or not ready:
            return ""
        run = trailing_run(self._tail + ready)
        if run is None or run[0] <= len(ready):
            return ""
        length, unit = run
        reached = length >= len(unit) * MAX_REPEATS
        return unit if reached and any(char.isalnum() for char in unit) else ""

    def _drop_swallowed(self) -> None:
        """Drops further copies of a unit already collapsed."""
        if not self._swallow:
            return
        unit = self._swallow
        while self._pending.startswith(unit):
            self._pending = self._pending[len(unit) :]
        if self._pending and not unit.startswith(self._pending):
            self._swallow = ""

    # Neutralising a closed segment --------------------------------------------------------------

    def _emit(self, text: str, final: bool = False) -> str:
        """`text` neutralised; a collapsed run's trailing partial copy goes back to pending,
        so the copies still to come are swallowed whole."""
        text = self._neutralise(text, final)
        if self._swallow and not final:
            head, found, partial = text.rpartition(ELLIPSIS)
            if found and partial and self._swallow.startswith(partial):
                self._pending = partial + self._pending
                return head + ELLIPSIS
        return text

    def _neutralise(self, text: str, final: bool) -> str:
        if not text:
            return text
        text = _COMMENT.sub(self._count("html", ""), text)
        text = _IMAGE.sub(self._image, text)
        text = _LINK.sub(self._link, text)
        text = _REFERENCE.sub(self._reference, text)
        text = _AUTOLINK.sub(self._autolink, text)
        text = _TAG.sub(self._count("html", ""), text)
        if final:
            text = re.sub(r"<[a-z!/][^<>]*$", self._count("html", ""), text, flags=re.I)
        text = _SCRIPT_URL.sub(self._count("script_url", "[link removed]"), text)
        text = _BARE_URL.sub(self._bare_url, text)
        return _REPEAT.sub(self._repetition, text)

    def _count(self, kind: str, replacement: str):
        def replace(_match: re.Match[str]) -> str:
            self.findings[kind] += 1
            return replacement

        return replace

    def _image(self, match: re.Match[str]) -> str:
        self.findings["markdown_image"] += 1
        return match["alt"].strip()

    def _link(self, match: re.Match[str]) -> str:
        target = match["target"].strip()
        if _SCRIPT_URL.match(target.strip("<>")):
            self.findings["script_url"] += 1
            return match["text"]
        if self.policy.allows(target):
            return match[0]
        self.findings["link"] += 1
        return match["text"]

    def _reference(self, match: re.Match[str]) -> str:
        if self.policy.allows(match["target"]):
            return match[0]
        self.findings["link"] += 1
        return ""

    def _autolink(self, match: re.Match[str]) -> str:
        if self.policy.allows(match["target"]):
            return match[0]
        self.findings["script_url" if _SCRIPT_URL.match(match["target"]) else "link"] += 1
        return removed_link(match["target"])

    def _bare_url(self, match: re.Match[str]) -> str:
        url = match[0].rstrip(".,;:!?")
        rest = match[0][len(url) :]
        if self.policy.allows(url):
            return match[0]
        self.findings["link"] += 1
        return removed_link(url) + rest

    def _repetition(self, match: re.Match[str]) -> str:
        unit = match["unit"]
        if not any(char.isalnum() for char in unit):
            return match[0]  # rules and separators ("-----") are layout, not a flood
        self.findings["repetition"] += 1
        at_end = len(match.string) - match.end() < len(unit)
        self._swallow = unit if at_end else ""
        return unit * KEPT_REPEATS + ELLIPSIS


def trailing_run(text: str) -> tuple[int, str] | None:
    """(length, unit) of the longest run of two or more copies of a unit (up to MAX_UNIT
    characters) that ends `text`; the shortest unit among equally long runs. Linear in
    MAX_UNIT x the run, not in the text: it runs on every streamed piece."""
    best: tuple[int, str] | None = None
    for size in range(1, min(MAX_UNIT, len(text) // 2) + 1):
        unit = text[-size:]
        if text[-2 * size : -size] != unit:
            continue
        copies = 2
        limit = MAX_REPEATS + 1
        while copies < limit and text[-(copies + 1) * size : -copies * size] == unit:
            copies += 1
        if best is None or copies * size > best[0]:
            best = (copies * size, unit)
    return best


def removed_link(url: str) -> str:
    """What stands in for a removed link: its host, so the reader knows what was there."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return f"[link removed: {host}]" if host else "[link removed]"


_counter = None


def count_neutralised(findings: Counter[str]) -> None:
    """Adds findings to the metric docgate.answers.neutralised (attribute: kind)."""
    global _counter
    if not findings:
        return
    if _counter is None:
        from shared.telemetry import meter

        _counter = meter().create_counter(
            "docgate.answers.neutralised",
            description="Exfiltration constructs removed from answers",
        )
    for kind, count in findings.items():
        _counter.add(count, {"kind": kind})


def neutralise(text: str, policy: LinkPolicy | None = None) -> tuple[str, Counter[str]]:
    """A whole answer neutralised, and what was removed by kind."""
    neutraliser = AnswerNeutraliser(policy or LinkPolicy())
    return neutraliser.feed(text) + neutraliser.finish(), neutraliser.findings
