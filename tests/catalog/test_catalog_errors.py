"""Errors are data: every broken rule is named, with its file, place and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from credo.catalog.registry import load_catalogs, parse_catalog

# `copy` is the CatalogCopy fixture of conftest.py: the shipped catalogs in a
# temporary folder, edited in place.

TICKET_V2 = """code = "CN-SD-RC.TRAFFIC-TICKET"
version = 2"""


def messages(errors: list[Any]) -> list[str]:
    return [str(e) for e in errors]


def test_missing_legal_basis_names_file_rule_and_field(copy: Any) -> None:
    copy.edit(
        "cn-sd-rc.toml",
        'legal_basis = "Rongcheng Personal Credit Assessment Standards, Attachment 1; Electricity Law',
        'legal_bassis = "Rongcheng Personal Credit Assessment Standards, Attachment 1; Electricity Law',
    )
    errors = copy.errors()
    assert [(Path(e.file).name, e.location) for e in errors] == [
        ("cn-sd-rc.toml", "CN-SD-RC.UTILITY-THEFT"),
        ("cn-sd-rc.toml", "CN-SD-RC.UTILITY-THEFT"),
    ]
    assert sorted(e.message for e in errors) == [
        "rules[7].legal_basis: is required",
        "rules[7].legal_bassis: unknown field (not part of the catalog format; a typo?)",
    ]


def test_blank_legal_basis_must_not_be_empty(copy: Any) -> None:
    copy.edit(
        "cn-zj-hz.toml",
        'legal_basis = "Road Traffic Safety Law of the PRC, Art. 38 and Art. 90"',
        'legal_basis = "   "',
    )
    (error,) = copy.errors()
    assert error.location == "CN-ZJ-HZ.TRAFFIC-RED-LIGHT"
    assert error.message == "rules[2].legal_basis: must not be empty"


def test_list_measure_without_legal_basis_is_refused(copy: Any) -> None:
    copy.edit(
        "cn.toml",
        'measure = "deposit-waiver"\n# Part number unconfirmed.\nlegal_basis = "State',
        'measure = "deposit-waiver"\nlegal_basis = ""\nbasis_was = "State',
    )
    errors = copy.errors()
    assert {e.location for e in errors} == {"CN.REDLIST"}
    assert "lists[1].measures[0].legal_basis: must not be empty" in [e.message for e in errors]


def test_unknown_agency_is_named(copy: Any) -> None:
    copy.edit("cn-zj-yw.toml", 'agencies = ["CN-ZJ-YW-AMR"]', 'agencies = ["CN-ZJ-YW-AMR", "CN-ZJ-YW-NOPE"]')
    (error,) = copy.errors()
    assert Path(error.file).name == "cn-zj-yw.toml"
    assert error.location == "CN-ZJ-YW.COUNTERFEIT-TRADEMARK"
    assert error.message == "rules[0].agencies: unknown agency 'CN-ZJ-YW-NOPE' (no catalog declares it)"


def test_unknown_list_is_named(copy: Any) -> None:
    copy.edit("cn-sd.toml", 'places_on = "CN.DEFAULTER"', 'places_on = "CN.DEFAULTERS"')
    (error,) = copy.errors()
    assert error.location == "CN-SD.COURT-ORDER-DEFIANCE"
    assert error.message == "rules[1].places_on: unknown list 'CN.DEFAULTERS'"


def test_unknown_list_measure_is_named(copy: Any) -> None:
    copy.edit("cn.toml", 'measure = "air-travel"', 'measure = "air-travle"')
    (error,) = copy.errors()
    assert error.location == "CN.DEFAULTER"
    assert error.message == "lists[0].measures[0].measure: unknown measure 'air-travle'"


def test_bad_toml_gives_the_line_number(copy: Any) -> None:
    text = copy.text("cn-zj-yw.toml")
    line = text.splitlines().index("appeal_window_days = 15") + 1
    copy.edit("cn-zj-yw.toml", "appeal_window_days = 15", "appeal_window_days = = 15")
    errors = copy.errors()
    syntax = [e for e in errors if "TOML syntax error" in e.message]
    assert len(syntax) == 1
    assert syntax[0].location == f"line {line}"
    assert f"line {line}" in syntax[0].message


@pytest.mark.parametrize(("text", "line"), [("0", 1), ("a = 1\nb", 2), ("a = 1\nb = [1,\n\n", 2)])
def test_a_toml_error_at_the_end_of_the_document_names_its_last_line(text: str, line: int) -> None:
    """tomllib says "(at end of document)", without a line (found by `make fuzz`)."""
    catalog, errors = parse_catalog(text, "end.toml")
    assert catalog is None and [e.location for e in errors] == [f"line {line}"]
    assert "end of document" in errors[0].message


def test_all_errors_are_collected_across_files(copy: Any) -> None:
    copy.edit("cn-zj-hz.toml", "points = -5", 'points = "-5"')
    copy.edit("cn-zj-zs.toml", 'category = "traffic"', 'category = "trafic"')
    copy.edit("cn-sd-rc.toml", "points = -20", "points = 0")
    copy.edit("cn-zj-yw.toml", "appeal_window_days = 15", "appeal_window_days = 0")
    copy.edit("cn.toml", 'timezone = "Asia/Shanghai"', 'timezone = "Asia/Shanghia"')
    errors = copy.errors()
    found = {(Path(e.file).name, e.message.split(":")[0]) for e in errors}
    assert found == {
        ("cn-zj-hz.toml", "rules[2].points"),
        ("cn-zj-zs.toml", "rules[1].category"),
        ("cn-sd-rc.toml", "rules[0].points"),
        ("cn-zj-yw.toml", "policy.appeal_window_days"),
        ("cn.toml", "policy.timezone"),
    }, messages(errors)
    # Every error also names the broken rule in words.
    text = "\n".join(messages(errors))
    assert "Input should be a valid integer" in text
    assert "must not be zero" in text
    assert "'Asia/Shanghia' is not an IANA time zone" in text
    assert "greater than or equal to 1" in text


def test_several_errors_in_one_file_are_all_reported(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", 'severity = "moderate"', 'severity = "grave"', count=2)
    copy.edit("cn-sd-rc.toml", "version = 1", "version = 0", count=1)
    errors = copy.errors()
    assert sorted(e.message for e in errors) == [
        "rules[0].severity: Input should be 'minor', 'moderate' or 'serious'",
        "rules[0].version: Input should be greater than or equal to 1",
        "rules[2].severity: Input should be 'minor', 'moderate' or 'serious'",
    ]


def test_a_broken_agency_is_not_reported_again_as_unknown(copy: Any) -> None:
    copy.edit("cn-zj-hz.toml", 'kind = "police"', 'kind = "traffic-police"')
    (error,) = copy.errors()  # not also "unknown agency" for the three rules naming it
    assert error.location == "CN-ZJ-HZ-TP"
    assert error.message.startswith("agencies[0].kind: Input should be 'court'")


# -- the jurisdiction tree ----------------------------------------------------


def test_unknown_parent(copy: Any) -> None:
    copy.remove("cn-zj.toml")
    errors = copy.errors()
    assert {(Path(e.file).name, e.message) for e in errors} == {
        (name, "jurisdiction.parent: unknown jurisdiction 'CN-ZJ' (no loaded catalog file declares it)")
        for name in ("cn-zj-hz.toml", "cn-zj-yw.toml", "cn-zj-zs.toml")
    }


def test_cycle_in_the_tree(copy: Any) -> None:
    copy.edit("cn-sd.toml", 'parent = "CN"', 'parent = "CN-SD-RC"')
    errors = copy.errors()
    assert {(e.location, e.message) for e in errors} == {
        (code, "jurisdiction.parent: the jurisdiction tree has a cycle: CN-SD -> CN-SD-RC -> CN-SD")
        for code in ("CN-SD", "CN-SD-RC")
    }


def test_duplicate_jurisdiction(copy: Any) -> None:
    copy.write("cn-zj-yw-copy.toml", copy.text("cn-zj-yw.toml"))
    (error,) = copy.errors()
    assert Path(error.file).name == "cn-zj-yw.toml"  # the second one read, in name order
    assert error.message.startswith("jurisdiction.code: CN-ZJ-YW is already declared in ")
    assert error.message.endswith("cn-zj-yw-copy.toml")


def test_missing_jurisdiction_table(copy: Any) -> None:
    copy.write("stray.toml", "[policy]\nappeal_window_days = 20\n")
    (error,) = copy.errors()
    assert (Path(error.file).name, error.message) == ("stray.toml", "jurisdiction: is required")


def test_unknown_top_level_table(copy: Any) -> None:
    copy.append("cn-zj.toml", "[polcy]\nappeal_window_days = 20\n")
    (error,) = copy.errors()
    assert error.location == "polcy"
    assert error.message.startswith("polcy: unknown table")


def test_duplicate_region_code(copy: Any) -> None:
    copy.edit("cn-zj-yw.toml", 'region_codes = ["330782"]', 'region_codes = ["330100"]')
    (error,) = copy.errors()
    assert error.location == "CN-ZJ-YW"
    assert "region 330100 is already claimed by CN-ZJ-HZ" in error.message


# -- policy -------------------------------------------------------------------


def test_the_root_must_give_every_policy_field(copy: Any) -> None:
    copy.edit("cn.toml", "warning_period_days = 30\n", "")
    copy.edit("cn.toml", "positive_cap_per_year = 100\n", "")
    (error,) = copy.errors()
    assert (Path(error.file).name, error.location) == ("cn.toml", "policy")
    assert error.message.startswith("policy.positive_cap_per_year: CN has no parent, so it is a root")
    assert error.message.endswith("missing: positive_cap_per_year, warning_period_days")


def test_a_forgotten_parent_makes_an_incomplete_root(copy: Any) -> None:
    copy.edit("cn-zj.toml", 'parent = "CN"\n', "")
    (error,) = copy.errors()
    assert Path(error.file).name == "cn-zj.toml"
    assert "CN-ZJ has no parent, so it is a root" in error.message


def test_inherited_policy_is_checked_after_inheritance(copy: Any) -> None:
    copy.edit("cn-zj-yw.toml", "appeal_window_days = 15", "appeal_window_days = 15\nfloor = 1200")
    (error,) = copy.errors()
    assert Path(error.file).name == "cn-zj-yw.toml"
    assert error.message == (
        "policy: must have floor <= base_score <= ceiling (got 1200 <= 1000 <= 1500) "
        "(after inheriting from CN-ZJ)"
    )


def test_policy_checks_in_one_table(copy: Any) -> None:
    copy.edit("cn.toml", "floor = 0", "floor = 1100")
    copy.edit("cn-sd-rc.toml", '{ grade = "AA", min = 1030 }', '{ grade = "AA", min = 1060 }')
    copy.edit("cn-zj.toml", "rectification_period_days = 365", "rectification_period_days = -1")
    errors = copy.errors()
    assert sorted((Path(e.file).name, e.message) for e in errors) == [
        (
            "cn-sd-rc.toml",
            "policy.grade_bands: must be sorted by min, highest first (AAA >= 1050 comes before AA >= 1060)",
        ),
        ("cn-zj.toml", "policy.rectification_period_days: Input should be greater than or equal to 0"),
        ("cn.toml", "policy: base_score (1000) must be >= floor (1100)"),
    ]


def test_the_lowest_band_must_cover_the_floor(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", '{ grade = "D", min = 0 }', '{ grade = "D", min = 100 }')
    (error,) = copy.errors()
    assert error.message.startswith(
        "policy.grade_bands: the lowest band (D >= 100) must start at or below floor (0)"
    )


def test_grade_lists_need_their_grades_in_every_scheme_below(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", '  { grade = "D", min = 0 },\n', "")
    copy.edit("cn-sd-rc.toml", '{ grade = "C", min = 600 }', '{ grade = "C", min = 0 }')
    (error,) = copy.errors()
    assert (Path(error.file).name, error.location) == ("cn.toml", "CN.LOW-GRADE")
    assert error.message == "lists[2].grades: D not a grade of CN-SD-RC's grade_bands (AAA, AA, A, B, C)"


# -- rules: codes, versions, visibility ---------------------------------------


def test_overlapping_versions_are_refused_naming_both(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", "effective_to = 2021-01-01\n", "")
    (error,) = copy.errors()
    assert error.location == "CN-SD-RC.TRAFFIC-TICKET"
    assert error.message.startswith(
        "rules[10].effective_from: versions 1 and 2 of CN-SD-RC.TRAFFIC-TICKET overlap: "
        "version 1 is in force [2015-01-01, open end), version 2 [2021-01-01, open end)"
    )


def test_versions_overlapping_by_one_day_are_refused(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", "effective_to = 2021-01-01", "effective_to = 2021-01-02")
    (error,) = copy.errors()
    assert "versions 1 and 2 of CN-SD-RC.TRAFFIC-TICKET overlap" in error.message
    assert "[2015-01-01, 2021-01-02)" in error.message


def test_a_gap_between_versions_is_allowed(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", "effective_to = 2021-01-01", "effective_to = 2020-07-01")
    registry, errors = copy.load()
    assert errors == [] and registry is not None
    from datetime import date

    assert registry.rule("CN-SD-RC.TRAFFIC-TICKET", date(2020, 9, 1)) is None


def test_versions_must_follow_each_other_in_time(copy: Any) -> None:
    # Version 2 moved before version 1: no overlap, but out of order.
    copy.edit(
        "cn-sd-rc.toml",
        "effective_from = 2021-01-01",
        "effective_from = 2014-01-01\neffective_to = 2015-01-01",
    )
    (error,) = copy.errors()
    assert error.message.startswith(
        "rules[10].effective_from: version 2 of CN-SD-RC.TRAFFIC-TICKET takes effect on 2014-01-01, "
        "before version 1 (2015-01-01)"
    )


def test_duplicate_rule_version(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", TICKET_V2, 'code = "CN-SD-RC.TRAFFIC-TICKET"\nversion = 1')
    errors = copy.errors()
    assert [e.message for e in errors] == [
        "rules[10].version: version 1 of CN-SD-RC.TRAFFIC-TICKET is already declared in "
        + str(copy.path("cn-sd-rc.toml"))
    ]


def test_effective_to_must_be_after_effective_from(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", "effective_to = 2021-01-01", "effective_to = 2015-01-01")
    (error,) = copy.errors()
    assert error.location == "CN-SD-RC.TRAFFIC-TICKET"
    assert error.message == (
        "rules[9].effective_to: must be after effective_from (2015-01-01), got 2015-01-01; "
        "the end is exclusive"
    )


def test_rule_code_must_carry_its_jurisdiction(copy: Any) -> None:
    copy.edit("cn-zj-yw.toml", '"CN-ZJ-YW.COUNTERFEIT-TRADEMARK"', '"CN-ZJ.COUNTERFEIT-TRADEMARK"')
    (error,) = copy.errors()
    assert error.message.startswith("rules[0].code: CN-ZJ.COUNTERFEIT-TRADEMARK must start with")
    assert "(CN-ZJ-YW.)" in error.message


def test_rule_code_shape(copy: Any) -> None:
    copy.edit("cn-zj-yw.toml", 'code = "CN-ZJ-YW.COUNTERFEIT-TRADEMARK"', 'code = "cn-zj-yw.counterfeit"')
    (error,) = copy.errors()
    assert error.message.startswith("rules[0].code: 'cn-zj-yw.counterfeit' is not a valid code")


def test_a_local_agency_may_report_a_national_rule(copy: Any) -> None:
    copy.edit(
        "cn.toml",
        'agencies = ["CN-STA"]\nseverity = "serious"',
        'agencies = ["CN-STA", "CN-ZJ-HZ-TP"]\nseverity = "serious"',
    )
    registry, errors = copy.load()
    assert errors == [] and registry is not None


def test_an_agency_may_not_report_a_rule_of_another_or_lower_jurisdiction(copy: Any) -> None:
    copy.edit("cn-sd-rc.toml", '["CN-SD-RC-CREDIT"]', '["CN-SD-RC-CREDIT", "CN-ZJ-HZ-TP"]')
    copy.edit("cn-zj.toml", 'agencies = ["CN-ZJ-HPC"]', 'agencies = ["CN-ZJ-HPC", "CN-SPC"]')
    errors = copy.errors()
    assert sorted(e.message for e in errors) == [
        "rules[0].agencies: agency CN-ZJ-HZ-TP belongs to CN-ZJ-HZ and may not report a rule of "
        "CN-SD-RC; an agency reports rules of its own jurisdiction or above it",
        "rules[1].agencies: agency CN-SPC belongs to CN and may not report a rule of CN-ZJ; "
        "an agency reports rules of its own jurisdiction or above it",
    ]


def test_places_on_a_list_not_visible_from_the_rule(copy: Any) -> None:
    copy.append(
        "cn-zj-hz.toml",
        '[[lists]]\ncode = "CN-ZJ-HZ.TRAFFIC-WATCH"\nname_en = "Traffic watch"\nname_zh = "交通关注"\n'
        'kind = "watch"\nentry = "rule"\nmax_duration_days = 90\npublic = false\n',
    )
    copy.edit(
        "cn-sd-rc.toml",
        'severity = "serious"\nrectifiable = true\neffective_from = 2015-01-01',
        'severity = "serious"\nrectifiable = true\nplaces_on = "CN-ZJ-HZ.TRAFFIC-WATCH"\n'
        "effective_from = 2015-01-01",
    )
    (error,) = copy.errors()
    assert error.location == "CN-SD-RC.SUED-IN-BREACH"
    assert error.message == (
        "rules[1].places_on: list CN-ZJ-HZ.TRAFFIC-WATCH belongs to CN-ZJ-HZ, "
        "which is not CN-SD-RC or above it"
    )


def test_places_on_must_be_a_rule_entered_list_of_the_right_kind(copy: Any) -> None:
    copy.edit("cn-sd.toml", 'places_on = "CN.DEFAULTER"', 'places_on = "CN.LOW-GRADE"')
    copy.edit(
        "cn-sd-rc.toml",
        'expiry_days = 1095\nseverity = "minor"\nrectifiable = false\n',
        'expiry_days = 1095\nseverity = "minor"\nrectifiable = false\nplaces_on = "CN.DEFAULTER"\n',
    )
    errors = copy.errors()
    assert {(e.location, e.message) for e in errors} == {
        (
            "CN-SD.COURT-ORDER-DEFIANCE",
            'rules[1].places_on: list CN.LOW-GRADE is entered by grade; only an entry = "rule" list '
            "can be entered by a rule",
        ),
        (
            "CN-SD-RC.HEROIC-ACT",
            "rules[11].places_on: a reward rule may not place on the black list CN.DEFAULTER",
        ),
    }


def test_a_red_list_only_grants_and_a_black_list_only_denies(copy: Any) -> None:
    copy.edit("cn.toml", 'measure = "fast-track-approval"', 'measure = "air-travel"')
    (error,) = copy.errors()
    assert error.location == "CN.REDLIST"
    assert error.message == (
        "lists[1].measures[1].measure: a red list may only use grant measures; air-travel has effect 'deny'"
    )


def test_a_watch_list_may_not_sanction(copy: Any) -> None:
    copy.append("cn.toml", '[[lists.measures]]\nmeasure = "air-travel"\nlegal_basis = "x"\n')
    (error,) = copy.errors()
    assert error.location == "CN.WATCH"
    assert error.message == "lists[3].measures: a watch list warns; it may not trigger measures"


def test_a_reward_rule_cannot_be_rectifiable(copy: Any) -> None:
    copy.edit(
        "cn-sd-rc.toml",
        'expiry_days = 1095\nseverity = "minor"\nrectifiable = false',
        'expiry_days = 1095\nseverity = "minor"\nrectifiable = true',
    )
    (error,) = copy.errors()
    assert error.message == "rules[11].rectifiable: only adverse rules can be rectified"


def test_duplicate_agency_and_measure_codes(copy: Any) -> None:
    copy.edit("cn-zj-yw.toml", 'code = "CN-ZJ-YW-COURT"', 'code = "CN-ZJ-YW-AMR"')
    copy.append(
        "cn-sd.toml",
        '[[measures]]\ncode = "air-travel"\nname_en = "Flights"\nname_zh = "飞机"\n'
        'sector = "transport"\neffect = "deny"\n',
    )
    errors = copy.errors()
    text = messages(errors)
    assert any("agencies[1].code: agency CN-ZJ-YW-AMR is already declared in" in t for t in text), text
    assert any("measures[0].code: measure air-travel is already declared in" in t for t in text), text


def test_extra_keys_are_typos(copy: Any) -> None:
    copy.edit("cn-zj.toml", "rectification_period_days = 365", "rectification_period = 365")
    (error,) = copy.errors()
    assert error.message == (
        "policy.rectification_period: unknown field (not part of the catalog format; a typo?)"
    )


# -- files --------------------------------------------------------------------


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    registry, errors = load_catalogs([tmp_path / "nope.toml"])
    assert registry is None
    assert [(e.file, e.message) for e in errors] == [(str(tmp_path / "nope.toml"), "file: does not exist")]
    registry, errors = load_catalogs([tmp_path])
    assert registry is None and [e.message for e in errors] == ["no catalog files to load"]


def test_parse_catalog_checks_one_file_alone(catalogs_dir: Path) -> None:
    text = (catalogs_dir / "cn-zj-yw.toml").read_text(encoding="utf-8")
    catalog, errors = parse_catalog(text, "cn-zj-yw.toml")
    assert errors == []
    assert catalog is not None and catalog.policy.appeal_window_days == 15
    assert catalog.policy.base_score is None  # not said here: inherited
