"""RFC 8785 canonical bytes: the orjson fast path must equal the reference byte for byte."""

from __future__ import annotations

import doctest
import enum
import hashlib
import types
from typing import Any

import orjson
import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credo.ledger import canonical
from credo.ledger.canonical import (
    MAX_SAFE_INTEGER,
    CanonicalizationError,
    canonical_bytes,
    fast_path_applies,
    leaf_hash,
    record_leaf_hash,
)

SORT = orjson.OPT_SORT_KEYS

# Characters where JSON serialisers are known to disagree: escapes, controls,
# DEL, the JavaScript line terminators, BOM, private use, the top of the BMP,
# astral planes, and the RFC 8785 sort-order example characters.
SPECIAL_CHARS = [
    '"',
    "\\",
    "/",
    "\x00",
    "\x08",
    "\t",
    "\n",
    "\x0b",
    "\x0c",
    "\r",
    "\x1f",
    " ",
    "\x7f",
    "\x80",
    "\u00e9",
    "\u20ac",
    "\u4e2d",
    "\u2028",
    "\u2029",
    "\ud7ff",
    "\ue000",
    "\ufb33",
    "\ufeff",
    "\uff61",
    "\uffff",
    "\U00010000",
    "\U0001f600",
    "\U0010ffff",
]
chars = st.one_of(
    st.sampled_from(SPECIAL_CHARS),
    st.characters(max_codepoint=0x7F),
    st.characters(codec="utf-8"),  # every scalar value, no surrogates
)
texts = st.text(chars, max_size=10)
safe_ints = st.one_of(
    st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
    st.sampled_from([0, -1, 2**31, -(2**31), 2**32, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]),
)
any_ints = st.one_of(safe_ints, st.integers(-(2**70), 2**70), st.sampled_from([2**53, -(2**53), 2**64]))
floats = st.floats(allow_nan=False, allow_infinity=False)


def json_objects(scalars: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    values = st.recursive(
        scalars,
        lambda kids: st.one_of(
            st.lists(kids, max_size=4),
            st.lists(kids, max_size=3).map(tuple),
            st.dictionaries(keys, kids, max_size=4),
        ),
        max_leaves=20,
    )
    return st.dictionaries(keys, values, max_size=8)


# Anything JSON-shaped, floats and out-of-range integers included.
anything = json_objects(st.one_of(st.none(), st.booleans(), any_ints, floats, texts), texts)
# Only what the fast path accepts: any strings as values, keys below U+E000.
eligible_keys = st.text(
    st.one_of(st.characters(max_codepoint=0x7F), st.characters(codec="utf-8", max_codepoint=0xDFFF)),
    max_size=10,
)
eligible = json_objects(st.one_of(st.none(), st.booleans(), safe_ints, texts), eligible_keys)
# Keys mixing the two ranges whose UTF-16 and code-point orders disagree.
tricky_keys = st.text(
    st.sampled_from(
        ["a", "\u4e2d", "\ud7ff", "\ue000", "\ufb33", "\uff61", "\uffff", "\U00010000", "\U0001f600"]
    ),
    max_size=3,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- the equivalence proof --------------------------------------------------


def test_every_unicode_scalar_value_escapes_identically() -> None:
    # String escaping is per character, so one string holding all 1,112,064
    # scalar values settles it for values and keys alike.
    everything = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert orjson.dumps(everything) == rfc8785.dumps(everything)
    assert canonical_bytes({everything: everything}) == rfc8785.dumps({everything: everything})


@PROPERTY
@given(eligible)
def test_fast_path_output_is_byte_identical_to_rfc8785(obj: dict[str, Any]) -> None:
    assert fast_path_applies(obj)
    assert orjson.dumps(obj, option=SORT) == rfc8785.dumps(obj)
    assert canonical_bytes(obj) == rfc8785.dumps(obj)


@PROPERTY
@given(anything)
def test_canonical_bytes_equals_rfc8785_on_anything(obj: dict[str, Any]) -> None:
    if fast_path_applies(obj):
        assert orjson.dumps(obj, option=SORT) == rfc8785.dumps(obj)
    try:
        expected = rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError:
        with pytest.raises(CanonicalizationError):
            canonical_bytes(obj)
        return
    assert canonical_bytes(obj) == expected


@PROPERTY
@given(st.dictionaries(tricky_keys, st.integers(0, 9), max_size=6))
def test_every_key_order_difference_is_routed_to_the_reference(obj: dict[str, int]) -> None:
    if orjson.dumps(obj, option=SORT) != rfc8785.dumps(obj):
        assert not fast_path_applies(obj)
    assert canonical_bytes(obj) == rfc8785.dumps(obj)


def test_orjson_alone_gets_the_utf16_key_order_wrong() -> None:
    # orjson sorts by code point; JCS by UTF-16 code unit, where U+1F600 is
    # D83D DE00 and so sorts before U+FB33. The router must catch this.
    obj = {"\ufb33": 1, "\U0001f600": 2}
    assert orjson.dumps(obj, option=SORT) == '{"\ufb33":1,"\U0001f600":2}'.encode()
    assert rfc8785.dumps(obj) == '{"\U0001f600":2,"\ufb33":1}'.encode()
    assert not fast_path_applies(obj)
    assert canonical_bytes(obj) == rfc8785.dumps(obj)


def test_orjson_alone_gets_floats_wrong() -> None:
    assert orjson.dumps([1.0, -0.0, 1e16]) == b"[1.0,-0.0,1e+16]"
    assert canonical_bytes({"x": [1.0, -0.0, 1e16]}) == b'{"x":[1,0,10000000000000000]}'
    assert canonical_bytes({"x": 1e21, "y": 1e-7, "z": 0.1}) == b'{"x":1e+21,"y":1e-7,"z":0.1}'
    assert not fast_path_applies({"x": [1, {"y": 0.5}]})


def test_a_typical_record_never_touches_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    record: dict[str, Any] = {
        "seq": 1,
        "kind": "incident",
        "agency": "CN-ZJ-HZ-TP",
        "agency_ref": "HZ-2024-000123",
        "subject": {"kind": "person", "id": "11010519491231002X"},
        "rule": "CN-ZJ/traffic/red-light",
        "rule_version": 3,
        "occurred_on": "2024-03-01",
        "evidence": '闯红灯 \u2028 "quoted" \\ \U0001f6a6',
        "target_seq": None,
        "tags": ["a", "b"],
    }
    expected = rfc8785.dumps(record)

    def no_reference(obj: object) -> bytes:
        raise AssertionError("the reference serialiser was used")

    monkeypatch.setattr(canonical, "_reference", no_reference)
    assert canonical_bytes(record) == expected


# --- limits -----------------------------------------------------------------


def test_integers_outside_the_safe_range_are_refused() -> None:
    assert canonical_bytes({"n": MAX_SAFE_INTEGER}) == b'{"n":9007199254740991}'
    assert canonical_bytes({"n": -MAX_SAFE_INTEGER}) == b'{"n":-9007199254740991}'
    assert canonical_bytes({"t": True, "f": False}) == b'{"f":false,"t":true}'
    for n in (2**53, -(2**53), 2**64):
        assert not fast_path_applies({"n": n})
        with pytest.raises(CanonicalizationError, match="safe integer"):
            canonical_bytes({"n": n})


@pytest.mark.parametrize(
    "obj",
    [{"v": "\ud800"}, {"\udfff": 1}, {"v": ["ok", "\ud83d"]}, {"v": float("nan")}, {"v": float("inf")}],
    ids=["surrogate-value", "surrogate-key", "nested-surrogate", "nan", "infinity"],
)
def test_unrepresentable_input_raises(obj: dict[str, Any]) -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes(obj)


def test_non_string_keys_and_unknown_types_raise() -> None:
    with pytest.raises(CanonicalizationError):
        canonical_bytes({1: "x"})  # type: ignore[dict-item]
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"x": b"bytes"})
    with pytest.raises(CanonicalizationError):
        canonical_bytes({"x": {1, 2}})  # type: ignore[dict-item]


def test_mappings_tuples_and_subclasses_follow_the_reference() -> None:
    class Kind(enum.StrEnum):
        INCIDENT = "incident"

    class Points(enum.IntEnum):
        MINUS_FIFTY = -50

    proxy: types.MappingProxyType[str, Any] = types.MappingProxyType(
        {"b": (1, 2), "a": types.MappingProxyType({"k": Kind.INCIDENT})}
    )
    assert canonical_bytes(proxy) == b'{"a":{"k":"incident"},"b":[1,2]}'
    obj: dict[str, Any] = {"kind": Kind.INCIDENT, "points": Points.MINUS_FIFTY}
    assert not fast_path_applies(obj)
    assert canonical_bytes(obj) == rfc8785.dumps(obj) == b'{"kind":"incident","points":-50}'


def test_deep_nesting_leaves_the_fast_path_but_still_serialises() -> None:
    deep: dict[str, Any] = {"v": 0}
    for _ in range(100):  # 200 levels: past the walk's limit, within orjson's 255
        deep = {"v": [deep]}
    assert not fast_path_applies(deep)
    assert canonical_bytes(deep) == rfc8785.dumps(deep)
    for _ in range(5000):
        deep = {"v": [deep]}
    with pytest.raises(CanonicalizationError, match="nested too deeply"):
        canonical_bytes(deep)


# --- RFC 8785 examples ------------------------------------------------------


def test_rfc8785_section_3_2_2_example() -> None:
    # Input of RFC 8785 3.2.2 after JSON parsing; expected bytes from 3.2.4.
    obj: dict[str, Any] = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected_hex = (
        "7b226c69746572616c73223a5b6e756c6c2c747275652c66616c73655d2c226e756d62657273223a5b33333333"
        "33333333332e333333333333332c31652b33302c342e352c302e3030322c31652d32375d2c22737472696e6722"
        "3a22e282ac245c75303030665c6e4127425c225c5c5c5c5c222f227d"
    )
    assert canonical_bytes(obj).hex() == expected_hex
    assert canonical_bytes(obj).decode() == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )


def test_rfc8785_section_3_2_3_sort_example() -> None:
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    )
    assert canonical_bytes(obj) == expected.encode()


# --- leaf hashes ------------------------------------------------------------


def test_leaf_hash_is_sha256_of_zero_byte_and_data() -> None:
    assert leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    record: dict[str, Any] = {"b": 1, "a": "x"}
    assert record_leaf_hash(record) == leaf_hash(b'{"a":"x","b":1}')


def test_docstring_examples() -> None:
    assert doctest.testmod(canonical, raise_on_error=False).failed == 0
