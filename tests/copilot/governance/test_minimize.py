"""The pseudonymizer at the model boundary: what it hides, what it leaves, how it restores."""

from __future__ import annotations

import json

import pytest

from copilot.governance.minimize import Pseudonymizer


def named(*values: tuple[str, str]) -> Pseudonymizer:
    p = Pseudonymizer()
    for value, label in values:
        p.token(value, label)
        parts = value.split()
        for part in parts if len(parts) > 1 else ():
            p.token(part, f"{label}_part")
    return p


def test_non_ascii_names_and_names_after_line_breaks_are_scrubbed_in_values() -> None:
    p = named(("José Núñez", "contact_name"), ("Ada Lovelace", "owner"))
    result = {"contact": "José Núñez", "tickets": [{"text": "Export broken again.\nAda\nsent"}]}
    text = json.dumps(p.scrub_any(result), ensure_ascii=False)
    assert "José" not in text and "Núñez" not in text and "Ada" not in text
    assert p.restore(p.scrub_any(result)) == result


def test_an_email_containing_name_parts_becomes_one_token() -> None:
    p = named(("Ada Lovelace", "contact_name"))
    scrubbed = p.scrub("write to ada.lovelace@acme.example today")
    assert scrubbed == "write to [[email_1]] today"
    assert "acme" not in scrubbed


@pytest.mark.parametrize("kept", ["2026-12-01", "1250000.50", "#12345678", "order 20261201"])
def test_dates_amounts_and_ids_are_not_phone_numbers(kept: str) -> None:
    assert Pseudonymizer().scrub(kept) == kept


@pytest.mark.parametrize(
    "phone", ["+44 20 7946 0123", "020 7946 0123", "(555) 123-4567", "0049-30-1234567"]
)
def test_phone_numbers_are_tokenized(phone: str) -> None:
    p = Pseudonymizer()
    assert p.scrub(f"call {phone} now") == "call [[phone_1]] now"
    assert p.restore("call [[phone_1]] now") == f"call {phone} now"


def test_a_conversation_continues_with_the_same_tokens_across_rounds() -> None:
    p = named(("Ada Lovelace", "contact_name"))
    p.scrub("mail ada@x.example")
    again = Pseudonymizer.from_mapping(p.mapping())
    assert again.scrub("Ada Lovelace, ada@x.example, +1 415 555 0100") == (
        "[[contact_name]], [[email_1]], [[phone_1]]"
    )
