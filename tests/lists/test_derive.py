"""Listing rules as plain functions: states in, actions out."""

from __future__ import annotations

from datetime import date, timedelta

from credo.catalog.registry import Registry
from credo.lists.derive import (
    OpenListing,
    OpenWarning,
    TriggerState,
    plan_grade_listings,
    plan_rule_listings,
)

JUDGMENT = date(2024, 5, 10)
TODAY = date(2024, 6, 1)


def judgment(status: str = "counted", seq: int = 1) -> TriggerState:
    return TriggerState(seq=seq, subject_id=7, rule="CN.COURT-DEFAULTER", occurred_on=JUDGMENT, status=status)


def open_defaulter(seq: int = 1, start: date = JUDGMENT) -> OpenListing:
    return OpenListing(10, 7, "CN.DEFAULTER", "CN", "rule", seq, start, start + timedelta(days=730))


def test_a_counted_court_judgment_lists_from_the_day_of_the_act_for_two_years(catalogs: Registry) -> None:
    plan = plan_rule_listings(catalogs, TODAY, [judgment()], [])
    (new,) = plan.open
    assert (new.list_code, new.scheme, new.cause_seq) == ("CN.DEFAULTER", "CN", 1)
    assert new.started_on == JUDGMENT
    assert new.planned_end_on == JUDGMENT + timedelta(days=730)
    grace = catalogs.policy("CN").enforcement_grace_days
    assert new.grace_until == JUDGMENT + timedelta(days=grace)


def test_an_open_listing_is_not_opened_twice(catalogs: Registry) -> None:
    assert plan_rule_listings(catalogs, TODAY, [judgment()], [open_defaulter()]).is_empty


def test_a_listing_ends_the_day_its_cause_stops_counting(catalogs: Registry) -> None:
    for status in ("retracted", "overturned", "suspended", "rectified", "expired"):
        plan = plan_rule_listings(catalogs, TODAY, [judgment(status)], [open_defaulter()])
        assert plan.end == [(10, TODAY, f"cause no longer counts: record 1 {status}")]
        assert not plan.open


def test_a_record_that_does_not_count_lists_nobody(catalogs: Registry) -> None:
    assert plan_rule_listings(catalogs, TODAY, [judgment("retracted")], []).is_empty


def test_maximum_duration_ends_a_listing_on_its_planned_end(catalogs: Registry) -> None:
    later = JUDGMENT + timedelta(days=800)
    plan = plan_rule_listings(catalogs, later, [judgment()], [open_defaulter()])
    assert plan.end == [(10, JUDGMENT + timedelta(days=730), "maximum duration reached")]
    # ... and an old judgment seen for the first time after its duration lists nobody.
    assert plan_rule_listings(catalogs, later, [judgment()], []).is_empty


def test_rules_without_a_list_never_list(catalogs: Registry) -> None:
    ticket = TriggerState(2, 7, "CN-ZJ-HZ.TRAFFIC-RED-LIGHT", date(2024, 3, 1), "counted")
    assert plan_rule_listings(catalogs, TODAY, [ticket], []).is_empty


def test_grade_blacklist_warns_first_then_lists_after_the_warning_period(catalogs: Registry) -> None:
    grades = {(7, "CN-SD-RC"): "D"}
    first = plan_grade_listings(catalogs, TODAY, grades, [], [])
    warned = [w for w in first.warn if w.list_code == "CN.LOW-GRADE" and w.scheme == "CN-SD-RC"]
    assert warned and not [o for o in first.open if o.list_code == "CN.LOW-GRADE"]
    period = catalogs.policy("CN-SD-RC").warning_period_days
    warning = OpenWarning(3, 7, "CN.LOW-GRADE", "CN-SD-RC", TODAY)
    too_soon = plan_grade_listings(catalogs, TODAY + timedelta(days=period - 1), grades, [], [warning])
    assert not [o for o in too_soon.open if o.list_code == "CN.LOW-GRADE"]
    due = TODAY + timedelta(days=period)
    later = plan_grade_listings(catalogs, due, grades, [], [warning])
    (listing,) = [o for o in later.open if o.list_code == "CN.LOW-GRADE"]
    assert (listing.started_on, listing.cause) == (due, "grade")
    assert (3, due) in later.lapse


def test_a_warning_lapses_when_the_grade_recovers_in_time(catalogs: Registry) -> None:
    warning = OpenWarning(3, 7, "CN.LOW-GRADE", "CN-SD-RC", TODAY)
    plan = plan_grade_listings(catalogs, TODAY + timedelta(days=5), {(7, "CN-SD-RC"): "B"}, [], [warning])
    assert plan.lapse == [(3, TODAY + timedelta(days=5))]
    assert not plan.open


def test_a_redlist_needs_no_warning_and_ends_when_the_grade_leaves(catalogs: Registry) -> None:
    plan = plan_grade_listings(catalogs, TODAY, {(8, "CN-SD-RC"): "AAA"}, [], [])
    assert [o.list_code for o in plan.open if o.subject_id == 8] == ["CN.REDLIST"]
    red = OpenListing(11, 8, "CN.REDLIST", "CN-SD-RC", "grade", None, TODAY, TODAY + timedelta(days=365))
    gone = plan_grade_listings(catalogs, TODAY + timedelta(days=1), {(8, "CN-SD-RC"): "A"}, [red], [])
    assert gone.end == [(11, TODAY + timedelta(days=1), "grade left the list's grades")]
