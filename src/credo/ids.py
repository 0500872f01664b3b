"""Subject identifiers and their check characters.

Three kinds of subject, each with one canonical text form:

>>> parse_subject("person", " 11010519491231002x ")
SubjectId(kind='person', identifier='11010519491231002X')
>>> parse_subject("organisation", "91110000600037341L").identifier
'91110000600037341L'
>>> parse_subject("foreign", "de:C01X00T47").identifier
'DE:C01X00T47'

The checks themselves come from python-stdnum (``stdnum.cn.ric``,
``stdnum.cn.uscc``); this module turns its answers into messages that name
the part of the number that is wrong. (The USCC check character is summed
here, as stdnum sums it, on the already cleaned number: ingest checks every
record's subject. ``tests/test_ids_fast.py`` compares the two.)
"""

from __future__ import annotations

import operator
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import pycountry
from stdnum import numdb
from stdnum.cn import ric, uscc
from stdnum.exceptions import ValidationError

from credo._ric import scan

SubjectKind = Literal["person", "organisation", "foreign"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("person", "organisation", "foreign")

_FOREIGN_DOC = re.compile(r"^[A-Z0-9][A-Z0-9-]{2,29}$")


class IdentifierError(ValueError):
    """An identifier was refused; ``str()`` says which part and why."""


@dataclass(frozen=True, order=True)
class SubjectId:
    kind: SubjectKind
    identifier: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.identifier}"


_SEPARATORS = re.compile(r"[\s-]")


def _normalise(raw: str) -> str:
    if raw is None:
        return ""
    if raw.isascii() and raw.isalnum():  # nothing to remove: the common case, no regex
        return raw.upper()
    return _SEPARATORS.sub("", raw).upper()


# A date no later than today, whenever this runs: a birth date on or before
# it is not in the future, and needs no clock reading.
_NOT_AFTER_TODAY = date.today()


# stdnum's region lookup walks its data file on every call; there are only a
# few thousand (region, year) pairs and dates, so remember each answer.
@lru_cache(maxsize=1 << 16)
def _birth_date(yyyymmdd: str) -> date | None:
    try:
        return ric.get_birth_date("000000" + yyyymmdd + "0000")
    except ValidationError:
        return None


# A (region, year) answer is remembered too: the spans' walk is most of a new
# identifier's check, and a population's people come from a few regions and years.
@lru_cache(maxsize=1 << 15)
def _region_in_use(region: str, year: str) -> bool:
    """``stdnum.cn.ric.get_birth_place`` succeeds for this region and birth year."""
    spans = _region_spans(region)
    if spans is None:
        return True
    born = int(year)
    return any(start <= born <= end for start, end in spans)


# stdnum walks its region table on every call (~250 us); a country has ~190,000
# (region, year) pairs, more than a cache of answers holds, but only ~7,000 regions:
# remember each region's years instead (what get_birth_place reads from the table).
@lru_cache(maxsize=1 << 14)
def _region_spans(region: str) -> tuple[tuple[int, int], ...] | None:
    """The years in which ``region`` was in use: None for always, () for never."""
    results = numdb.get("cn/loc").info(region)
    county = {k: v for _part, props in results for k, v in props.items()}.get("county")
    if not county:  # unknown, or known only as a prefix (370253): stdnum finds no county
        return ()
    spans = []
    for name in county.split(","):
        if not name.startswith("["):
            return None
        start, end = name[1:].split("]")[0].split("-")
        spans.append((int(start) if start else 0, int(end) if end else 9999))
    return tuple(spans)


def validate_ric(raw: str) -> str:
    """GB 11643 resident identity number: 6-digit region, birth date, sequence, check."""
    number = _normalise(raw)
    if len(number) != 18:
        raise IdentifierError(f"resident identity number must have 18 characters, got {len(number)}")
    if not (number[:17].isascii() and number[:17].isdigit()):  # not "١" (isdigit says yes)
        raise IdentifierError("resident identity number: the first 17 characters must be digits 0-9")
    if not (number[17].isdigit() or number[17] == "X"):
        raise IdentifierError(
            f"resident identity number: check character must be a digit or X, got {number[17]!r}"
        )
    born = _birth_date(number[6:14])
    if born is None:
        raise IdentifierError(f"resident identity number: birth date {number[6:14]} is not a valid date")
    if born > _NOT_AFTER_TODAY and born > date.today():
        raise IdentifierError(f"resident identity number: birth date {number[6:14]} is in the future")
    if not _region_in_use(number[:6], number[6:10]):
        raise IdentifierError(
            f"resident identity number: region code {number[:6]} is not a GB/T 2260 region "
            f"in use in {born.year}"
        )
    expected = ric.calc_check_digit(number)
    if number[17] != expected:
        raise IdentifierError(
            f"resident identity number: check character is {number[17]}, expected {expected}"
        )
    return number


# GB 11643's weights of the first 17 digits, and the check character for each sum mod 11
# (what ``stdnum.cn.ric.calc_check_digit`` computes as (1 - 2 * int(number[:-1], 13)) % 11).
_RIC_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], np.int64)
_RIC_CHECK = np.frombuffer(b"10X98765432", np.uint8)
_DAYS = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)  # Feb: see below
_PERSON = "person:"
_PLACES = 10 ** np.arange(17, -1, -1, dtype=np.int64)  # 10**17 .. 1


AT_ONCE = 16  # texts from which canonical_persons (~60 us, then ~0.3 us a person) pays off


def canonical_persons(texts: list[str]) -> list[str | None]:
    """``str(parse_subject_ref(text))`` for each text that is a valid resident identity
    number written as ``parse_subject_ref`` gives it back (``person:`` and 18 characters, or
    the 18 characters alone), all checked at once; None for any other text, which the
    caller parses on its own (it may still be valid, or it is refused with a reason).

    Why: a relying party's manifest is 300 people mostly never seen before; one at a time,
    each took ~11 us (the date, the region's years, the check character), 3.3 ms a manifest.
    ``tests/test_ids_fast.py`` checks the answers are ``parse_subject_ref``'s.

    >>> canonical_persons(["11010519491231002X", "person:110105194912310021", "x"])
    ['person:11010519491231002X', None, None]

    Compiled (``_ric.c``, ~10x faster) unless a text needs Python: a region not looked up
    yet, a year of birth outside 1900-2155; then every text goes through numpy here.
    """
    table = _YEAR_ROWS  # one table for the call: _fill may publish another meanwhile
    if type(texts) is list:
        today = date.today()
        fast = scan(texts, _REGION_ROW, table, len(table), today.year * 10000 + today.month * 100 + today.day)
        if fast is not None:
            return fast
    return _canonical_persons(texts)


def _canonical_persons(texts: list[str]) -> list[str | None]:
    """:func:`canonical_persons` in numpy, for any texts."""
    numbers = [t[7:] if len(t) == 25 and t.startswith(_PERSON) else t for t in texts]
    shaped = [i for i, number in enumerate(numbers) if len(number) == 18 and number.isascii()]
    out: list[str | None] = [None] * len(texts)
    if shaped:
        joined = "".join([numbers[i] for i in shaped]).encode("ascii")
        ok = _valid_rics(np.frombuffer(joined, np.uint8).reshape(-1, 18))
        for i, good in zip(shaped, ok.tolist(), strict=True):
            if good:
                out[i] = _PERSON + numbers[i]
    return out


# _region_in_use as two tables: each six-digit region's row (0: not looked up yet), and per
# row the years 1900-2155 in which the region was in use. Rows are added as regions are first
# met (at most the ~7,000 that stdnum knows and two shared rows: never, always); a new table
# is published before the slots that point into it, so a reader never sees a slot past it.
_FIRST_YEAR, _YEARS = 1900, 256
_REGION_ROW = np.zeros(1_000_000, np.int16)
_YEAR_ROWS = np.zeros((1, _YEARS), bool)
_ROWS: dict[tuple[tuple[int, int], ...] | None, int] = {}
_ROWS_LOCK = threading.Lock()


def _years_row(spans: tuple[tuple[int, int], ...] | None) -> npt.NDArray[np.bool_]:
    years = np.arange(_FIRST_YEAR, _FIRST_YEAR + _YEARS)
    row = np.full(_YEARS, spans is None)
    for start, end in spans or ():
        row |= (start <= years) & (years <= end)
    return row


def _fill(codes: list[int]) -> None:
    """Give each region of ``codes`` its row of years (looked up in stdnum once)."""
    global _YEAR_ROWS
    with _ROWS_LOCK:
        table = list(_YEAR_ROWS)
        for code in codes:
            if _REGION_ROW[code]:  # another thread filled it meanwhile
                continue
            spans = _region_spans(f"{code:06d}")
            if spans not in _ROWS:
                _ROWS[spans] = len(table)
                table.append(_years_row(spans))
            if len(table) > len(_YEAR_ROWS):
                _YEAR_ROWS = np.array(table)
            _REGION_ROW[code] = _ROWS[spans]


def _known_regions(prefixes: list[Any], prefix: str = "") -> Iterator[int]:
    """Every six-digit region code stdnum's table names (a node may be a range of codes)."""
    for length, low, high, _props, children in prefixes:
        for value in range(int(low), int(high) + 1):
            code = prefix + f"{value:0{length}d}"
            if len(code) == 6:
                yield int(code)
            elif len(code) < 6:
                yield from _known_regions(children, code)


def warm_regions() -> int:
    """Look up now every region stdnum knows (~7,000, ~60 us each): how many were new.

    Why: ``canonical_persons`` looks a region up the first time a person born there is
    checked. A server's first manifests of fresh passengers met hundreds of new regions
    each (~2 ms a manifest of 300 instead of ~0.2 ms, for the first ~150 of a worker);
    the server's workers call this at start, on a thread of their own. Regions stdnum
    does not name are still looked up when met, as before.
    """
    codes = [code for code in _known_regions(numdb.get("cn/loc").prefixes) if not _REGION_ROW[code]]
    for start in range(0, len(codes), 256):  # a request's own fill waits for 256 at most (~15 ms)
        _fill(codes[start : start + 256])
    return len(codes)


def _in_use(region: npt.NDArray[np.int64], year: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """``_region_in_use`` of each (region, year), the years outside 1900-2155 one by one."""
    rows = _REGION_ROW[region]
    if not rows.all():
        _fill(np.unique(region[rows == 0]).tolist())
        rows = _REGION_ROW[region]
    column = year - _FIRST_YEAR
    inside = (column >= 0) & (column < _YEARS)
    fits = _YEAR_ROWS[rows, np.where(inside, column, 0)]
    for i in np.flatnonzero(~inside).tolist():
        fits[i] = _region_in_use(f"{region[i]:06d}", f"{year[i]:04d}")
    return fits


def _valid_rics(rows: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """``validate_ric`` accepts row i (18 ASCII bytes, already compact and upper case)."""
    digits = rows[:, :17].astype(np.int64) - 48
    last = rows[:, 17]
    ok: npt.NDArray[np.bool_] = np.asarray(((digits >= 0) & (digits <= 9)).all(axis=1))
    ok &= ((last >= 48) & (last <= 57)) | (last == 88)  # a digit or X
    ok &= _RIC_CHECK[(digits.clip(0, 9) @ _RIC_WEIGHTS) % 11] == last
    region = digits[:, :6] @ _PLACES[-6:]
    year = digits[:, 6:10] @ _PLACES[-4:]
    month = digits[:, 10] * 10 + digits[:, 11]
    day = digits[:, 12] * 10 + digits[:, 13]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    good_month = (month >= 1) & (month <= 12)
    days = np.where((month == 2) & ~leap, 28, _DAYS[np.where(good_month, month, 0)])
    ok &= (year >= 1) & good_month & (day >= 1) & (day <= days)
    today = date.today()
    ok &= year * 10000 + month * 100 + day <= today.year * 10000 + today.month * 100 + today.day
    if ok.any():  # the region was in use in the year of birth
        ok[ok] = _in_use(region[ok], year[ok])
    return ok


_USCC_ALPHABET: str = uscc._alphabet
_USCC_CHARACTERS = frozenset(_USCC_ALPHABET)
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def _uscc_check_character(number: str) -> str:
    """``stdnum.cn.uscc.calc_check_digit`` for a number already compact and in its alphabet
    (the same sum, without re-cleaning the number or searching the alphabet per character)."""
    total = sum(map(operator.mul, map(_USCC_VALUE.__getitem__, number[:17]), _USCC_WEIGHTS))
    return _USCC_ALPHABET[-total % 31]


def validate_uscc(raw: str) -> str:
    """GB 32100 Unified Social Credit Code: authority, type, region, organisation code, check."""
    number = _normalise(raw)
    if len(number) != 18:
        raise IdentifierError(f"unified social credit code must have 18 characters, got {len(number)}")
    if not (number[:8].isascii() and number[:8].isdigit()):
        raise IdentifierError(
            "unified social credit code: registration authority, entity type and region "
            "(characters 1-8) must be digits"
        )
    if not _USCC_CHARACTERS.issuperset(number[8:]):
        bad = [c for c in number[8:] if c not in _USCC_CHARACTERS]
        raise IdentifierError(
            f"unified social credit code: character {bad[0]!r} is not allowed "
            "(alphabet 0-9, A-Z without I, O, S, V, Z)"
        )
    expected = _uscc_check_character(number)
    if number[17] != expected:
        raise IdentifierError(
            f"unified social credit code: check character is {number[17]}, expected {expected}"
        )
    return number


def validate_foreign(raw: str) -> str:
    """ISO 3166 alpha-2 country, a colon, and the travel document number."""
    text = re.sub(r"\s", "", raw or "").upper()
    country, sep, doc = text.partition(":")
    if not sep:
        raise IdentifierError("foreign identifier must be COUNTRY:DOCUMENT, e.g. DE:C01X00T47")
    if len(country) != 2 or pycountry.countries.get(alpha_2=country) is None:
        raise IdentifierError(f"foreign identifier: {country!r} is not an ISO 3166 alpha-2 country")
    if not _FOREIGN_DOC.match(doc):
        raise IdentifierError("foreign identifier: document number must be 3-30 letters, digits or '-'")
    return f"{country}:{doc}"


_VALIDATORS = {"person": validate_ric, "organisation": validate_uscc, "foreign": validate_foreign}


def parse_subject(kind: str, identifier: str) -> SubjectId:
    """Validate and normalise; raises :class:`IdentifierError` with the reason."""
    if type(kind) is str and type(identifier) is str:
        return _parse_subject_cached(kind, identifier)
    return _parse_subject(kind, identifier)


def _parse_subject(kind: str, identifier: str) -> SubjectId:
    if kind not in _VALIDATORS:
        raise IdentifierError(f"subject kind must be one of {', '.join(SUBJECT_KINDS)}, got {kind!r}")
    if not isinstance(identifier, str) or not identifier.strip():
        raise IdentifierError("identifier must not be empty")
    return SubjectId(cast(SubjectKind, kind), _VALIDATORS[kind](identifier))


def parse_subject_ref(ref: str) -> SubjectId:
    """Parse ``kind:identifier`` or a bare identifier (kind guessed from its shape).

    >>> parse_subject_ref("11010519491231002X").kind
    'person'
    """
    return _parse_subject_ref_cached(ref) if type(ref) is str else _parse_subject_ref(ref)


def _parse_subject_ref(ref: str) -> SubjectId:
    kind, sep, rest = ref.partition(":")
    if sep and kind in _VALIDATORS:
        return _parse_subject(kind, rest)
    text = _normalise(ref)
    if len(text) != 18:
        return _parse_subject("foreign", ref)
    # A code can be all digits and pass both checks' shapes: try a person
    # first, then an organisation, and report the person's reason if neither fits.
    # (A code that cannot be a person's -- a letter before the last place --
    # goes to the organisation check at once: raising the person's reason
    # first would cost more than the check itself.)
    if not (text[:17].isdigit() and (text[17].isdigit() or text[17] == "X")):
        try:
            return SubjectId("organisation", validate_uscc(text))
        except IdentifierError:
            pass
    try:
        return SubjectId("person", validate_ric(text))
    except IdentifierError as as_person:
        try:
            return SubjectId("organisation", validate_uscc(text))
        except IdentifierError:
            raise as_person from None


# Ingest parses every record's subject, and the same subjects come back
# again and again. Only answers are remembered (lru_cache never keeps an
# exception): an identifier valid once stays valid, whereas a refusal may
# not last (a birth date "in the future" becomes today).
_parse_subject_cached = lru_cache(maxsize=1 << 16)(_parse_subject)
_parse_subject_ref_cached = lru_cache(maxsize=1 << 16)(_parse_subject_ref)


def make_ric(region: str, born: date, sequence: int) -> str:
    """Build a valid resident identity number (synthetic populations, tests)."""
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    # stdnum's MOD 11-2 helper takes the full number and ignores its last character.
    return body + ric.calc_check_digit(body + "0")


def make_uscc(authority: str, entity: str, region: str, org: str) -> str:
    """Build a valid Unified Social Credit Code from its parts (9-character org code)."""
    body = f"{authority}{entity}{region}{org}"
    return body + uscc.calc_check_digit(body)
