"""Identifier checks on the ingest path: remembered answers, the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc

import credo.ids as ids
from credo.ids import IdentifierError, make_ric, parse_subject, parse_subject_ref

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@given(
    head=st.text(alphabet="0123456789", min_size=8, max_size=8),
    rest=st.text(alphabet=USCC_ALPHABET, min_size=10, max_size=10),
)
def test_the_uscc_check_character_is_stdnums(head: str, rest: str) -> None:
    number = head + rest
    assert ids._uscc_check_character(number) == uscc.calc_check_digit(number)


def test_a_refusal_is_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A birth date in the future is refused today and accepted once the day has come."""
    born = date(2031, 5, 1)
    number = make_ric("110105", born, 17)

    class Clock(date):
        today_is = date(2031, 4, 30)

        @classmethod
        def today(cls) -> date:
            return cls.today_is

    monkeypatch.setattr(ids, "date", Clock)
    for parse in (lambda: parse_subject("person", number), lambda: parse_subject_ref(number)):
        Clock.today_is = date(2031, 4, 30)
        with pytest.raises(IdentifierError, match="is in the future"):
            parse()
        Clock.today_is = date(2031, 5, 2)
        assert parse().identifier == number


def test_remembered_answers_are_the_answers() -> None:
    for raw, kind in [
        (" 110105 19491231 002x ", "person"),
        ("91110000-600037341l", "organisation"),
        ("de:c01x00t47", "foreign"),
    ]:
        first, again = parse_subject_ref(raw), parse_subject_ref(raw)
        assert first == again and first.kind == kind
        assert parse_subject(kind, raw) == parse_subject(kind, raw) == first
    with pytest.raises(IdentifierError, match="check character is 1, expected X"):
        parse_subject_ref("110105194912310021")
    with pytest.raises(IdentifierError, match="check character is 1, expected X"):
        parse_subject_ref("110105194912310021")


@given(region=st.integers(100000, 829999), year=st.integers(1900, 2030))
def test_a_regions_years_in_use_are_stdnums(region: int, year: int) -> None:
    """Each region's years come from stdnum's table once; the answer is what get_birth_place says
    (also for a code stdnum knows only as a prefix, where it raises KeyError)."""
    from stdnum.cn import ric
    from stdnum.exceptions import ValidationError

    try:
        ric.get_birth_place(f"{region}{year}01010000")
        expected = True
    except (ValidationError, KeyError):
        expected = False
    assert ids._region_in_use(str(region), str(year)) is expected


def test_every_region_of_the_table_is_answered_as_stdnum_does() -> None:
    from stdnum import numdb
    from stdnum.cn import ric
    from stdnum.exceptions import ValidationError

    def walk(nodes: list[Any], prefix: str) -> Iterator[str]:
        for _length, low, _high, _props, children in nodes:
            if len(prefix + low) == 6:
                yield prefix + low
            yield from walk(children or [], prefix + low)

    for region in walk(numdb.get("cn/loc").prefixes, ""):
        for year in ("1950", "1983", "1997", "2024"):
            try:
                ric.get_birth_place(f"{region}{year}01010000")
                expected = True
            except (ValidationError, KeyError):
                expected = False
            assert ids._region_in_use(region, year) is expected, (region, year)
