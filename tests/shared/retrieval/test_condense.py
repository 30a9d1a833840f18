"""Follow-up questions rewritten into standalone ones, rule by rule (see condense.py)."""

from __future__ import annotations

import pytest

from shared.retrieval.condense import is_follow_up, standalone_question


def user(*turns: str) -> list[dict[str, str]]:
    """A conversation of user turns, with an assistant reply between them."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        messages += [{"role": "user", "content": turn}, {"role": "assistant", "content": "..."}]
    return messages[:-1]


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        # 1. time slots
        (("What was revenue in 2022?", "and in 2023?"), "What was revenue in 2023?"),
        (("What was revenue in Q2 2022?", "and Q3?"), "What was revenue in Q3 2022?"),
        (("What was revenue in Q2 2022?", "what about Q4 2023?"), "What was revenue in Q4 2023?"),
        (("Revenue of Contoso in FY2022?", "and FY2023?"), "Revenue of Contoso in FY2023?"),
        (("What were sales in March?", "and April?"), "What were sales in April?"),
        (
            ("How many vessels are in the fleet?", "and in 2023?"),
            "How many vessels are in the fleet in 2023?",
        ),
        # 2. possessive
        (
            ("What was the revenue of Contoso in 2022?", "and its headcount?"),
            "What was the headcount of Contoso in 2022?",
        ),
        (
            ("Tell me about Harbour Logistics.", "and its revenue?"),
            "What is the revenue of Harbour Logistics?",
        ),
        (
            ("What does Nordwood AB supply?", "what is their contract number?"),
            "What is the contract number of Nordwood AB?",
        ),
        # 3. same head noun
        (
            ("What were sales in the northern region in 2022?", "what about the southern region?"),
            "What were sales in the southern region in 2022?",
        ),
        (
            ("What is the refund limit for support agents?", "and for team leads?"),
            "What is the refund limit for team leads?",
        ),
        (
            ("What were sales in the northern region in 2022?", "and in Europe?"),
            "What were sales in Europe in 2022?",
        ),
        # 4. compass direction
        (
            ("What were sales in the northern region?", "and the south?"),
            "What were sales in the southern region?",
        ),
        (("Where is the North terminal?", "what about east?"), "Where is the East terminal?"),
        # 5. new subject
        (
            ("What is the refund policy for Acme?", "what about Globex?"),
            "What is the refund policy for Globex?",
        ),
        # 6. appended
        (
            ("What were sales in 2022?", "and the marketing team?"),
            "What were sales in 2022 for the marketing team?",
        ),
        (("What were sales in 2022?", "in Europe"), "What were sales in 2022 in Europe?"),
    ],
)
def test_follow_ups_become_standalone(turns: tuple[str, ...], expected: str) -> None:
    assert standalone_question(user(*turns)) == expected


def test_slots_accumulate_over_a_chain_of_follow_ups() -> None:
    turns = user(
        "What was revenue in the northern region in 2022?",
        "and in 2023?",
        "what about the southern region?",
    )
    assert standalone_question(turns) == "What was revenue in the southern region in 2023?"


@pytest.mark.parametrize(
    "question",
    [
        "What is the shipping policy?",
        "How long do customers have to return goods?",
        "Which warehouse holds item 42?",
        "List the approved suppliers",
    ],
)
def test_a_standalone_last_turn_is_unchanged(question: str) -> None:
    assert not is_follow_up(question)
    assert standalone_question(user("What was revenue in 2022?", question)) == question


def test_a_first_turn_is_never_rewritten() -> None:
    assert standalone_question(user("and in 2023?")) == "and in 2023?"


def test_assistant_turns_and_content_parts() -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "What was revenue in 2022?"}]},
        {"role": "assistant", "content": "It was 378 million in 2023."},
        {"role": "user", "content": "and in 2023?"},
    ]
    assert standalone_question(messages) == "What was revenue in 2023?"


def test_no_user_turn_gives_an_empty_question() -> None:
    assert standalone_question([]) == ""
    assert standalone_question([{"role": "assistant", "content": "hello"}]) == ""
