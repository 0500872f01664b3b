"""RFC 8785 (JCS) bytes of a ledger record, and its RFC 9162 leaf hash.

Every ledger record is hashed as the RFC 8785 JSON Canonicalization Scheme
serialisation of its JSON form, so anyone holding the record and any
conforming JCS implementation (Python, Go, JavaScript, ...) recomputes the
same leaf hash:

>>> canonical_bytes({"b": [1, "é"], "a": None})
b'{"a":null,"b":[1,"\\xc3\\xa9"]}'
>>> leaf_hash(b"").hex()
'6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d'

Two serialisers produce the same bytes here:

* the **fast path**, ``orjson.dumps(obj, option=OPT_SORT_KEYS)`` after a
  type walk (about 4 us for a 14-field record, against about 50 us for the
  reference), taken only where :func:`fast_path_applies` says it is
  byte-identical to JCS;
* the **reference**, the ``rfc8785`` library, for everything else (floats,
  integers outside the IEEE 754 safe range, keys whose sort order differs
  between UTF-16 and code points, exotic containers and subclasses).

Why the fast path is exact where it is taken (each point is checked by
``tests/ledger/test_canonical.py``):

* *Strings.* JCS escapes ``"``, ``\\``, and U+0000..U+001F (``\\b \\t \\n
  \\f \\r`` short forms, the rest as lowercase ``\\u00xx``) and writes every
  other code point as raw UTF-8, U+007F, U+2028/U+2029 and non-BMP ones
  included. orjson does exactly the same for every one of the 1,112,064
  Unicode scalar values; the test serialises all of them both ways. A lone
  surrogate makes orjson raise, and we then let the reference report it.
* *Integers.* Both write plain decimal digits. JCS numbers are IEEE 754
  doubles, so only the safe range ``|n| <= 2**53 - 1`` is exact; the
  reference refuses anything larger, and the fast path never sees it.
* *Literals* ``null``, ``true``, ``false``: identical.
* *Member order.* JCS sorts keys by UTF-16 code units; orjson by UTF-8
  bytes, i.e. by code points. The two orders agree unless one key holds a
  character in U+E000..U+FFFF where another holds a non-BMP character (whose
  UTF-16 lead surrogate, 0xD800..0xDBFF, sorts *before* 0xE000). The fast
  path requires every character of every key to be below U+E000, which
  covers ASCII field names and CJK text and can never meet that pair.
* *Whitespace.* Neither emits any.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

import orjson
import rfc8785

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "JSONValue",
    "canonical_bytes",
    "fast_path_applies",
    "leaf_hash",
    "record_leaf_hash",
]

JSONValue: TypeAlias = "bool | int | float | str | Sequence[JSONValue] | Mapping[str, JSONValue] | None"

#: Largest integer an IEEE 754 double holds exactly (ECMAScript
#: ``Number.MAX_SAFE_INTEGER``); JCS (via the ``rfc8785`` library) refuses
#: integers beyond it rather than silently rounding them.
MAX_SAFE_INTEGER = 2**53 - 1

#: Raised for input JCS cannot represent (NaN, infinities, unsafe integers,
#: lone surrogates, non-string keys, unsupported types).
CanonicalizationError = rfc8785.CanonicalizationError

# orjson refuses nesting deeper than 255; stopping the eligibility walk well
# before that also keeps it clear of Python's recursion limit.
_MAX_FAST_DEPTH = 128

# UTF-16 and code-point key orders only disagree from U+E000 upwards.
_FIRST_UNSAFE_KEY_CHAR = "\ue000"

_OPTIONS = orjson.OPT_SORT_KEYS


def _fast_value(value: Any, depth: int) -> bool:
    # Exact type checks, not isinstance: subclasses (str/int enums, custom
    # dicts) may serialise differently in orjson and the reference, so they
    # go to the reference. Scalars inside containers are checked inline
    # because a call per field would double the cost of the walk, and the
    # walk is most of the fast path's cost.
    kind = type(value)
    if kind is dict:
        if depth >= _MAX_FAST_DEPTH:
            return False
        for key, item in value.items():
            # isascii() is a flag check; max() only runs for non-ASCII keys.
            if type(key) is not str or not (key.isascii() or max(key) < _FIRST_UNSAFE_KEY_CHAR):
                return False
            item_kind = type(item)
            if item_kind is str or item is None or item_kind is bool:
                continue
            if item_kind is int:
                if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                    continue
                return False
            if not _fast_value(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        if depth >= _MAX_FAST_DEPTH:
            return False
        for item in value:
            item_kind = type(item)
            if item_kind is str or item is None or item_kind is bool:
                continue
            if not _fast_value(item, depth + 1):
                return False
        return True
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        number: int = value
        return -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER
    # float (ECMAScript number formatting), Mapping/Sequence look-alikes and
    # anything else.
    return False


def fast_path_applies(obj: object) -> bool:
    """True when ``orjson.dumps(obj, option=OPT_SORT_KEYS)`` is exactly JCS.

    >>> fast_path_applies({"subject": "11010519491231002X", "points": -50})
    True
    >>> fast_path_applies({"ratio": 0.5})             # float formatting differs
    False
    >>> fast_path_applies({"n": 2**53})               # beyond the safe range
    False
    >>> fast_path_applies({"\\uff61": 1, "\\U0001f600": 2})  # UTF-16 order differs
    False
    """
    return _fast_value(obj, 0)


def _plain(value: object) -> object:
    # The reference library only accepts dict/list/tuple; honour the
    # Mapping/Sequence promise of canonical_bytes by converting look-alikes.
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, (Mapping, Sequence)):
        return value
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return [_plain(item) for item in value]


def _reference(obj: object) -> bytes:
    try:
        return rfc8785.dumps(_plain(obj))  # type: ignore[arg-type]
    except UnicodeError as exc:
        # rfc8785 lets UTF-16 key encoding errors (lone surrogates) escape.
        raise CanonicalizationError("input contains non-UTF-8 codepoints") from exc
    except RecursionError:
        # Both walks recurse; no record is this deep, so refuse it like any
        # other unrepresentable input rather than crash the caller.
        raise CanonicalizationError("input is nested too deeply") from None


def canonical_bytes(obj: Mapping[str, JSONValue]) -> bytes:
    """Return the RFC 8785 canonical JSON bytes of ``obj``.

    >>> canonical_bytes({"z": 1, "a": {"y": True, "x": "\\n"}})
    b'{"a":{"x":"\\\\n","y":true},"z":1}'
    >>> canonical_bytes({"n": 1.0, "m": 1e21})        # floats take the reference path
    b'{"m":1e+21,"n":1}'

    Raises :data:`CanonicalizationError` for values JCS cannot represent.
    """
    if _fast_value(obj, 0):
        try:
            return orjson.dumps(obj, option=_OPTIONS)
        except orjson.JSONEncodeError:
            # Lone surrogates in a string: let the reference raise its error.
            pass
    return _reference(obj)


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data).

    The 0x00 prefix (0x01 for interior nodes) stops a leaf from being passed
    off as an interior node (second-preimage attack on the tree).
    """
    return hashlib.sha256(b"\x00" + data).digest()


def record_leaf_hash(obj: Mapping[str, JSONValue]) -> bytes:
    """Leaf hash of a record: ``leaf_hash(canonical_bytes(obj))``."""
    return leaf_hash(canonical_bytes(obj))
