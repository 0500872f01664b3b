"""A plain-Python model of docs/scoring.md, for tests only.

It follows the prose rule by rule, one subject at a time, with none of the
SQL's shortcuts (no horizon, no windows): the property tests check that the
engines agree with it as well as with each other. It is deliberately slow
and obvious; it is not, and must not become, a fourth engine.

>>> Model.__doc__.split(",")[0]
'Scores of every subject for a set of evaluations'
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from credo.catalog.models import grade_for
from credo.catalog.registry import Registry
from credo.scoring.relations import Evaluation

VOID = ("retracted", "overturned", "suspended")


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Judged:
    seq: int
    status: str
    counted: int


class Model:
    """Scores of every subject for a set of evaluations, from rows as the tables hold them."""

    def __init__(self, catalogs: Registry, records: Sequence[Mapping[str, Any]],
                 appeals: Sequence[Mapping[str, Any]]) -> None:
        self.catalogs = catalogs
        self.records = records
        self.appeals = appeals

    def statuses(self, ev: Evaluation, subject: int) -> list[Judged]:
        c, t, k = self.catalogs, ev.as_of, _aware(ev.known_at)
        policy = c.policy(ev.scheme)
        visible = set(c.ancestors(ev.scheme))
        versions = {(r.code, r.version): r for j in visible for r in c.rules_for_scheme(j)}

        def known(r: Mapping[str, Any]) -> bool:
            return _aware(r["recorded_at"]) <= k

        cands = [
            r for r in self.records
            if r["kind"] == "incident" and r["subject_id"] == subject and known(r) and r["occurred_on"] <= t
            and (r["rule"], r["rule_version"]) in versions
            and c.rule_jurisdiction(r["rule"]) in visible
        ]
        info: dict[int, dict[str, Any]] = {}
        for r in cands:
            rule = versions[(r["rule"], r["rule_version"])]
            retractions = [x["seq"] for x in self.records
                           if x["kind"] == "retraction" and x["target_seq"] == r["seq"] and known(x)]
            restorations = sorted((x["occurred_on"], x["seq"]) for x in self.records
                                  if x["kind"] == "restoration" and x["target_seq"] == r["seq"] and known(x))
            filed = [a for a in self.appeals if a["record_seq"] == r["seq"] and _aware(a["filed_at"]) <= k]
            overturned = [a["id"] for a in filed if a["outcome"] in ("overturned", "amended")
                          and a["decided_at"] is not None and _aware(a["decided_at"]) <= k]
            suspended = [a["id"] for a in filed if _aware(a["deadline_at"]) <= k
                         and (a["decided_at"] is None or _aware(a["decided_at"]) > k)]
            void = "retracted" if retractions else "overturned" if overturned else (
                "suspended" if suspended else None)
            expiry = rule.expiry_days if rule.expiry_days is not None else policy.default_expiry_days
            info[r["seq"]] = {
                "row": r, "rule": rule, "void": void,
                "expires": r["occurred_on"] + timedelta(days=expiry),
                "restored": restorations[0][0] if restorations else None,
            }
        # Clean periods: the standing adverse acts of the subject in the scheme.
        days = sorted({i["row"]["occurred_on"] for i in info.values() if i["void"] is None
                       and i["rule"].points < 0})
        period = timedelta(days=policy.rectification_period_days)

        def rectified_on(a: date) -> date:
            later = [d for d in days if d >= a]
            for n, d in enumerate(later):
                following = later[n + 1] if n + 1 < len(later) else None
                if following is None or following > d + period:
                    return d + period
            raise AssertionError("an adverse act always ends a period")

        out: dict[int, Judged] = {}
        live_rewards: list[tuple[date, int, int]] = []
        for seq, i in info.items():
            rule, row = i["rule"], i["row"]
            if i["void"] is not None:
                out[seq] = Judged(seq, i["void"], 0)
            elif i["expires"] <= t:
                out[seq] = Judged(seq, "expired", 0)
            elif (i["restored"] is not None and i["restored"] <= t) or (
                rule.rectifiable and rule.points < 0 and rectified_on(row["occurred_on"]) <= t
            ):
                out[seq] = Judged(seq, "rectified", 0)
            elif rule.points < 0:
                out[seq] = Judged(seq, "counted", rule.points)
            else:
                live_rewards.append((row["occurred_on"], seq, rule.points))
        used: dict[int, int] = defaultdict(int)
        for day, seq, points in sorted(live_rewards):
            room = max(0, policy.positive_cap_per_year - used[day.year])
            counted = min(points, room)
            used[day.year] += points
            out[seq] = Judged(seq, "counted" if counted == points else "capped", counted)
        return [out[s] for s in sorted(out)]

    def ranked(self, evals: Sequence[Evaluation]) -> dict[tuple[int, int], dict[str, Any]]:
        """(eval_id, subject_id) -> score, grade, rank, counts, for every scored subject."""
        subjects = sorted({r["subject_id"] for r in self.records})
        out: dict[tuple[int, int], dict[str, Any]] = {}
        for ev in evals:
            policy = self.catalogs.policy(ev.scheme)
            rows: dict[int, dict[str, Any]] = {}
            for s in subjects:
                judged = self.statuses(ev, s)
                # Scored: a record of an act recorded in the scheme's jurisdiction still stands.
                own = {r["seq"] for r in self.records
                       if r["subject_id"] == s and self.catalogs.is_within(r["jurisdiction"], ev.scheme)}
                if not any(j.status not in VOID and j.seq in own for j in judged):
                    continue
                score = policy.clamp(policy.base_score + sum(j.counted for j in judged))
                rows[s] = {
                    "scheme": ev.scheme, "score": score, "grade": grade_for(policy, score),
                    **{name: sum(1 for j in judged if j.status == name)
                       for name in ("counted", "capped", "expired", "rectified")},
                    "void": sum(1 for j in judged if j.status in VOID),
                }
            for s, row in rows.items():
                below = sum(1 for other in rows.values() if other["score"] < row["score"])
                out[(ev.eval_id, s)] = {**row, "rank": below / len(rows)}
        return out
