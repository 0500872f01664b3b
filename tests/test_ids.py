"""Identifiers: refused with the part that is wrong, normalised before storage."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credo.ids import IdentifierError, make_ric, make_uscc, parse_subject, parse_subject_ref

VALID = [
    ("person", "11010519491231002X", "11010519491231002X"),  # the GB 11643 sample
    ("person", " 110105 19491231 002x ", "11010519491231002X"),
    ("organisation", "91110000600037341L", "91110000600037341L"),
    ("organisation", "91110000-600037341l", "91110000600037341L"),
    ("foreign", "de:c01x00t47", "DE:C01X00T47"),
]

REFUSED = [
    ("person", "110105194912310021", "check character is 1, expected X"),
    ("person", "11010519491331002X", "birth date 19491331 is not a valid date"),
    ("person", "99999919491231002X", "region code 999999"),
    # Yiwu became a city (330782) in 1989: the code cannot belong to someone born in 1985.
    ("person", make_ric("330782", date(1985, 5, 1), 12), "330782 is not a GB/T 2260 region in use in 1985"),
    ("person", "1101051949123100", "must have 18 characters, got 16"),
    ("person", "1101051949A231002X", "first 17 characters must be digits"),
    ("person", "11010529991231002X", "is in the future"),
    # str.isdigit() says yes to other scripts' digits: these raised KeyError (a 500) before
    ("person", "\u0661" + "10105194912310021", "first 17 characters must be digits 0-9"),
    ("organisation", "91110000600037341A", "check character is A, expected L"),
    ("organisation", "91110000600037341", "must have 18 characters, got 17"),
    ("organisation", "9111000060003734IL", "character 'I' is not allowed"),
    ("organisation", "A1110000600037341L", "characters 1-8) must be digits"),
    ("organisation", "\u0661" + "1110000600037341L", "characters 1-8) must be digits"),
    ("foreign", "XX:C01X00T47", "'XX' is not an ISO 3166 alpha-2 country"),
    ("foreign", "C01X00T47", "must be COUNTRY:DOCUMENT"),
    ("foreign", "DE:%%", "document number"),
    ("alien", "123", "subject kind must be one of"),
    ("person", "   ", "must not be empty"),
]


@pytest.mark.parametrize(("kind", "raw", "stored"), VALID)
def test_valid_identifiers_are_normalised(kind: str, raw: str, stored: str) -> None:
    assert parse_subject(kind, raw).identifier == stored


@pytest.mark.parametrize(("kind", "raw", "message"), REFUSED)
def test_refusals_name_the_part_that_is_wrong(kind: str, raw: str, message: str) -> None:
    with pytest.raises(IdentifierError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_subject(kind, raw)


def test_subject_ref_guesses_kind_from_shape() -> None:
    assert parse_subject_ref("11010519491231002X").kind == "person"
    assert parse_subject_ref("91110000600037341L").kind == "organisation"
    assert parse_subject_ref("FR:12AB34567").kind == "foreign"
    assert parse_subject_ref("organisation:91110000600037341L").kind == "organisation"


@given(
    born=st.dates(min_value=date(1990, 1, 1), max_value=date(2008, 12, 31)),
    seq=st.integers(0, 999),
    region=st.sampled_from(["110105", "330100", "330782", "330900", "371082"]),
)
def test_generated_resident_numbers_validate(born: date, seq: int, region: str) -> None:
    number = make_ric(region, born, seq)
    assert parse_subject("person", number).identifier == number


@given(
    born=st.dates(min_value=date(1950, 1, 1), max_value=date(2000, 12, 31)),
    position=st.integers(14, 16),
    delta=st.integers(1, 9),
)
def test_any_single_sequence_digit_change_is_caught(born: date, position: int, delta: int) -> None:
    # MOD 11-2 detects every single-digit substitution.
    number = make_ric("330100", born, 123)
    digit = (int(number[position]) + delta) % 10
    mutated = number[:position] + str(digit) + number[position + 1 :]
    with pytest.raises(IdentifierError, match="check character"):
        parse_subject("person", mutated)


@given(org=st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=9, max_size=9))
def test_generated_uscc_validate(org: str) -> None:
    code = make_uscc("9", "1", "330100", org)
    assert parse_subject("organisation", code).identifier == code


def _person_then_organisation(number: str) -> tuple[str, str]:
    """What a bare 18-character code means: a person if it is one, else an organisation,
    else the person's reason (the rule ``parse_subject_ref`` follows)."""
    try:
        return "person", parse_subject("person", number).identifier
    except IdentifierError as as_person:
        try:
            return "organisation", parse_subject("organisation", number).identifier
        except IdentifierError:
            return "refused", str(as_person)


@given(
    code=st.one_of(
        st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXYIOSVZx", min_size=18, max_size=18),
        st.builds(lambda n: make_ric("330102", date(1990, 1, 1), n % 1000)[:-1] + "X", st.integers(0, 999)),
        st.builds(
            lambda org: make_uscc("9", "1", "330100", org),
            st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXY", min_size=9, max_size=9),
        ),
        st.builds(
            lambda org: "9" + make_uscc("9", "1", "330100", org)[1:],
            st.text(alphabet="0123456789", min_size=9, max_size=9),
        ),
    )
)
def test_a_bare_code_is_a_person_else_an_organisation_else_refused_with_the_persons_reason(code: str) -> None:
    try:
        found = parse_subject_ref(code)
        answer = (found.kind, found.identifier)
    except IdentifierError as exc:
        answer = ("refused", str(exc))
    assert answer == _person_then_organisation(code)
