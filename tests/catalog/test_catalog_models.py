"""Schema checks on one file at a time: each field's rule, and strict types."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from credo.catalog.guard import guard
from credo.catalog.models import CATEGORIES, GradeBand, ListDef, Policy, Rule
from credo.catalog.registry import build_registry, parse_catalog

HEADER = """
[jurisdiction]
code = "CN-T"
name_en = "Test city"
name_zh = "测试市"
parent = "CN"
"""

RULE = """
[[rules]]
code = "CN-T.R"
version = 1
title_en = "Running a red light"
title_zh = "闯红灯"
category = "traffic"
points = -5
legal_basis = "Road Traffic Safety Law of the PRC, Art. 38"
agencies = ["CN-T-PSB"]
severity = "minor"
rectifiable = true
effective_from = 2020-01-01
"""


def errors_of(text: str) -> list[str]:
    catalog, errors = parse_catalog(text, "t.toml")
    assert catalog is None
    return [e.message for e in errors]


def test_a_valid_file_parses() -> None:
    catalog, errors = parse_catalog(HEADER + RULE, "t.toml")
    assert errors == []
    assert catalog is not None
    rule = catalog.rules[0]
    assert (rule.code, rule.points, rule.effective_from, rule.effective_to) == (
        "CN-T.R",
        -5,
        date(2020, 1, 1),
        None,
    )
    assert rule.expiry_days is None  # the policy default applies
    assert not rule.is_reward


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("points = -5", 'points = "-5"', "rules[0].points: Input should be a valid integer"),
        ("rectifiable = true", "rectifiable = 1", "rules[0].rectifiable: Input should be a valid boolean"),
        (
            "effective_from = 2020-01-01",
            "effective_from = 2020-01-01T08:00:00",
            "rules[0].effective_from: Input should be a valid date",
        ),
        ('agencies = ["CN-T-PSB"]', "agencies = []", "rules[0].agencies: must name at least one agency"),
        (
            'agencies = ["CN-T-PSB"]',
            'agencies = ["CN-T-PSB", "CN-T-PSB"]',
            "rules[0].agencies: agency 'CN-T-PSB' is listed twice",
        ),
        ("version = 1", "version = 0", "rules[0].version: Input should be greater than or equal to 1"),
        (
            "points = -5",
            "points = -5\nexpiry_days = 0",
            "rules[0].expiry_days: Input should be greater than or equal to 1",
        ),
        (
            'title_zh = "闯红灯"',
            'title_zh = "闯红灯"\nplaces_on = "defaulters"',
            "rules[0].places_on: 'defaulters' is not a valid code (expected one like 'CN.DEFAULTER')",
        ),
        ('category = "traffic"', 'category = "Traffic"', "rules[0].category: Input should be 'traffic'"),
        ("version = 1\n", "", "rules[0].version: is required"),
    ],
)
def test_rule_field_rules(old: str, new: str, message: str) -> None:
    assert old in RULE
    messages = errors_of(HEADER + RULE.replace(old, new))
    assert any(m.startswith(message) for m in messages), messages


def test_jurisdiction_field_rules() -> None:
    text = HEADER.replace('parent = "CN"', 'parent = "CN-T"\nregion_codes = ["33010", "ABCDEF"]')
    bad = "is not a valid GB/T 2260 region code (expected one like '330100')"
    assert errors_of(text) == [
        f"jurisdiction.region_codes[0]: '33010' {bad}",
        f"jurisdiction.region_codes[1]: 'ABCDEF' {bad}",
    ]
    assert errors_of(HEADER.replace('parent = "CN"', 'parent = "CN-T"')) == [
        "jurisdiction.parent: CN-T cannot be its own parent"
    ]
    assert errors_of(HEADER.replace('code = "CN-T"', 'code = "cn-t"')) == [
        "jurisdiction.code: 'cn-t' is not a valid code (expected one like 'CN-ZJ-HZ')"
    ]


def test_policy_field_rules() -> None:
    text = HEADER + (
        '[policy]\ngrade_bands = [{ grade = "a", min = 1 }]\ntimezone = "Mars/Olympus"\n'
        "enforcement_grace_days = -1\ndecision_deadline_days = 0\n"
    )
    assert errors_of(text) == [
        "policy.grade_bands[0].grade: 'a' is not a valid grade (expected one like 'AAA')",
        "policy.decision_deadline_days: Input should be greater than or equal to 1",
        "policy.enforcement_grace_days: Input should be greater than or equal to 0",
        "policy.timezone: 'Mars/Olympus' is not an IANA time zone (e.g. 'Asia/Shanghai')",
    ]
    assert errors_of(HEADER + "[policy]\nfloor = 10\nceiling = 5\n") == [
        "policy: floor (10) must be <= ceiling (5)"
    ]
    assert errors_of(
        HEADER + '[policy]\ngrade_bands = [{ grade = "A", min = 1 }, { grade = "A", min = 0 }]\n'
    ) == ["policy.grade_bands: grade 'A' is listed twice"]


def _policy(**overrides: object) -> dict[str, object]:
    fields: dict[str, object] = dict(
        base_score=1000,
        floor=0,
        ceiling=1500,
        grade_bands=(GradeBand(grade="A", min=960), GradeBand(grade="D", min=0)),
        appeal_window_days=30,
        decision_deadline_days=30,
        rectification_period_days=730,
        default_expiry_days=1825,
        enforcement_grace_days=10,
        positive_cap_per_year=100,
        warning_period_days=30,
        timezone="Asia/Shanghai",
    )
    fields.update(overrides)
    return fields


def test_the_resolved_policy_is_complete_and_consistent() -> None:
    assert Policy.model_validate(_policy()).grades == ("A", "D")
    with pytest.raises(ValidationError, match="floor <= base_score <= ceiling"):
        Policy.model_validate(_policy(base_score=1600))
    with pytest.raises(ValidationError, match="lowest band"):
        Policy.model_validate(_policy(floor=-10))
    with pytest.raises(ValidationError, match="Field required"):
        Policy.model_validate({k: v for k, v in _policy().items() if k != "timezone"})


def test_models_are_frozen() -> None:
    policy = Policy.model_validate(_policy())
    with pytest.raises(ValidationError):
        policy.base_score = 1  # type: ignore[misc]


LIST = """
[[lists]]
code = "CN-T.L"
name_en = "Test list"
name_zh = "测试名单"
kind = "black"
entry = "grade"
max_duration_days = 365
public = false
"""


def test_list_field_rules() -> None:
    assert errors_of(HEADER + LIST) == [
        'lists[0].grades: a list with entry = "grade" must name at least one grade'
    ]
    assert errors_of(HEADER + LIST.replace('"grade"', '"rule"') + 'grades = ["D"]\n') == [
        'lists[0].grades: only a list with entry = "grade" may name grades'
    ]
    assert errors_of(HEADER + LIST + 'grades = ["D"]\n[[lists.measures]]\nmeasure = "air-travel"\n') == [
        "lists[0].measures[0].legal_basis: is required"
    ]
    with pytest.raises(ValidationError, match="watch list warns"):
        ListDef.model_validate(
            {
                "code": "CN.W",
                "name_en": "w",
                "name_zh": "w",
                "kind": "watch",
                "entry": "grade",
                "grades": ["C"],
                "max_duration_days": 1,
                "public": False,
                "measures": [{"measure": "air-travel", "legal_basis": "x"}],
            }
        )


def test_measure_and_agency_field_rules() -> None:
    text = HEADER + (
        '[[measures]]\ncode = "Air_Travel"\nname_en = "Flights"\nname_zh = "飞机"\nsector = "transport"\n'
        'effect = "block"\n'
        '[[agencies]]\ncode = "CN-T-X"\nname_en = "X"\nname_zh = "X"\nkind = "ministry"\n'
    )
    assert errors_of(text) == [
        "agencies[0].kind: Input should be 'court', 'prosecutor', 'police', 'tax', 'customs', 'bureau', "
        "'market-regulator', 'bank-regulator', 'financial-institution', 'utility' or 'government'",
        "measures[0].code: 'Air_Travel' is not a valid code (expected one like 'air-travel')",
        "measures[0].effect: Input should be 'deny' or 'grant'",
    ]


def test_the_category_vocabulary_is_closed_and_names_no_ground() -> None:
    assert "civic" in CATEGORIES and "traffic" in CATEGORIES
    for forbidden in ("religion", "speech", "politics", "health", "private-life"):
        assert forbidden not in CATEGORIES


def test_rule_in_force_is_half_open() -> None:
    rule = Rule.model_validate(
        {
            "code": "CN.R",
            "version": 1,
            "title_en": "t",
            "title_zh": "t",
            "category": "tax",
            "points": -1,
            "legal_basis": "b",
            "agencies": ["CN-STA"],
            "severity": "minor",
            "rectifiable": True,
            "effective_from": date(2020, 1, 1),
            "effective_to": date(2021, 1, 1),
        }
    )
    assert [
        rule.in_force(d) for d in (date(2019, 12, 31), date(2020, 1, 1), date(2020, 12, 31), date(2021, 1, 1))
    ] == [
        False,
        True,
        True,
        False,
    ]


def test_build_registry_runs_the_guard_and_cross_checks() -> None:
    catalog, errors = parse_catalog(
        HEADER + RULE.replace("Running a red light", "Online defamation"), "t.toml"
    )
    assert catalog is None and errors
    clean, errors = parse_catalog(HEADER + RULE, "t.toml")
    assert errors == [] and clean is not None
    registry, errors = build_registry([("t.toml", clean)])
    assert registry is None
    assert sorted(e.message for e in errors) == [
        "jurisdiction.parent: unknown jurisdiction 'CN' (no loaded catalog file declares it)",
        "rules[0].agencies: unknown agency 'CN-T-PSB' (no catalog declares it)",
    ]
    assert guard(clean, "t.toml") == []
