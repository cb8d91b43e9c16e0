"""Canonical JSON: our fast path agrees with RFC 8785 everywhere, and refuses what JCS refuses."""

from __future__ import annotations

import math

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from audit import AuditEvent, CanonicalizationError, canonical, seal
from audit.model import Actor

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_fast_path_matches_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonical(value)
        return
    assert canonical(value) == expected


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 2**53, -(2**53), 10**20, {"a": [math.nan]}, "\ud800"],
)
def test_values_without_a_canonical_form_are_refused(value: object) -> None:
    with pytest.raises(CanonicalizationError) as info:
        canonical(value)
    assert info.value.code == "audit.non_canonical"


def test_non_json_types_get_a_clear_error() -> None:
    with pytest.raises(CanonicalizationError, match="convert it to str"):
        canonical({"when": object()})


def test_an_event_with_a_nan_is_refused_before_it_reaches_a_store() -> None:
    event = AuditEvent(event_type="x", actor=Actor.system(), data={"score": math.nan})
    with pytest.raises(CanonicalizationError):
        seal(event)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    """U+FB01 sorts after U+1F600 in UTF-16 (0xFB01 > 0xD83D), before it by code point."""
    value = {"\U0001f600": 1, "\ufb01": 2}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(value).index("\U0001f600".encode()) < canonical(value).index("\ufb01".encode())


# Floats are where `json` and JCS part ways (ECMAScript number formatting): the fast path
# keeps only those whose repr has no exponent, and writes integral ones as JCS does ("1").
magnitudes = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1.0, -1.0, 0.25, 1e-4, 9.99e-5, 1e-7, 1e15, 1e16, 9007199254740993.0,
     123456789.125, 1e21, 1e-6, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]
)  # fmt: skip


@given(st.lists(magnitudes, max_size=6), magnitudes)
def test_floats_of_every_magnitude_match_rfc8785(values: list[float], one: float) -> None:
    value = {"xs": values, "one": one, "nested": [{"p": one}]}
    assert canonical(value) == rfc8785.dumps(value)
    assert canonical(one) == rfc8785.dumps(one)


def test_everyday_floats_take_the_fast_path() -> None:
    """Probabilities and timestamps (what every decision logs) need no rfc8785 pass."""
    from audit.canonical import _fast

    event = {"propensity": 0.25, "at": 1764600000.123456, "whole": 3.0, "n": [1.0, 2]}
    fast = _fast(event)
    assert fast == {"propensity": 0.25, "at": 1764600000.123456, "whole": 3, "n": [1, 2]}
    assert type(fast["whole"]) is int
    assert event["whole"] == 3.0 and type(event["whole"]) is float  # the input is not changed
    plain = {"a": [1, "x", None]}
    assert _fast(plain) is plain  # nothing to change: no copy
