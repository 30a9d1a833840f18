"""Normalisation layers for injection screening: the views of a text that the rules match.

Attackers hide an instruction from a text matcher while keeping it readable for the model:
look-alike letters (Cyrillic U+0430 for Latin "a"), fullwidth forms, zero-width characters inside
words, bidi controls that reorder what a reviewer sees, Unicode tag characters (invisible ASCII),
base64/hex runs the model decodes fluently, and leetspeak. Each layer undoes one trick; the
presence of invisible characters or mixed scripts is itself reported as a signal, because
ordinary business text rarely needs them.

Every view is lower-cased and stripped of accents, so rules can be written as plain ASCII
phrases ("revele" matches "révèle"). The original text is never changed: views are for matching.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

MAX_DECODED_SEGMENTS = 16  # bounds the work an adversary can force with many encoded runs
MIN_DECODED_LETTERS = 4
PRINTABLE_RATIO = 0.9

# Common look-alikes that NFKC leaves alone (it already folds fullwidth and most compatibility
# forms). Cyrillic and Greek letters that render like Latin ones are the usual homoglyph trick.
CONFUSABLES = str.maketrans(
    # look-alike (escaped: the source stays ASCII) -> the Latin letter it imitates
    (
        # Cyrillic (and two Armenian) lower case
        "\u0430\u0432\u0435\u0451\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443\u0445"
        "\u0455\u0456\u0457\u0458\u0501\u051b\u051d\u04bb\u04cf\u0578\u057d"
        # Cyrillic upper case
        "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425\u0405"
        "\u0406\u0408\u051a\u051c"
        # Greek
        "\u03b1\u03b2\u03b5\u03b7\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03b3"
        "\u03c9\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4"
        "\u03a5\u03a7"
        # Latin and symbol look-alikes NFKC keeps
        "\u0131\u0237\u0251\u0261\u2113\u2215\u2010\u2011"
    ),
    (
        # Cyrillic lower case
        "abeekmhopctyx"
        "siijdqwhlnu"
        # Cyrillic upper case
        "ABEKMHOPCTYXS"
        "IJQW"
        # Greek
        "abenikvoptuxy"
        "wABEZHIKMNOPT"
        "YX"
        # Latin and symbol look-alikes NFKC keeps
        "ijagl/--"
    ),
)

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e\u034f"
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_ZERO_WIDTH_RE = re.compile(f"[{_ZERO_WIDTH}]")
_BIDI_RE = re.compile(f"[{_BIDI}]")
_TAGS_RE = re.compile("[\U000e0000-\U000e007f]+")
_OTHER_SCRIPT = re.compile(r"[\u0370-\u03ff\u0400-\u052f]")
_LATIN = re.compile(r"[a-zA-Z]")
_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")

# Runs long enough that ordinary words, ids and amounts do not qualify; "=" padding optional.
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:0x)?((?:[0-9A-Fa-f]{2}){8,})(?![0-9A-Fa-f])")
_HEX_SPACED = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]){7,}[0-9A-Fa-f]{2}(?![0-9A-Fa-f])")

_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_ESCAPE = re.compile(r"\\u([0-9A-Fa-f]{4})|\\x([0-9A-Fa-f]{2})")
MIN_ESCAPES = 3  # a lone "%20" in a URL is not an obfuscated sentence

_LEET = str.maketrans({"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_TOKEN = re.compile(r"\S*[A-Za-z]\S*")
_LEET_CHARS = re.compile(r"[0134578@$|!]")
# "i g n o r e" or "i.g.n.o.r.e": single letters joined by one separator, at least five.
_SPACED_LETTERS = re.compile(r"\b(?:[a-z][ .\-_*]){4,}[a-z]\b")


Decoder = Callable[[str], str | None]


@dataclass(frozen=True)
class View:
    """One reading of the text for the rules: its name says which layer produced it."""

    name: str
    text: str


@dataclass(frozen=True)
class Normalised:
    """The views of a text plus the suspicious traits found while normalising it."""

    text: str
    cased: str  # NFKC, invisible characters out, case kept: for case-sensitive rules
    views: tuple[View, ...]
    signals: tuple[str, ...]


def normalise(raw: str) -> Normalised:
    """All the views of `raw` (plain, decoded segments, leetspeak) and its signals."""
    signals: list[str] = []
    hidden = _tag_text(raw)
    if hidden:
        signals.append("unicode tag characters")
    text = fold(raw, signals)
    views = [View("text", text)]
    if hidden:
        views.append(View("tag characters", fold(hidden, [])))
    views.extend(View(name, fold(decoded, [])) for name, decoded in decoded_segments(raw))
    views.extend(View(name, fold(decoded, [])) for name, decoded in escaped_views(raw))
    if any(view.name in ("base64", "hex") for view in views):
        signals.append("encoded segment")
    views.extend(_leet_views(text))
    views.extend(_transform_views(text))
    return Normalised(
        text=text,
        cased=strip_invisible(raw),
        views=tuple(views),
        signals=tuple(dict.fromkeys(signals)),
    )


def fold(raw: str, signals: list[str]) -> str:
    """NFKC, invisible characters out, look-alikes folded, lower case, no accents, one space."""
    text = unicodedata.normalize("NFKC", raw)
    if _ZERO_WIDTH_RE.search(text):
        signals.append("zero-width characters")
        text = _ZERO_WIDTH_RE.sub("", text)
    if _BIDI_RE.search(text):
        signals.append("bidi control characters")
        text = _BIDI_RE.sub("", text)
    text = _TAGS_RE.sub("", text)
    if _mixes_scripts(text):
        signals.append("mixed-script look-alikes")
    text = text.translate(CONFUSABLES).casefold()
    return _SPACE.sub(" ", strip_accents(text)).strip()


def strip_invisible(raw: str) -> str:
    """NFKC with zero-width, bidi and tag characters removed; case and accents kept."""
    text = unicodedata.normalize("NFKC", raw)
    return _TAGS_RE.sub("", _BIDI_RE.sub("", _ZERO_WIDTH_RE.sub("", text)))


def strip_accents(text: str) -> str:
    """`text` without combining marks: "révèle" -> "revele", so rules stay ASCII."""
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def fold_leet(text: str, one: str = "i") -> str:
    """Leetspeak folded inside words only ("1gn0r3" -> "ignore"); plain numbers stay numbers."""
    table = {**_LEET, ord("1"): one, ord("|"): "l", ord("!"): "i"}

    def fold_token(match: re.Match[str]) -> str:
        token = match[0]
        return token.translate(table) if _LEET_CHARS.search(token) else token

    return _LEET_TOKEN.sub(fold_token, text)


def decoded_segments(text: str) -> list[tuple[str, str]]:
    """(encoding, text) for each base64 or hex run that decodes to printable text."""
    found: list[tuple[str, str]] = []
    for name, run, decode in _encoded_runs(text):
        decoded = decode(run)
        if decoded is not None and _reads_as_text(decoded):
            found.append((name, decoded))
            found.extend((f"{inner}>{name}", deeper) for inner, deeper in _nested(decoded))
        if len(found) >= MAX_DECODED_SEGMENTS:
            break
    return found[:MAX_DECODED_SEGMENTS]


def escaped_views(text: str) -> list[tuple[str, str]]:
    """Percent-encoded and \\u / \\x escaped text, decoded, when the text uses enough of them."""
    views: list[tuple[str, str]] = []
    if len(_PERCENT.findall(text)) >= MIN_ESCAPES:
        views.append(("percent-encoding", urllib.parse.unquote(text)))
    if len(_ESCAPE.findall(text)) >= MIN_ESCAPES:
        views.append(("escapes", _ESCAPE.sub(_unescape, text)))
    return views


def _unescape(match: re.Match[str]) -> str:
    """The character a \\uXXXX or \\xXX escape stands for."""
    return chr(int(match[1] or match[2], 16))


def _transform_views(text: str) -> list[View]:
    """Whole-text rewrites models read fluently: rot13 and reversed text."""
    return [View("rot13", codecs.encode(text, "rot13")), View("reversed", text[::-1])]


def _nested(decoded: str) -> list[tuple[str, str]]:
    """One more layer (hex inside base64 and the like), no deeper: bounded work."""
    return [
        (name, inner)
        for name, run, decode in _encoded_runs(decoded)
        for inner in [decode(run)]
        if inner is not None and _reads_as_text(inner)
    ]


def _encoded_runs(text: str) -> list[tuple[str, str, Decoder]]:
    """Candidate runs in `text`, hex first (a hex run is also a valid base64 alphabet run)."""
    runs: list[tuple[str, str, Decoder]] = []
    hex_spans: list[tuple[int, int]] = []
    for match in _HEX_SPACED.finditer(text):
        runs.append(("hex", match[0], _decode_hex))
        hex_spans.append(match.span())
    for match in _HEX_RUN.finditer(text):
        if not _inside(match.span(), hex_spans):
            runs.append(("hex", match[1], _decode_hex))
            hex_spans.append(match.span())
    for match in _BASE64_RUN.finditer(text):
        if not _inside(match.span(), hex_spans):
            runs.append(("base64", match[0], _decode_base64))
    return runs


def _inside(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    """True when `span` overlaps one of `spans`."""
    return any(span[0] < end and start < span[1] for start, end in spans)


def _decode_hex(run: str) -> str | None:
    """The UTF-8 text of a hex run (separators allowed), or None."""
    digits = re.sub(r"[ :]", "", run)
    try:
        return bytes.fromhex(digits).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _decode_base64(run: str) -> str | None:
    """The UTF-8 text of a base64 or base64url run (padding optional), or None."""
    bare = run.rstrip("=")
    padded = bare + "=" * (-len(bare) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def _reads_as_text(decoded: str) -> bool:
    """Mostly printable with some letters: hashes, keys and images decode to noise instead."""
    if not decoded:
        return False
    printable = sum(char.isprintable() or char in "\n\t\r" for char in decoded)
    letters = sum(char.isalpha() for char in decoded)
    return printable / len(decoded) >= PRINTABLE_RATIO and letters >= MIN_DECODED_LETTERS


def _tag_text(text: str) -> str:
    """The ASCII smuggled in Unicode tag characters (U+E0020..U+E007E), if any."""
    return "".join(
        chr(ord(char) - 0xE0000)
        for run in _TAGS_RE.findall(text)
        for char in run
        if 0xE0020 <= ord(char) <= 0xE007E
    )


def _mixes_scripts(text: str) -> bool:
    """True when one word mixes Latin letters with Cyrillic or Greek ones (a homoglyph trick)."""
    return any(
        _OTHER_SCRIPT.search(word) and _LATIN.search(word)
        for word in _WORD.findall(text)
        if len(word) > 2
    )


def _leet_views(text: str) -> list[View]:
    """Leetspeak and spaced-letter readings, only when they differ from the plain text."""
    views: list[View] = []
    for name, one in (("leetspeak", "i"), ("leetspeak-l", "l")):
        folded = fold_leet(text, one)
        if folded != text and all(view.text != folded for view in views):
            views.append(View(name, folded))
    joined = _SPACED_LETTERS.sub(lambda match: re.sub(r"[ .\-_*]", "", match[0]), text)
    if joined != text:
        views.append(View("spaced letters", joined))
    return views
