"""The queue's cursor decoder: whatever a client sends back, it is issued or `approval.bad_cursor`."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from approvals.errors import ApprovalError
from approvals.queue import decode_cursor, encode_cursor

ID = "0" * 32


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def check(cursor: str) -> None:
    """Decoding returns what was issued or raises `approval.bad_cursor`, nothing else."""
    try:
        deadline, rank, last = decode_cursor(cursor)
    except ApprovalError as exc:
        assert exc.code == "approval.bad_cursor"
    else:
        assert encode_cursor(deadline, rank, last) == cursor or json.loads(
            base64.urlsafe_b64decode(cursor)
        ) == [deadline, -rank, last]


@pytest.mark.parametrize(
    "doc",
    [
        f'[0, Infinity, "{ID}"]',  # the cursor: -int(inf) overflowed
        f'[0, -Infinity, "{ID}"]',
        f'[0, NaN, "{ID}"]',
        f'[Infinity, 0, "{ID}"]',
        f'[1e400, 0, "{ID}"]',
        f'[{"9" * 400}, 0, "{ID}"]',  # an integer no float holds
        f'[0, {"9" * 5000}, "{ID}"]',  # past int's digit limit
        f'[0, 1.5, "{ID}"]',
        f'[0, true, "{ID}"]',
        f'["5", 1, "{ID}"]',  # strings used to convert
        f'[0, "1", "{ID}"]',
        "[0, 0, 7]",
        f'[0, 0, "{ID}", 1]',
        "[" * 100_000,  # deep: RecursionError in the parser (a client is limited to 200 chars)
        '{"a": 1, "b": 2, "c": 3}',
        "null",
    ],
)
def test_forged_cursors_of_every_shape_are_bad_cursor(doc: str) -> None:
    with pytest.raises(ApprovalError) as caught:
        decode_cursor(b64(doc.encode()))
    assert caught.value.code == "approval.bad_cursor"


@pytest.mark.parametrize("cursor", ["", "%%%", "Zm9v", "é", "\ud800", "A" * 10_000, "=" * 4])
def test_cursors_that_are_not_base64_json_are_bad_cursor(cursor: str) -> None:
    with pytest.raises(ApprovalError):
        decode_cursor(cursor)


def test_an_issued_cursor_round_trips() -> None:
    cursor = encode_cursor(1_700_000_000.25, 3, "ab" * 16)
    assert decode_cursor(cursor) == (1_700_000_000.25, 3, "ab" * 16)


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_are_bad_cursor(raw: bytes) -> None:
    check(b64(raw))


@settings(max_examples=500, deadline=None)
@given(json_values)
def test_any_json_decodes_or_is_bad_cursor(doc: Any) -> None:
    check(b64(json.dumps(doc).encode()))  # json.dumps writes NaN and Infinity as Python does


@settings(max_examples=300, deadline=None)
@given(
    st.floats() | st.integers() | st.booleans() | st.text(max_size=3),
    st.integers() | st.floats() | st.booleans() | st.text(max_size=3),
    st.text(max_size=40) | st.just(ID),
)
def test_any_triple_decodes_or_is_bad_cursor(a: Any, b: Any, c: Any) -> None:
    check(b64(json.dumps([a, b, c]).encode()))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_decodes_or_is_bad_cursor(cursor: str) -> None:
    check(cursor)
