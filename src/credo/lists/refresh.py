"""Bring listings in line with what scoring says now, for some subjects or all.

Scoring answers two questions per scheme (as of today, as known now):
the status of each record of a rule that places on a list (judged in the
scheme of the rule's own jurisdiction), and each scored subject's grade.
:mod:`credo.lists.derive` turns those into a plan; this module writes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection

from credo.catalog.models import grade_for
from credo.catalog.registry import Registry
from credo.lists.derive import Plan, TriggerState, plan_grade_listings, plan_rule_listings
from credo.lists.services import apply_plan, open_listings, open_warnings
from credo.scoring.online import run_live
from credo.scoring.relations import ask, from_day
from credo.store.db import Database


def trigger_rules(catalogs: Registry) -> frozenset[str]:
    """Codes of rules with a version that places its subject on a list directly."""
    return frozenset(
        r.code
        for j in catalogs.jurisdictions()
        for r in catalogs.rules_for_scheme(j.code)
        if r.places_on is not None
    )


def plan_for(
    conn: Connection, catalogs: Registry, now: datetime, subject_ids: Sequence[int] | None = None
) -> Plan:
    schemes = [j.code for j in catalogs.jurisdictions()]
    evals = ask(catalogs, schemes, known_at=now)
    today = evals[0].as_of
    placing = trigger_rules(catalogs)
    triggers: list[TriggerState] = []
    grades: dict[tuple[int, str], str] = {}
    # One pass over the chosen subjects' rows (all of them when None), not one per subject.
    chosen = None if subject_ids is None else sorted(set(subject_ids))
    for row in run_live(conn, catalogs, "explained", evals, subjects=chosen):
        rule = str(row["rule"])
        if rule in placing and row["scheme"] == catalogs.rule_jurisdiction(rule):
            triggers.append(
                TriggerState(
                    int(row["seq"]),
                    int(row["subject_id"]),
                    rule,
                    from_day(int(row["occurred_day"])),
                    str(row["status"]),
                )
            )
    for row in run_live(conn, catalogs, "scores", evals, subjects=chosen):
        if row["scored"]:
            policy = catalogs.policy(str(row["scheme"]))
            grades[(int(row["subject_id"]), str(row["scheme"]))] = grade_for(policy, int(row["score"]))
    listed = open_listings(conn, subject_ids)
    rule_plan = plan_rule_listings(catalogs, today, triggers, listed)
    grade_plan = plan_grade_listings(catalogs, today, grades, listed, open_warnings(conn, subject_ids))
    return Plan(
        open=rule_plan.open + grade_plan.open,
        end=rule_plan.end + grade_plan.end,
        warn=grade_plan.warn,
        lapse=grade_plan.lapse,
    )


def refresh(
    conn: Connection, catalogs: Registry, now: datetime, subject_ids: Sequence[int] | None = None
) -> Plan:
    """Compute and apply the plan; returns what changed."""
    plan = plan_for(conn, catalogs, now, subject_ids)
    if not plan.is_empty:
        apply_plan(conn, catalogs, plan, now)
    return plan


def refresh_all(
    db: Database,
    catalogs: Registry,
    now: datetime,
    *,
    chunk: int = 10,
    pause: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Plan:
    """The whole registry's refresh, without holding the writer while it thinks.

    Planning every subject takes seconds at city scale (a full scoring
    pass); inside one write transaction that would stall every ingest and
    every check log behind SQLite's single writer, once a day at midnight
    and at each server start. So the plan is made on a read transaction,
    and only its subjects are then re-planned and applied, ``chunk`` at a
    time, each in a short write transaction. Re-planning under the writer
    keeps it exact: a subject written to since the read refreshes itself
    (the intake refreshes whom it touches), and the rest plan the same.

    It is background work and gives way: after each write it sleeps
    ``pause`` times as long as that write took, so requests waiting for the
    writer (or the CPU) get it between chunks. A chunk of 10 subjects holds
    the writer for some 30 ms (the scoring pass has a fixed cost of ~25 ms);
    100 at a time held it for ~0.7 s under load, and thousands of listing
    changes after a day of ingest stalled the API for seconds.

    >>> plan = refresh_all(db, catalogs, now)  # doctest: +SKIP
    >>> len(plan.open), len(plan.end)          # what changed, across all chunks
    (537, 0)
    """
    with db.read() as conn:
        draft = plan_for(conn, catalogs, now)
        if draft.is_empty:
            return draft
        listing_subject = {o.id: o.subject_id for o in open_listings(conn)}
        warning_subject = {w.id: w.subject_id for w in open_warnings(conn)}
    touched = {n.subject_id for n in draft.open} | {w.subject_id for w in draft.warn}
    touched |= {listing_subject[listing_id] for listing_id, _, _ in draft.end}
    touched |= {warning_subject[warning_id] for warning_id, _ in draft.lapse}
    done = Plan()
    order = sorted(touched)
    for start in range(0, len(order), chunk):
        began = time.monotonic()
        with db.begin(shed=False) as conn:
            done.extend(refresh(conn, catalogs, now, order[start : start + chunk]))
        if pause > 0 and start + chunk < len(order):
            sleep(pause * (time.monotonic() - began))
    return done
