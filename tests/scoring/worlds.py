"""Hypothesis strategies: whole scoring worlds (catalogs, policies, ledgers, questions).

A *world* is one jurisdiction tree with its own policies and rules
(``XA`` > ``XA-B`` > ``XA-B-C``, and ``XA-D``), a ledger of incidents,
retractions, restorations and appeals about a few subjects, and the
evaluations asked of it. Several worlds with distinct root codes and
distinct subject numbers merge into one registry and one ledger, so a
single (slow) Spark job checks many independent worlds at once.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import strategies as st

from credo.catalog.models import CatalogFile
from credo.catalog.registry import Registry, build_registry
from credo.scoring.relations import Evaluation

START = date(2019, 1, 1)
SPAN = 6 * 365
BANDS = ("AAA", "AA", "A", "B", "C", "D")
#: Rule points: never zero (a catalog refuses it); adverse more often than not.
POINTS = st.one_of(st.integers(-60, -1), st.integers(1, 40))


@dataclass
class World:
    files: list[tuple[str, CatalogFile]]
    records: list[dict[str, Any]] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)
    questions: list[tuple[str, date, datetime]] = field(default_factory=list)
    schemes: tuple[str, ...] = ()
    rules: dict[str, list[tuple[int, date, date | None]]] = field(default_factory=dict)
    agencies: dict[str, str] = field(default_factory=dict)


def _instant(day: date, seconds: int) -> datetime:
    return datetime.combine(day, time(0), UTC) + timedelta(seconds=seconds)


@st.composite
def policies(draw: st.DrawFn, root: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if root:
        floor = draw(st.integers(0, 300))
        base = floor + draw(st.integers(0, 700))
        ceiling = base + draw(st.integers(0, 300))
        cuts = sorted(draw(st.lists(st.integers(floor + 1, ceiling + 100), min_size=1, max_size=5,
                                    unique=True)), reverse=True)
        grades = (*BANDS[: len(cuts)], BANDS[len(cuts)])
        bands = [{"grade": g, "min": m} for g, m in zip(grades, [*cuts, floor], strict=True)]
        out.update(
            base_score=base, floor=floor, ceiling=ceiling, grade_bands=bands,
            appeal_window_days=30, decision_deadline_days=30, enforcement_grace_days=10,
            warning_period_days=30, timezone="Asia/Shanghai",
            rectification_period_days=draw(st.integers(0, 500)),
            default_expiry_days=draw(st.integers(1, 900)),
            positive_cap_per_year=draw(st.integers(0, 80)),
        )
    else:
        # Children override a few values, as Zhejiang overrides the period.
        if draw(st.booleans()):
            out["rectification_period_days"] = draw(st.integers(0, 500))
        if draw(st.booleans()):
            out["positive_cap_per_year"] = draw(st.integers(0, 80))
        if draw(st.booleans()):
            out["default_expiry_days"] = draw(st.integers(1, 900))
    return out


@st.composite
def rules_for(draw: st.DrawFn, code: str, agency: str) -> list[dict[str, Any]]:
    out = []
    for n in range(draw(st.integers(1, 3))):
        points = draw(POINTS)
        base = {
            "code": f"{code}.R{n}", "title_en": f"Rule {n}", "title_zh": f"规则{n}",
            "category": "contract", "legal_basis": "Synthetic test rule", "agencies": [agency],
            "severity": "moderate",
        }
        # Sometimes two versions with different points, split on a date.
        split = draw(st.one_of(st.none(), st.integers(200, SPAN - 200)))
        spans = [(START - timedelta(days=3650), None)] if split is None else [
            (START - timedelta(days=3650), START + timedelta(days=split)),
            (START + timedelta(days=split), None),
        ]
        for v, (since, until) in enumerate(spans, start=1):
            p = points if v == 1 else draw(POINTS)
            out.append({
                **base, "version": v, "points": p,
                "expiry_days": draw(st.one_of(st.none(), st.integers(1, 900))),
                "rectifiable": p < 0 and draw(st.booleans()),
                "effective_from": since, **({"effective_to": until} if until else {}),
            })
    return out


@st.composite
def worlds(draw: st.DrawFn, root: str, first_subject: int, first_seq: int, first_appeal: int) -> World:
    tree = [(root, None), (f"{root}-B", root), (f"{root}-B-C", f"{root}-B"), (f"{root}-D", root)]
    files = []
    world = World(files=files)
    for code, parent in tree:
        agency = f"{code}-AG"
        rules = draw(rules_for(code, agency))
        for r in rules:
            world.rules.setdefault(r["code"], []).append(
                (r["version"], r["effective_from"], r.get("effective_to")))
            world.agencies[r["code"]] = agency
        data = {
            "jurisdiction": {"code": code, "name_en": code, "name_zh": code,
                             **({"parent": parent} if parent else {})},
            "policy": draw(policies(parent is None)),
            "agencies": [{"code": agency, "name_en": agency, "name_zh": agency, "kind": "bureau"}],
            "rules": rules,
        }
        files.append((f"{code.lower()}.toml", CatalogFile.model_validate(data)))
    world.schemes = tuple(code for code, _ in tree)

    subjects = list(range(first_subject, first_subject + draw(st.integers(1, 6))))
    seq = first_seq
    incidents: list[dict[str, Any]] = []
    codes = sorted(world.rules)
    for _ in range(draw(st.integers(0, 25))):
        rule = draw(st.sampled_from(codes))
        day = START + timedelta(days=draw(st.integers(0, SPAN)))
        version = next((v for v, since, until in world.rules[rule]
                        if since <= day and (until is None or day < until)), None)
        assert version is not None
        recorded = _instant(day, draw(st.integers(0, 400 * 86400)))
        row = {
            "seq": seq, "agency": world.agencies[rule], "agency_ref": f"r{seq}", "kind": "incident",
            "subject_id": draw(st.sampled_from(subjects)), "rule": rule, "rule_version": version,
            # Where the act was recorded: the rule's jurisdiction or one below it
            # (tree codes extend their parent's), which decides who is scored where.
            "jurisdiction": draw(st.sampled_from(
                [j for j in world.schemes if j.startswith(rule.split(".")[0])])),
            "occurred_on": day, "recorded_at": recorded,
            "evidence": "", "target_seq": None,
        }
        incidents.append(row)
        world.records.append(row)
        seq += 1
    appeal_id = first_appeal
    for target in incidents:
        # Retractions, restorations and appeals, each recorded after the record.
        for kind in ("retraction", "restoration"):
            if draw(st.integers(0, 5)) == 0:
                day = target["occurred_on"] + timedelta(days=draw(st.integers(0, 500)))
                world.records.append({
                    **target, "seq": seq, "agency_ref": f"r{seq}", "kind": kind, "occurred_on": day,
                    "recorded_at": max(target["recorded_at"], _instant(day, 0))
                    + timedelta(seconds=draw(st.integers(0, 200 * 86400))),
                    "target_seq": target["seq"],
                })
                seq += 1
        if draw(st.integers(0, 5)) == 0:
            filed = target["recorded_at"] + timedelta(seconds=draw(st.integers(1, 60 * 86400)))
            deadline = filed + timedelta(days=draw(st.integers(1, 60)))
            decided = draw(st.one_of(st.none(), st.integers(0, 90 * 86400)))
            world.appeals.append({
                "id": appeal_id, "record_seq": target["seq"], "subject_id": target["subject_id"],
                "filed_at": filed, "deadline_at": deadline,
                "decided_at": None if decided is None else filed + timedelta(seconds=decided),
                "outcome": None if decided is None else draw(
                    st.sampled_from(["upheld", "overturned", "amended"])),
                "grounds": "test",
            })
            appeal_id += 1
    # Questions: a few (t, k) pairs, each asked of every scheme.
    for _ in range(draw(st.integers(1, 3))):
        t = START + timedelta(days=draw(st.integers(0, SPAN + 800)))
        k = _instant(START, draw(st.integers(0, (SPAN + 900) * 86400)))
        world.questions.append((root, t, k))
    return world


@st.composite
def universes(draw: st.DrawFn, max_worlds: int = 3) -> tuple[Registry, list[World], list[Evaluation]]:
    """Several independent worlds merged into one registry, ledger and set of questions."""
    count = draw(st.integers(1, max_worlds))
    roots = [f"X{string.ascii_uppercase[i]}" for i in range(count)]
    found: list[World] = []
    for i, root in enumerate(roots):
        found.append(draw(worlds(root, 10_000 * (i + 1), 1_000_000 * (i + 1), 100_000 * (i + 1))))
    registry, errors = build_registry([f for w in found for f in w.files])
    assert registry is not None, errors
    evals: list[Evaluation] = []
    for w in found:
        for _, t, k in w.questions:
            for scheme in w.schemes:
                evals.append(Evaluation(len(evals) + 1, scheme, t, k))
    return registry, found, evals
