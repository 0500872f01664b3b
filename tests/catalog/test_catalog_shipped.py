"""The shipped catalogs: they load cleanly and say what REFERENCE.md says."""

from __future__ import annotations

import doctest
import tomllib
from datetime import date
from pathlib import Path
from types import ModuleType

import pytest

import credo.catalog.errors
import credo.catalog.guard
import credo.catalog.models
import credo.catalog.registry
from credo.catalog.guard import guard_rule
from credo.catalog.registry import Registry, build_registry, grade_for, load_catalogs

JURISDICTIONS = ["CN", "CN-SD", "CN-SD-RC", "CN-ZJ", "CN-ZJ-HZ", "CN-ZJ-YW", "CN-ZJ-ZS"]


def test_shipped_catalogs_load_with_zero_errors(catalogs_dir: Path) -> None:
    registry, errors = load_catalogs([catalogs_dir])
    assert [str(e) for e in errors] == []
    assert registry is not None
    assert [j.code for j in registry.jurisdictions()] == JURISDICTIONS


def test_every_shipped_file_is_loaded_and_refused_examples_are_not(catalogs_dir: Path) -> None:
    files = sorted(p.name for p in catalogs_dir.glob("*.toml"))
    assert files == [
        "cn-sd-rc.toml",
        "cn-sd.toml",
        "cn-zj-hz.toml",
        "cn-zj-yw.toml",
        "cn-zj-zs.toml",
        "cn-zj.toml",
        "cn.toml",
    ]
    # The refused examples live one level down, out of reach of a directory load.
    assert sorted(p.name for p in (catalogs_dir / "examples" / "refused").glob("*.toml"))


def test_the_tree(shipped: Registry) -> None:
    assert shipped.ancestors("CN-ZJ-HZ") == ("CN-ZJ-HZ", "CN-ZJ", "CN")
    assert shipped.ancestors("CN") == ("CN",)
    assert shipped.children("CN") == ("CN-SD", "CN-ZJ")
    assert shipped.children("CN-ZJ") == ("CN-ZJ-HZ", "CN-ZJ-YW", "CN-ZJ-ZS")
    assert shipped.children("CN-SD-RC") == ()
    assert shipped.is_within("CN-SD-RC", "CN")
    assert shipped.is_within("CN-SD-RC", "CN-SD-RC")
    assert not shipped.is_within("CN-SD-RC", "CN-ZJ")
    assert not shipped.is_within("CN", "CN-ZJ")
    jz = shipped.jurisdiction("CN-ZJ-YW")
    assert jz is not None and jz.parent == "CN-ZJ" and jz.region_codes == ("330782",)
    assert shipped.jurisdiction("CN-XX") is None
    with pytest.raises(KeyError, match="CN-XX"):
        shipped.ancestors("CN-XX")
    with pytest.raises(KeyError, match="CN-XX"):
        shipped.is_within("CN", "CN-XX")


def test_policy_is_inherited_and_overridden_down_the_tree(shipped: Registry) -> None:
    cn = shipped.policy("CN")
    assert (cn.base_score, cn.floor, cn.ceiling) == (1000, 0, 1500)
    assert cn.appeal_window_days == 30 and cn.rectification_period_days == 730
    # Yiwu: 15 days to appeal; everything else from Zhejiang and CN.
    yw = shipped.policy("CN-ZJ-YW")
    assert yw.appeal_window_days == 15
    assert yw.rectification_period_days == 365
    assert yw.decision_deadline_days == cn.decision_deadline_days
    # Zhejiang and every city below it: one year to rectify.
    for code in ("CN-ZJ", "CN-ZJ-HZ", "CN-ZJ-ZS", "CN-ZJ-YW"):
        assert shipped.policy(code).rectification_period_days == 365
    assert shipped.policy("CN-ZJ-HZ").appeal_window_days == 30
    # Shandong does not change the national rectification period.
    assert shipped.policy("CN-SD-RC").rectification_period_days == 730
    rc = shipped.policy("CN-SD-RC")
    assert rc.base_score == 1000
    assert rc.grades == ("AAA", "AA", "A", "B", "C", "D")
    assert {shipped.policy(j).timezone for j in JURISDICTIONS} == {"Asia/Shanghai"}


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        (1500, "AAA"),
        (1050, "AAA"),
        (1049, "AA"),
        (1030, "AA"),
        (1029, "A"),
        (1000, "A"),
        (960, "A"),
        (959, "B"),
        (850, "B"),
        (849, "C"),
        (600, "C"),
        (599, "D"),
        (0, "D"),
        (-5, "D"),
    ],
)
def test_rongcheng_grades_at_every_band_edge(shipped: Registry, score: int, grade: str) -> None:
    assert grade_for(shipped.policy("CN-SD-RC"), score) == grade


def test_clamp_bounds_the_score(shipped: Registry) -> None:
    policy = shipped.policy("CN-SD-RC")
    assert [policy.clamp(s) for s in (-40, 0, 999, 1500, 2000)] == [0, 0, 999, 1500, 1500]


def test_rule_version_in_force_on_a_date_end_exclusive(shipped: Registry) -> None:
    code = "CN-SD-RC.TRAFFIC-TICKET"
    assert [r.version for r in shipped.rule_versions(code)] == [1, 2]
    v1 = shipped.rule(code, date(2020, 12, 31))
    v2 = shipped.rule(code, date(2021, 1, 1))  # v1's effective_to: exclusive
    assert v1 is not None and (v1.version, v1.points) == (1, -5)
    assert v2 is not None and (v2.version, v2.points) == (2, -3)
    assert shipped.rule(code, date(2014, 12, 31)) is None  # no rule applies backwards
    assert shipped.rule(code, date(2015, 1, 1)) == v1
    assert shipped.rule("CN-SD-RC.NO-SUCH-RULE", date(2021, 1, 1)) is None
    assert shipped.rule_versions("CN-SD-RC.NO-SUCH-RULE") == ()


def test_court_defaulter_rule_follows_the_2017_revision(shipped: Registry) -> None:
    before = shipped.rule("CN.COURT-DEFAULTER", date(2017, 4, 30))
    after = shipped.rule("CN.COURT-DEFAULTER", date(2017, 5, 1))
    assert before is not None and "[2013] No. 17" in before.legal_basis
    assert after is not None and "[2017] No. 7" in after.legal_basis
    assert shipped.rule("CN.COURT-DEFAULTER", date(2013, 9, 30)) is None
    assert after.places_on == "CN.DEFAULTER" and after.severity == "serious"


def test_rongcheng_published_deductions(shipped: Registry) -> None:
    on = date(2020, 6, 1)
    points = {
        "CN-SD-RC.CONTRACT-BREACH": -20,
        "CN-SD-RC.SUED-IN-BREACH": -50,
        "CN-SD-RC.BANK-ARREARS": -10,
        "CN-SD-RC.ILLEGAL-FUNDRAISING": -40,
        "CN-SD-RC.FRAUD-COUNTERFEIT": -30,
        "CN-SD-RC.UTILITY-LATE-FEES": -20,
        "CN-SD-RC.UTILITY-ARREARS-COURT": -50,
        "CN-SD-RC.UTILITY-THEFT": -60,
        "CN-SD-RC.UTILITY-EQUIPMENT-DESTRUCTION": -100,
        "CN-SD-RC.TRAFFIC-TICKET": -5,
        "CN-SD-RC.HEROIC-ACT": 30,
    }
    for code, expected in points.items():
        rule = shipped.rule(code, on)
        assert rule is not None, code
        assert rule.points == expected, code
        assert rule.is_reward == (expected > 0)
        assert shipped.rule_jurisdiction(code) == "CN-SD-RC"


def test_schemes_count_rules_at_or_above_them(shipped: Registry) -> None:
    rongcheng = {r.code for r in shipped.rules_for_scheme("CN-SD-RC")}
    assert {"CN.COURT-DEFAULTER", "CN-SD.BID-RIGGING", "CN-SD-RC.HEROIC-ACT"} <= rongcheng
    assert not any(code.startswith("CN-ZJ") for code in rongcheng)
    national = {r.code for r in shipped.rules_for_scheme("CN")}
    assert all(code.startswith("CN.") for code in national)
    # Every version is listed; `on` keeps only the one in force.
    all_versions = [r for r in shipped.rules_for_scheme("CN-SD-RC") if r.code == "CN-SD-RC.TRAFFIC-TICKET"]
    in_force = [
        r
        for r in shipped.rules_for_scheme("CN-SD-RC", on=date(2022, 1, 1))
        if r.code == "CN-SD-RC.TRAFFIC-TICKET"
    ]
    assert [r.version for r in all_versions] == [1, 2]
    assert [r.version for r in in_force] == [2]


def test_lists_and_measures(shipped: Registry) -> None:
    defaulter = shipped.list("CN.DEFAULTER")
    assert defaulter is not None
    assert (defaulter.kind, defaulter.entry, defaulter.max_duration_days, defaulter.public) == (
        "black",
        "rule",
        730,
        True,
    )
    assert [m.measure for m in defaulter.measures] == ["air-travel", "high-speed-rail", "luxury-consumption"]
    assert all("[2016] No. 141" in m.legal_basis for m in defaulter.measures)
    red = shipped.list("CN.REDLIST")
    assert red is not None and red.grades == ("AAA",)
    assert {m.measure for m in red.measures} == {"deposit-waiver", "fast-track-approval"}
    low = shipped.list("CN.LOW-GRADE")
    assert low is not None and low.grades == ("D",)
    assert {m.measure for m in low.measures} == {"state-bank-loan", "finance-employment"}
    assert shipped.list("CN.NOPE") is None
    assert [lst.code for lst in shipped.lists_for("CN-ZJ-HZ")] == [
        "CN.DEFAULTER",
        "CN.LOW-GRADE",
        "CN.REDLIST",
        "CN.WATCH",
    ]
    assert {m.code for m in shipped.measures()} == {
        "air-travel",
        "high-speed-rail",
        "luxury-consumption",
        "state-bank-loan",
        "finance-employment",
        "deposit-waiver",
        "fast-track-approval",
    }
    air = shipped.measure("air-travel")
    assert air is not None and (air.effect, air.applies_to) == ("deny", "subject")
    assert shipped.measure_jurisdiction("air-travel") == "CN"
    assert shipped.list_jurisdiction("CN.DEFAULTER") == "CN"


def test_agencies_belong_to_the_file_that_declares_them(shipped: Registry) -> None:
    spc = shipped.agency("CN-SPC")
    assert spc is not None and spc.kind == "court"
    assert shipped.agency_jurisdiction("CN-SPC") == "CN"
    assert shipped.agency_jurisdiction("CN-ZJ-HZ-TP") == "CN-ZJ-HZ"
    assert shipped.agency_jurisdiction("CN-SD-RC-COURT") == "CN-SD-RC"
    assert shipped.agency("CN-NOPE") is None
    with pytest.raises(KeyError, match="CN-NOPE"):
        shipped.agency_jurisdiction("CN-NOPE")
    codes = [a.code for a in shipped.agencies()]
    assert codes == sorted(codes) and "CN-STA" in codes
    for agency in shipped.agencies():
        assert agency.code.startswith(shipped.agency_jurisdiction(agency.code) + "-")


def test_every_rule_has_a_legal_basis_and_known_agencies_of_its_tree(shipped: Registry) -> None:
    for j in shipped.jurisdictions():
        for rule in shipped.rules_for_scheme(j.code):
            assert rule.legal_basis.strip()
            home = shipped.rule_jurisdiction(rule.code)
            for agency in rule.agencies:
                assert shipped.is_within(shipped.agency_jurisdiction(agency), home)


def test_blood_donation_is_an_accepted_civic_reward(shipped: Registry) -> None:
    rule = shipped.rule("CN-ZJ-HZ.BLOOD-DONATION", date(2024, 1, 1))
    assert rule is not None
    assert rule.is_reward and rule.category == "civic"
    assert guard_rule(rule, "cn-zj-hz.toml") == []
    volunteer = shipped.rule("CN-ZJ-HZ.VOLUNTEER-SERVICE", date(2024, 1, 1))
    assert volunteer is not None and volunteer.is_reward


def test_zhoushan_penalties_are_shipped(shipped: Registry) -> None:
    codes = {r.code for r in shipped.rules_for_scheme("CN-ZJ-ZS") if r.code.startswith("CN-ZJ-ZS.")}
    assert codes == {
        "CN-ZJ-ZS.SMOKING-BANNED-PLACE",
        "CN-ZJ-ZS.PHONE-WHILE-DRIVING",
        "CN-ZJ-ZS.VANDALISM",
        "CN-ZJ-ZS.DOG-OFF-LEASH",
        "CN-ZJ-ZS.LOUD-MUSIC-PUBLIC",
    }


def test_region_codes_find_the_most_specific_jurisdiction(shipped: Registry) -> None:
    assert shipped.jurisdiction_for_region("330782") == "CN-ZJ-YW"
    assert shipped.jurisdiction_for_region("330106") == "CN-ZJ-HZ"  # a Hangzhou district
    assert shipped.jurisdiction_for_region("330783") == "CN-ZJ"  # Dongyang: no city catalog
    assert shipped.jurisdiction_for_region("371082") == "CN-SD-RC"
    assert shipped.jurisdiction_for_region("110105") == "CN"
    assert shipped.jurisdiction_for_region("440300") is None


def test_digest_is_canonical(shipped: Registry, catalogs_dir: Path, tmp_path: Path) -> None:
    assert len(shipped.digest) == 64 and int(shipped.digest, 16) >= 0
    again, _ = load_catalogs([catalogs_dir])
    assert again is not None and again.digest == shipped.digest
    # Comments and file names do not change the content; a value does.
    for path in catalogs_dir.glob("*.toml"):
        text = "# a new comment\n" + path.read_text(encoding="utf-8")
        (tmp_path / f"renamed-{path.name}").write_text(text, encoding="utf-8")
    renamed, errors = load_catalogs([tmp_path])
    assert errors == [] and renamed is not None and renamed.digest == shipped.digest
    yiwu = tmp_path / "renamed-cn-zj-yw.toml"
    yiwu.write_text(yiwu.read_text(encoding="utf-8").replace("= 15", "= 16"), encoding="utf-8")
    changed, errors = load_catalogs([tmp_path])
    assert errors == [] and changed is not None and changed.digest != shipped.digest


def test_build_registry_from_models_round_trips(shipped: Registry) -> None:
    rebuilt, errors = build_registry((f.jurisdiction.code, f) for f in shipped.files())
    assert errors == [] and rebuilt is not None
    assert rebuilt.digest == shipped.digest


def test_ancestor_closed_subsets_load_alone(catalogs_dir: Path) -> None:
    names = ["cn.toml", "cn-sd.toml", "cn-sd-rc.toml"]
    registry, errors = load_catalogs([catalogs_dir / n for n in names])
    assert errors == [] and registry is not None
    assert registry.policy("CN-SD-RC").base_score == 1000


def test_catalog_files_parse_as_plain_toml(catalogs_dir: Path) -> None:
    for path in catalogs_dir.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert set(data) <= {"jurisdiction", "policy", "agencies", "measures", "lists", "rules"}


@pytest.mark.parametrize(
    "module",
    [credo.catalog.models, credo.catalog.guard, credo.catalog.errors, credo.catalog.registry],
)
def test_docstring_examples_hold(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
