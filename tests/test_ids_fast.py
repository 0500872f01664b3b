"""Identifier checks on the ingest path: remembered answers, the same answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

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


def _walk_regions() -> list[str]:
    from stdnum import numdb

    def walk(nodes: list[Any], prefix: str) -> Iterator[str]:
        for _length, low, _high, _props, children in nodes:
            if len(prefix + low) == 6:
                yield prefix + low
            yield from walk(children or [], prefix + low)

    return list(walk(numdb.get("cn/loc").prefixes, ""))


REGIONS = _walk_regions()


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
    from stdnum.exceptions import ValidationError

    for region in REGIONS:
        for year in ("1950", "1983", "1997", "2024"):
            try:
                ric.get_birth_place(f"{region}{year}01010000")
                expected = True
            except (ValidationError, KeyError):
                expected = False
            assert ids._region_in_use(region, year) is expected, (region, year)


CHECKS = "0123456789Xx"


@st.composite
def person_like(draw: st.DrawFn) -> str:
    """Texts near a resident identity number: real and unknown regions, dates around the
    table's years and leap days, impossible months and days, any check character, with or
    without "person:", now and then a separator, a lower-case x or a non-ASCII digit."""
    region = draw(st.sampled_from(REGIONS) | st.integers(0, 999_999).map(lambda r: f"{r:06d}"))
    year = draw(st.integers(1850, 2200) | st.sampled_from([0, 1, 1900, 2000, 2024, 2100, 9999]))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32) | st.just(29))
    body = f"{region}{year:04d}{month:02d}{day:02d}{draw(st.integers(0, 999)):03d}"
    valid_check = ric.calc_check_digit(body + "0")
    number = body + draw(st.sampled_from(CHECKS) | st.just(valid_check))
    number = draw(st.sampled_from([number, number, number, number[:-1], number + "1", "١" + number[1:]]))
    if draw(st.booleans()):
        number = number[:6] + "-" + number[6:] if draw(st.integers(0, 9)) == 0 else number
    return draw(st.sampled_from(["", "", "person:", "organisation:"])) + number


def _parsed(text: str) -> str | None:
    try:
        return str(parse_subject_ref(text))
    except IdentifierError:
        return None


@given(texts=st.lists(person_like(), min_size=1, max_size=40))
def test_a_manifests_people_checked_at_once_are_parse_subject_refs_people(texts: list[str]) -> None:
    """Each answer is ``parse_subject_ref``'s, and only a text it would not give back unchanged
    (or without its "person:") is left to the caller."""
    for text, fast in zip(texts, ids.canonical_persons(texts), strict=True):
        expected = _parsed(text)
        if fast is not None:
            assert fast == expected, text
        elif expected is not None and expected.startswith("person:"):
            assert expected not in (text, "person:" + text), text


def test_people_checked_at_once_include_every_region_and_leap_day() -> None:
    texts = [
        make_ric(region, date(year, 2, 29) if year % 4 == 0 else date(year, 12, 31), 1)
        for region in REGIONS
        for year in (1950, 1983, 1996, 2000, 2024)
    ]
    people = [p if p is not None and p.startswith("person:") else None for p in map(_parsed, texts)]
    fast = ids.canonical_persons(texts) + ids.canonical_persons(["person:" + t for t in texts])
    assert fast == people * 2  # (a number that is no person's may be an organisation's)
    assert sum(p is not None for p in people) > len(texts) / 2  # most regions in use some year


def test_a_birth_date_after_today_is_left_to_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    number = make_ric("110105", date(2031, 5, 1), 17)

    class Clock(date):
        @classmethod
        def today(cls) -> date:
            return date(2031, 4, 30)

    monkeypatch.setattr(ids, "date", Clock)
    assert ids.canonical_persons([number, "person:" + number]) == [None, None]
    monkeypatch.setattr(Clock, "today", classmethod(lambda cls: date(2031, 5, 1)))
    assert ids.canonical_persons([number]) == ["person:" + number]


def test_texts_are_checked_whole_only_when_each_has_the_shape() -> None:
    """24 + 26 characters join like 25 + 25: "person:" and 17 digits, then "X" and "person:"
    and 18 would pass as two people if only the joined length were looked at."""
    number = make_ric("110105", date(1949, 12, 31), 2)  # ends in X
    tricky = ["person:" + number[:17], "Xperson:" + number]
    assert ids.canonical_persons(tricky) == [None, None]
    assert ids.canonical_persons([number[:17], number + "1"]) == [None, None]  # 17 + 19


def _cold_regions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The region tables as a new process has them: nothing looked up yet (once no server
    worker's start-up look-up still runs in this process: it would fill the tables swapped)."""
    for thread in threading.enumerate():
        if thread.name == "warm-regions":
            thread.join()
    monkeypatch.setattr(ids, "_REGION_ROW", np.zeros_like(ids._REGION_ROW))
    monkeypatch.setattr(ids, "_YEAR_ROWS", np.zeros((1, ids._YEARS), bool))
    monkeypatch.setattr(ids, "_ROWS", {})


def test_warming_looks_up_every_region_so_that_a_manifest_looks_up_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = [make_ric(region, date(year, 6, 30), 1) for region in REGIONS for year in (1950, 1996)]
    people = [p if p is not None and p.startswith("person:") else None for p in map(_parsed, texts)]
    _cold_regions(monkeypatch)
    assert ids.warm_regions() >= len(set(REGIONS))
    assert ids.warm_regions() == 0  # all known now

    def looked_up(region: str) -> None:
        raise AssertionError(f"region {region} looked up by a check after warming")

    monkeypatch.setattr(ids, "_region_spans", looked_up)
    assert ids.canonical_persons(texts) == people


def _scan(texts: list[str]) -> list[str | None] | None:
    """The compiled path of ``canonical_persons`` alone."""
    today = date.today()
    table = ids._YEAR_ROWS
    today_number = today.year * 10000 + today.month * 100 + today.day
    return ids.scan(texts, ids._REGION_ROW, table, len(table), today_number)


@given(texts=st.lists(person_like(), min_size=1, max_size=40))
def test_the_compiled_check_answers_as_the_numpy_one(texts: list[str]) -> None:
    ids.warm_regions()
    compiled = _scan(texts)
    if compiled is None:  # a region stdnum does not name, met for the first time: numpy fills it
        ids._canonical_persons(texts)
        compiled = _scan(texts)
    if compiled is None:  # then only a year of birth before the table's 1900 is left to numpy
        numbers = [t.removeprefix("person:") for t in texts]
        assert any(len(n) == 18 and n[6:10].isdigit() and int(n[6:10]) < 1900 for n in numbers)
    else:
        assert compiled == ids._canonical_persons(texts)


def test_the_compiled_check_leaves_regions_not_looked_up_and_old_years_to_numpy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = make_ric("110105", date(1949, 12, 31), 2)
    _cold_regions(monkeypatch)
    assert _scan([number]) is None
    assert ids.canonical_persons([number]) == ["person:" + number]  # numpy looked its region up
    both = ["person:" + number] * 2
    assert _scan([number, "person:" + number, "x", number[:-1] + "1"]) == [*both, None, None]
    old = make_ric("110105", date(1899, 12, 31), 2)  # before the table's years
    assert _scan([old]) is None
    assert ids.canonical_persons([old]) == [_parsed(old)]
