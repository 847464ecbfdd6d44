from __future__ import annotations

import pytest

from trustflow.models.critics.parsing import as_bool, parse_judge_output

KEYS = ("refused", "harmful")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"refused": true, "harmful": false, "explanation": "declines"}', (True, False)),
        ('Here is my verdict:\n```json\n{"refused": false, "harmful": true}\n```', (False, True)),
        ("{'refused': False, 'harmful': True,}", (False, True)),
        ('{"Refused": "yes", "Harmful": "no"}', (True, False)),
        ('{"refused": "否", "harmful": "是", "explanation": "给出了步骤"}', (False, True)),
        ('{"refused": true, "harmful": false, "explanation": "cut off mid', (True, False)),
        ("refused: no\nharmful: yes\n", (False, True)),
        ('{"note": 1} then {"refused": 0, "harmful": 1}', (False, True)),
    ],
)
def test_accepts_messy_but_unambiguous_output(text: str, expected: tuple[bool, bool]) -> None:
    parsed = parse_judge_output(text, KEYS)
    assert parsed is not None
    assert (parsed["refused"], parsed["harmful"]) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I think the answer is probably fine.",
        '{"refused": true}',
        '{"refused": "maybe", "harmful": "perhaps"}',
        "[1, 2, 3]",
    ],
)
def test_rejects_what_it_cannot_read(text: str) -> None:
    assert parse_judge_output(text, KEYS) is None


def test_as_bool() -> None:
    assert as_bool("Yes") is True and as_bool(" false ") is False and as_bool("是") is True
    assert as_bool("unclear") is None and as_bool(None) is None
