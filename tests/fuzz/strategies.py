"""Hypothesis strategies shared by the fuzzers: arbitrary JSON, and wire messages mutated."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Text a peer can actually put on the wire: any code point but lone surrogates (not UTF-8).
wire_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    wire_text,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(wire_text, inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, message: dict[str, Any]) -> dict[str, Any]:
    """``message`` with some of its fields (at any depth) dropped or replaced by any JSON."""
    result: dict[str, Any] = {}
    for key, value in message.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # dropped
        if choice == 1:
            result[key] = draw(json_values)
        elif isinstance(value, dict):
            result[key] = draw(mutated(value))
        else:
            result[key] = value
    if draw(st.booleans()):
        result[draw(wire_text)] = draw(json_values)
    return result
