"""The guard (DESIGN principle 2): protected grounds, basic services, family."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from credo.catalog.guard import GROUNDS, RULE_GROUNDS, guard_measure, scan
from credo.catalog.models import Measure
from credo.catalog.registry import load_catalogs, parse_catalog

FILE = "cn-t.toml"


def _toml(value: object) -> str:
    # JSON strings are valid TOML basic strings.
    return json.dumps(value, ensure_ascii=False)


def rule_file(**fields: Any) -> str:
    rule: dict[str, Any] = {
        "code": "CN-T.RULE",
        "version": 1,
        "title_en": "Running a red light",
        "title_zh": "闯红灯",
        "category": "traffic",
        "points": -5,
        "legal_basis": "Road Traffic Safety Law of the PRC, Art. 38",
        "agencies": ["CN-T-PSB"],
        "severity": "minor",
        "rectifiable": True,
        "effective_from": "2020-01-01",
    }
    rule.update(fields)
    lines = []
    for key, value in rule.items():
        if key == "effective_from":
            lines.append(f"{key} = {value}")
        elif isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        else:
            lines.append(f"{key} = {_toml(value)}")
    return HEADER + "\n[[rules]]\n" + "\n".join(lines) + "\n"


HEADER = """
[jurisdiction]
code = "CN-T"
name_en = "Test city"
name_zh = "测试市"
parent = "CN"

[[agencies]]
code = "CN-T-PSB"
name_en = "Test Public Security Bureau"
name_zh = "测试市公安局"
kind = "police"
"""


def measure_file(**fields: Any) -> str:
    measure: dict[str, Any] = {
        "code": "air-travel",
        "name_en": "Booking civil flights",
        "name_zh": "乘坐民航飞机",
        "sector": "transport",
        "effect": "deny",
    }
    measure.update(fields)
    body = "\n".join(f"{k} = {_toml(v)}" for k, v in measure.items())
    return HEADER + "\n[[measures]]\n" + body + "\n"


def test_a_plain_rule_passes() -> None:
    catalog, errors = parse_catalog(rule_file(), FILE)
    assert errors == []
    assert catalog is not None and catalog.rules[0].code == "CN-T.RULE"


# Every ground, in English and Chinese, in each scanned field.
REFUSED = [
    # religion or belief
    ("title_en", "Spreading religion illegally", "religion"),
    ("title_zh", "非法传教", "religion"),
    ("title_en", "Attending unregistered worship services", "religion"),
    ("legal_basis", "Regulations on Religious Affairs (2017), Art. 73", "religion"),
    ("title_zh", "宗教信仰活动", "religion"),
    ("title_en", "Holding a minority faith", "religion"),
    # political opinion
    ("title_en", "Voicing political opinions", "political-opinion"),
    ("title_zh", "持有不同政见", "political-opinion"),
    # expression or press
    ("title_en", "Online defamation", "expression"),
    ("title_en", "Circulating fake news", "expression"),
    ("title_en", "Spreading rumours about officials", "expression"),
    ("title_en", "Posting critical comments", "expression"),
    ("title_zh", "网络诽谤", "expression"),
    ("title_zh", "散布谣言", "expression"),
    ("title_zh", "发表不当言论", "expression"),
    ("title_en", "Unauthorised press interviews", "expression"),
    # assembly or association
    ("title_en", "Taking part in a protest", "assembly"),
    ("title_en", "Petitioning higher authorities", "assembly"),
    ("title_en", "Unapproved public assembly", "assembly"),
    ("title_zh", "非法集会", "assembly"),
    ("title_zh", "越级上访", "assembly"),
    ("title_en", "Joining an unregistered association", "assembly"),
    # ethnicity or origin
    ("title_en", "Ethnic minority status", "ethnicity"),
    ("title_zh", "少数民族身份", "ethnicity"),
    ("title_en", "Household registration outside the city", "ethnicity"),
    ("title_zh", "外地户籍", "ethnicity"),
    # health
    ("title_en", "Untreated illness", "health"),
    ("title_en", "Chronic disease", "health"),
    ("title_en", "Failing a health check", "health"),
    ("title_zh", "健康状况不佳", "health"),
    ("title_zh", "患有疾病", "health"),
    ("title_en", "HIV status", "health"),
    # sexual orientation
    ("title_en", "Sexual orientation", "sexual-orientation"),
    ("title_zh", "性取向", "sexual-orientation"),
    ("title_zh", "同性恋", "sexual-orientation"),
    # private life
    ("title_en", "Too much time playing video games", "private-life"),
    ("title_zh", "沉迷网络游戏", "private-life"),
    ("title_en", "Conduct in private life", "private-life"),
    ("title_zh", "私生活不检点", "private-life"),
    # identity-number-derived traits
    ("title_en", "Birthplace outside the province", "identity-traits"),
    ("title_zh", "籍贯", "identity-traits"),
    ("title_en", "Sex of the subject", "identity-traits"),
    ("title_en", "Gender", "identity-traits"),
    ("title_zh", "性别", "identity-traits"),
    ("title_en", "Age over 60", "identity-traits"),
    ("title_zh", "年龄超过六十岁", "identity-traits"),
    ("title_en", "Date of birth", "identity-traits"),
]


@pytest.mark.parametrize(("field", "text", "ground"), REFUSED)
def test_a_rule_scoring_a_protected_ground_is_refused(field: str, text: str, ground: str) -> None:
    catalog, errors = parse_catalog(rule_file(**{field: text}), FILE)
    assert catalog is None
    refusals = [e for e in errors if e.ground == ground]
    assert len(refusals) == 1, [str(e) for e in errors]
    error = refusals[0]
    assert error.file == FILE
    assert error.location == "CN-T.RULE"
    assert error.message.startswith(f"{field}: rule CN-T.RULE scores a protected ground")
    assert GROUNDS[ground].label in error.message
    assert "CN-T.RULE" in str(error) and FILE in str(error)


def test_every_rule_ground_is_exercised() -> None:
    assert {g for _, _, g in REFUSED} == {g.id for g in RULE_GROUNDS}


def test_a_category_outside_the_vocabulary_is_also_named_by_the_guard() -> None:
    catalog, errors = parse_catalog(rule_file(category="religion"), FILE)
    assert catalog is None
    assert any(e.message.startswith("rules[0].category: Input should be") for e in errors)
    assert [e.ground for e in errors if e.ground] == ["religion"]
    assert all(e.location == "CN-T.RULE" for e in errors)


def test_one_error_per_ground_but_every_ground_named() -> None:
    _, errors = parse_catalog(
        rule_file(title_en="Online defamation of a religion", title_zh="网络诽谤宗教"), FILE
    )
    assert sorted(e.ground or "" for e in errors) == ["expression", "religion"]


ACCEPTED = [
    "Voluntary blood donation",
    "无偿献血",
    "Reported by a government agency",
    "Intentionally damaging public property",
    "Blocking a fire passage",
    "Unpaid postage",
    "Breach of the duty of good faith",
    "Selling alcohol to underage customers",
    "Defrauding medical insurance funds",
    "Environmental violations",
    "Express delivery fraud",
    "Illegal fundraising",
    "非法集资",
    "Stealing water, power, gas or heat",
    "Running a red light",
    "Walking a dog without a leash",
    "Smoking where smoking is banned",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_word_boundaries_keep_ordinary_wording_out(text: str) -> None:
    assert scan(text) == []
    _, errors = parse_catalog(rule_file(title_en=text), FILE)
    assert errors == []


def test_a_blood_donation_reward_is_accepted() -> None:
    text = rule_file(
        code="CN-T.BLOOD-DONATION",
        title_en="Voluntary blood donation",
        title_zh="无偿献血",
        category="civic",
        points=10,
        rectifiable=False,
        legal_basis="Blood Donation Law of the PRC (1998), Art. 6",
    )
    catalog, errors = parse_catalog(text, FILE)
    assert errors == []
    assert catalog is not None and catalog.rules[0].is_reward


# -- measures -----------------------------------------------------------------

MEASURES_REFUSED = [
    (
        {"code": "hospital-care", "name_en": "Non-emergency hospital care", "sector": "health-care"},
        "basic-service",
    ),
    ({"code": "schooling", "name_en": "Enrolment in public schools", "sector": "education"}, "basic-service"),
    ({"code": "water-supply", "name_en": "Household water connection", "sector": "water"}, "basic-service"),
    ({"code": "power-supply", "name_en": "Household electricity", "sector": "power"}, "basic-service"),
    (
        {
            "code": "dibao",
            "name_en": "Minimum living allowance",
            "name_zh": "最低生活保障（低保）",
            "sector": "social-assistance",
        },
        "basic-service",
    ),
    (
        {
            "code": "priority-hospital",
            "name_en": "Priority hospital appointments",
            "sector": "health-care",
            "effect": "grant",
        },
        "basic-service",
    ),
    ({"code": "spouse-travel", "name_en": "Spouse booking civil flights", "applies_to": "spouse"}, "family"),
    ({"code": "family-travel", "name_en": "Booking civil flights", "applies_to": "family"}, "family"),
    ({"code": "children-travel", "name_en": "Children booking civil flights"}, "family"),
    ({"code": "church-access", "name_en": "Entering registered churches", "sector": "culture"}, "religion"),
]


@pytest.mark.parametrize(("fields", "ground"), MEASURES_REFUSED)
def test_a_measure_denying_a_basic_service_or_reaching_family_is_refused(
    fields: dict[str, str], ground: str
) -> None:
    catalog, errors = parse_catalog(measure_file(**fields), FILE)
    assert catalog is None
    refusals = [e for e in errors if e.ground == ground]
    assert len(refusals) == 1, [str(e) for e in errors]
    assert refusals[0].location == fields["code"]
    assert f"measure {fields['code']}" in refusals[0].message


def test_a_child_schooling_measure_for_a_parents_record_is_refused_on_both_grounds() -> None:
    measure = Measure(
        code="children-private-school",
        name_en="Children attending high-fee private schools",
        name_zh="子女就读高收费私立学校",
        sector="education",
        effect="deny",
        applies_to="children",
    )
    errors = guard_measure(measure, "cn.toml")
    assert sorted(e.ground or "" for e in errors) == ["basic-service", "family"]
    assert all(e.location == "children-private-school" and e.file == "cn.toml" for e in errors)
    family = next(e for e in errors if e.ground == "family")
    assert family.message.startswith("applies_to: measure children-private-school applies to 'children'")


def test_the_shipped_measures_pass_the_guard() -> None:
    catalog, errors = parse_catalog(measure_file(), FILE)
    assert errors == [] and catalog is not None


# -- the refused examples -----------------------------------------------------

EXAMPLES = {
    "cn-zj-zs.toml": {("CN-ZJ-ZS.VIDEO-GAMES", "private-life"), ("CN-ZJ-ZS.FAKE-NEWS", "expression")},
    "cn-sd-rc.toml": {
        ("CN-SD-RC.RELIGION", "religion"),
        ("CN-SD-RC.ONLINE-DEFAMATION", "expression"),
    },
    "cn-sd.toml": {
        ("children-private-school", "basic-service"),
        ("children-private-school", "family"),
    },
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_refused_examples_fail_only_on_the_guard(catalogs_dir: Path, name: str) -> None:
    # Each example stands in for the shipped file of the same name, so every
    # error left is the guard's.
    example = catalogs_dir / "examples" / "refused" / name
    paths = [p for p in catalogs_dir.glob("*.toml") if p.name != name] + [example]
    registry, errors = load_catalogs(paths)
    assert registry is None
    assert all(e.file == str(example) for e in errors), [str(e) for e in errors]
    assert {(e.location, e.ground) for e in errors} == EXAMPLES[name]
