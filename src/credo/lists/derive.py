"""Which listings should exist: a plain function from states to actions.

Inputs are what scoring says today (each trigger record's status, each
subject's grade per scheme) and what is already on file (open listings,
open warnings). The output is the set of changes to make; nothing here
touches a database, so the rules read as they are written:

- **Rule trigger.** A counted record of a rule that names a list places
  its subject on that list from the date of the act, for the list's
  maximum duration. The listing ends the day the record stops counting
  (retracted, overturned, suspended, expired, rectified — a restoration
  such as "judgment performed" rectifies it that same day).
- **Grade.** A subject whose grade in a scheme falls in a list's grades is
  placed on it. For a *black* list the first time is a warning instead;
  the listing starts only if the grade is still there once the policy's
  warning period has passed since the warning. A warning lapses when the
  grade recovers first; a later fall warns again.
- **Duration.** Every listing ends at ``started_on + max_duration_days``
  at the latest (exclusive: on that day it is no longer in force).

>>> from datetime import date
>>> plan = Plan()
>>> plan.is_empty
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from credo.catalog.registry import Registry


@dataclass(frozen=True)
class TriggerState:
    """A record of a rule that places on a list, as scoring sees it today."""

    seq: int
    subject_id: int
    rule: str
    occurred_on: date
    status: str  # counted, or the reason it does not count (expired, rectified, ...)


@dataclass(frozen=True)
class OpenListing:
    id: int
    subject_id: int
    list_code: str
    scheme: str
    cause: str  # rule | grade
    cause_seq: int | None
    started_on: date
    planned_end_on: date


@dataclass(frozen=True)
class OpenWarning:
    id: int
    subject_id: int
    list_code: str
    scheme: str
    warned_on: date


@dataclass(frozen=True)
class NewListing:
    subject_id: int
    list_code: str
    scheme: str
    cause: str
    cause_seq: int | None
    started_on: date
    planned_end_on: date
    grace_until: date


@dataclass(frozen=True)
class NewWarning:
    subject_id: int
    list_code: str
    scheme: str
    warned_on: date


@dataclass
class Plan:
    open: list[NewListing] = field(default_factory=list)
    end: list[tuple[int, date, str]] = field(default_factory=list)
    warn: list[NewWarning] = field(default_factory=list)
    lapse: list[tuple[int, date]] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.open or self.end or self.warn or self.lapse)

    def extend(self, other: Plan) -> None:
        """Add what ``other`` changed (the parts of a plan applied in several transactions)."""
        self.open += other.open
        self.end += other.end
        self.warn += other.warn
        self.lapse += other.lapse


def _listing(
    catalogs: Registry,
    list_code: str,
    scheme: str,
    subject_id: int,
    cause: str,
    cause_seq: int | None,
    started: date,
) -> NewListing:
    definition = catalogs.list(list_code)
    assert definition is not None
    grace = catalogs.policy(scheme).enforcement_grace_days
    return NewListing(
        subject_id=subject_id,
        list_code=list_code,
        scheme=scheme,
        cause=cause,
        cause_seq=cause_seq,
        started_on=started,
        planned_end_on=started + timedelta(days=definition.max_duration_days),
        grace_until=started + timedelta(days=grace),
    )


def plan_rule_listings(
    catalogs: Registry,
    today: date,
    triggers: Iterable[TriggerState],
    open_listings: Iterable[OpenListing],
) -> Plan:
    """Listings entered by a trigger rule: one per counted record."""
    plan = Plan()
    by_cause = {o.cause_seq: o for o in open_listings if o.cause == "rule"}
    seen: set[int] = set()
    for t in triggers:
        seen.add(t.seq)
        rule = catalogs.rule(t.rule, t.occurred_on)
        if rule is None or rule.places_on is None:
            continue
        current = by_cause.get(t.seq)
        if current is not None:
            if today >= current.planned_end_on:
                plan.end.append((current.id, current.planned_end_on, "maximum duration reached"))
            elif t.status != "counted":
                plan.end.append((current.id, today, f"cause no longer counts: record {t.seq} {t.status}"))
            continue
        if t.status != "counted":
            continue
        scheme = catalogs.rule_jurisdiction(t.rule)
        new = _listing(catalogs, rule.places_on, scheme, t.subject_id, "rule", t.seq, t.occurred_on)
        if today < new.planned_end_on:
            plan.open.append(new)
    # A listing whose cause vanished from view entirely (e.g. its record was
    # retracted and so is no candidate any more) ends as well.
    for seq, current in by_cause.items():
        if seq not in seen:
            plan.end.append((current.id, today, f"cause no longer counts: record {seq}"))
    return plan


def plan_grade_listings(
    catalogs: Registry,
    today: date,
    grades: Mapping[tuple[int, str], str],
    open_listings: Iterable[OpenListing],
    open_warnings: Iterable[OpenWarning],
) -> Plan:
    """Listings entered by grade, with a warning first for blacklists.

    ``grades`` maps (subject, scheme) to today's grade for every subject in
    view; a subject absent from it has no score there (and so no grade).
    """
    plan = Plan()
    listed = {(o.subject_id, o.list_code, o.scheme): o for o in open_listings if o.cause == "grade"}
    warned = {(w.subject_id, w.list_code, w.scheme): w for w in open_warnings}
    subjects = {s for s, _ in grades} | {k[0] for k in listed} | {k[0] for k in warned}
    schemes = [j.code for j in catalogs.jurisdictions()]
    for scheme in schemes:
        policy = catalogs.policy(scheme)
        for definition in catalogs.lists_for(scheme):
            if definition.entry != "grade":
                continue
            for subject in subjects:
                key = (subject, definition.code, scheme)
                in_grade = grades.get((subject, scheme)) in definition.grades
                current = listed.get(key)
                warning = warned.get(key)
                if current is not None:
                    if today >= current.planned_end_on:
                        plan.end.append((current.id, current.planned_end_on, "maximum duration reached"))
                    elif not in_grade:
                        plan.end.append((current.id, today, "grade left the list's grades"))
                    continue
                if not in_grade:
                    if warning is not None:
                        plan.lapse.append((warning.id, today))
                    continue
                if definition.kind != "black":
                    plan.open.append(
                        _listing(catalogs, definition.code, scheme, subject, "grade", None, today)
                    )
                elif warning is None:
                    plan.warn.append(NewWarning(subject, definition.code, scheme, today))
                elif today >= warning.warned_on + timedelta(days=policy.warning_period_days):
                    plan.open.append(
                        _listing(catalogs, definition.code, scheme, subject, "grade", None, today)
                    )
                    plan.lapse.append((warning.id, today))
    return plan
