"""The online engine: one subject's score, explained, on the live database.

It runs :mod:`credo.scoring.definition` inside the registry's own database
(SQLite or PostgreSQL), so a record is scored the moment it is committed and
the explanation comes from the very statements that compute the score.

* the subject's records and statuses: the definition over the subject's
  rows only (every rule is per subject, so this is exact);
* the rank: from a :class:`~credo.scoring.rank.RankCache` when one is given
  (every scored subject's score, kept up to date subject by subject), else
  the definition over the whole scheme in one statement; both exact at the
  same ``as_of`` and ``known_at`` (docs/scoring.md, "The online rank");
* the restoration forecast: the definition evaluated at every later date on
  which one of the subject's records stops (or starts) counting, with the
  same knowledge time -- "if nothing new happens".

Worked example (Rongcheng, base 1000, bands A >= 960, B >= 850):

>>> # report = score_subject(conn, registry, 7, "CN-SD-RC", as_of=date(2026, 3, 1))
>>> # report.score, report.grade -> (955, 'B')
>>> # report.forecast[0].sentence() ->
>>> #   'grade returns to A on 2027-03-01 when record 1234 expires'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, select

from credo.catalog.models import grade_for
from credo.catalog.registry import Registry
from credo.scoring.definition import (
    Dialect,
    Output,
    appeals_adapter,
    literal_relation,
    records_adapter,
    render,
)
from credo.scoring.relations import (
    Evaluation,
    catalog_relations,
    day_number,
    evaluations,
    from_day,
    from_us,
    local_date,
    policy_values,
)
from credo.store.tables import records

if TYPE_CHECKING:
    from credo.scoring.rank import RankCache

#: How many later dates a forecast evaluates at most (each is one row per
#: record of the subject in one statement).
FORECAST_LIMIT: Final = 200


def dialect_of(conn: Connection) -> Dialect:
    name = conn.dialect.name
    if name == "postgresql":
        return "postgres"
    if name == "sqlite":
        return "sqlite"
    raise ValueError(f"the online engine runs on SQLite or PostgreSQL, not {name}")


@dataclass(frozen=True)
class RecordStatus:
    """One candidate record of the subject in the scheme, and what became of it."""

    seq: int
    rule: str
    rule_version: int
    occurred_on: date
    recorded_at: datetime
    points: int
    counted_points: int
    status: str
    #: expired: the expiry date; rectified: the date it was rectified
    status_on: date | None
    #: a record that counts: the date it stops counting if nothing new happens
    ends_on: date | None
    expires_on: date
    #: a rectifiable adverse record: the end of its clean period, if known
    rectifies_on: date | None
    #: the retraction, or the restoration that rectified it
    cause_seq: int | None
    #: the appeal that overturned or suspends it
    cause_appeal: int | None

    def reason(self, policy: Mapping[str, Any] | None = None) -> str:
        """The status in words, e.g. ``rectified on 2026-05-01 by record 17``."""
        s = self.status
        if s == "counted":
            return "counted"
        if s == "capped":
            cap = f" (yearly cap {policy['positive_cap_per_year']})" if policy else ""
            return f"capped: {self.counted_points} of {self.points} points count{cap}"
        if s == "expired":
            return f"expired on {self.status_on}"
        if s == "rectified":
            if self.cause_seq is not None:
                return f"rectified on {self.status_on} by record {self.cause_seq}"
            days = f" of {policy['rectification_period_days']} days" if policy else ""
            return f"rectified on {self.status_on} after a clean period{days}"
        if s == "retracted":
            return f"retracted by record {self.cause_seq}"
        if s == "overturned":
            return f"overturned by appeal {self.cause_appeal}"
        return f"suspended: appeal {self.cause_appeal} is undecided past its deadline"

    def as_dict(self, policy: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "rule": self.rule,
            "rule_version": self.rule_version,
            "occurred_on": self.occurred_on.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "points": self.points,
            "counted_points": self.counted_points,
            "status": self.status,
            "status_on": _iso(self.status_on),
            "ends_on": _iso(self.ends_on),
            "expires_on": self.expires_on.isoformat(),
            "rectifies_on": _iso(self.rectifies_on),
            "cause_seq": self.cause_seq,
            "cause_appeal": self.cause_appeal,
            "reason": self.reason(policy),
        }


def _iso(d: date | None) -> str | None:
    return None if d is None else d.isoformat()


@dataclass(frozen=True)
class Change:
    """A date on which the score or grade changes if nothing new happens, and why."""

    on: date
    score_before: int
    score_after: int
    grade_before: str
    grade_after: str
    #: (record, what happens to it), e.g. (1234, "expires")
    causes: tuple[tuple[int, str], ...]
    #: the grade a subject with no counted record has (base score)
    base_grade: str

    def sentence(self) -> str:
        """``grade returns to A on 2027-03-01 when record 1234 expires``."""
        why = " and ".join(f"record {seq} {what}" for seq, what in self.causes) or "nothing"
        if self.grade_after != self.grade_before:
            verb = "returns to" if self.grade_after == self.base_grade else "changes to"
            return f"grade {verb} {self.grade_after} on {self.on} when {why}"
        direction = "rises" if self.score_after > self.score_before else "falls"
        return f"score {direction} to {self.score_after} on {self.on} when {why}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "on": self.on.isoformat(),
            "score_before": self.score_before,
            "score_after": self.score_after,
            "grade_before": self.grade_before,
            "grade_after": self.grade_after,
            "causes": [{"seq": s, "what": w} for s, w in self.causes],
            "sentence": self.sentence(),
        }


@dataclass(frozen=True)
class ScoreReport:
    subject_id: int
    scheme: str
    as_of: date
    known_at: datetime
    score: int
    grade: str
    #: share of the scheme's scored subjects with a strictly lower score
    rank: float | None
    #: whether the subject has a candidate record in the scheme that is not void
    scored: bool
    records: tuple[RecordStatus, ...]
    policy: Mapping[str, Any]
    forecast: tuple[Change, ...] = ()
    catalog_digest: str = ""
    counts: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject_id,
            "scheme": self.scheme,
            "as_of": self.as_of.isoformat(),
            "known_at": self.known_at.isoformat(),
            "score": self.score,
            "grade": self.grade,
            "rank": self.rank,
            "scored": self.scored,
            "counts": dict(self.counts),
            "records": [r.as_dict(self.policy) for r in self.records],
            "forecast": [c.as_dict() for c in self.forecast],
            "policy": dict(self.policy),
            "catalog_digest": self.catalog_digest,
        }


# ---------------------------------------------------------------------------
# Running the definition on the live database
# ---------------------------------------------------------------------------


def subject_filter(subject_id: int | None = None, subjects: Sequence[int] | None = None) -> str | None:
    """``subject_id = N`` or ``subject_id IN (...)`` over the ledger's rows; None: every subject.

    Every rule is per subject, and a retraction, restoration or appeal always
    carries the subject of the record it names, so the definition over one
    subject's rows gives that subject's exact statuses and score.
    """
    if subject_id is not None:
        return f"subject_id = {int(subject_id)}"
    if subjects is not None:
        listed = ", ".join(str(int(s)) for s in sorted(set(subjects)))
        return f"subject_id IN ({listed})" if listed else "1 = 0"
    return None


def live_inputs(
    dialect: Dialect,
    catalogs: Registry,
    evals: Sequence[Evaluation],
    subject_id: int | None,
    subjects: Sequence[int] | None = None,
) -> dict[str, str]:
    """The definition's input relations over the registry's own tables
    (``subject_id`` or ``subjects``: only their rows)."""
    where = subject_filter(subject_id, subjects)
    out = {
        "ledger_records": records_adapter(dialect, "records", where),
        "ledger_appeals": appeals_adapter(dialect, "appeals", where),
    }
    for rel in (*catalog_relations(catalogs), evaluations(evals)):
        out[rel.name] = literal_relation(rel.name, rel.rows, dialect)
    return out


def run_live(
    conn: Connection,
    catalogs: Registry,
    output: Output,
    evals: Sequence[Evaluation],
    *,
    subject_id: int | None = None,
    subjects: Sequence[int] | None = None,
    where: str | None = None,
) -> list[dict[str, Any]]:
    """Rows of one output of the definition, computed by the live database.

    ``subject_id`` or ``subjects`` restrict the inputs to those subjects'
    rows; ``where`` filters the output (the rank needs every subject's row).
    """
    dialect = dialect_of(conn)
    inputs = live_inputs(dialect, catalogs, evals, subject_id, subjects)
    sql = render(output, dialect, inputs=inputs, where=where)
    if dialect != "postgres":
        return [dict(row._mapping) for row in conn.exec_driver_sql(sql)]
    before = conn.exec_driver_sql(_PLAN_FOR_STEPS).one()
    rows = [dict(row._mapping) for row in conn.exec_driver_sql(sql)]
    conn.exec_driver_sql(_PLAN_RESTORE, tuple(before)[:2])
    return rows


#: PostgreSQL plans the definition's statement without nested loops and without JIT, for
#: this statement only (``is_local``, then set back). Why: it cannot estimate a CTE (a
#: materialised step is taken for 100 rows, a filtered one for 1), and over the whole
#: registry (the day's refresh, the rank) it joined ``judged`` to its own windows in nested
#: loops: more than 100 s for 20,000 records, where hash joins take 0.13 s. JIT: with nested
#: loops priced out, the plan's cost passed ``jit_above_cost`` and compiling took 2.0 s of
#: 2.3. A one-subject score costs the same either way (~4 ms). (bench/RESULTS.md, "Load".)
_PLAN_FOR_STEPS = (
    "SELECT current_setting('enable_nestloop'), current_setting('jit'), "
    "set_config('enable_nestloop', 'off', true), set_config('jit', 'off', true)"
)
_PLAN_RESTORE = "SELECT set_config('enable_nestloop', %s, true), set_config('jit', %s, true)"


def _status(row: Mapping[str, Any]) -> RecordStatus:
    def day(v: Any) -> date | None:
        return None if v is None else from_day(int(v))

    return RecordStatus(
        seq=int(row["seq"]),
        rule=str(row["rule"]),
        rule_version=int(row["rule_version"]),
        occurred_on=from_day(int(row["occurred_day"])),
        recorded_at=from_us(int(row["recorded_us"])),
        points=int(row["points"]),
        counted_points=int(row["counted_points"]),
        status=str(row["status"]),
        status_on=day(row["status_day"]),
        ends_on=day(row["end_day"]),
        expires_on=from_day(int(row["expires_day"])),
        rectifies_on=day(row["rectifies_day"]),
        cause_seq=None if row["cause_seq"] is None else int(row["cause_seq"]),
        cause_appeal=None if row["cause_appeal"] is None else int(row["cause_appeal"]),
    )


def _now(known_at: datetime | None) -> datetime:
    k = known_at or datetime.now(UTC)
    return k if k.tzinfo is not None else k.replace(tzinfo=UTC)


def default_schemes(conn: Connection, catalogs: Registry, subject_id: int) -> list[str]:
    """The schemes that judge a subject's file most specifically.

    The jurisdictions that define the rules of the subject's incidents,
    keeping only the deepest ones (a subject with Rongcheng and national
    records is scored in CN-SD-RC, which counts both). A subject with no
    record gets the root of the tree.
    """
    rules = set(
        conn.execute(
            select(records.c.rule).where(records.c.subject_id == subject_id, records.c.kind == "incident")
        ).scalars()
    )
    owners: set[str] = set()
    for rule in rules:
        try:
            owners.add(catalogs.rule_jurisdiction(rule))
        except KeyError:
            continue  # a rule no longer in the catalogs scores nowhere
    deepest = sorted(j for j in owners if not any(o != j and catalogs.is_within(o, j) for o in owners))
    if deepest:
        return deepest
    roots = [j.code for j in catalogs.jurisdictions() if j.parent is None]
    return roots[:1]


def score_subject(
    conn: Connection,
    catalogs: Registry,
    subject_id: int,
    scheme: str,
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
    with_rank: bool = True,
    with_forecast: bool = True,
    ranks: RankCache | None = None,
) -> ScoreReport:
    """The subject's score in ``scheme`` on ``as_of`` as known at ``known_at``.

    ``known_at`` defaults to now; ``as_of`` to the date at ``known_at`` in the
    scheme's timezone. The report lists every candidate record with its
    status and the policy values used. With ``ranks`` (the runtime's
    :class:`~credo.scoring.rank.RankCache`) the rank comes from the cache
    when it can answer exactly, else from the whole scheme in one statement.
    """
    catalogs.policy(scheme)  # KeyError for an unknown scheme, before any SQL
    k = _now(known_at)
    t = as_of or local_date(k, catalogs.policy(scheme).timezone)
    here = Evaluation(1, scheme, t, k)
    rows = run_live(conn, catalogs, "explained", [here], subject_id=subject_id)
    statuses = tuple(sorted((_status(r) for r in rows), key=lambda r: (r.occurred_on, r.seq)))
    own = run_live(conn, catalogs, "ranked", [here], subject_id=subject_id)
    policy = catalogs.policy(scheme)
    if own:
        score, grade, scored = int(own[0]["score"]), str(own[0]["grade"]), bool(own[0]["scored"])
        counts = {c: int(own[0][c]) for c in ("counted", "capped", "expired", "rectified", "void")}
    else:
        score, scored, counts = policy.clamp(policy.base_score), False, {}
        grade = grade_for(policy, score)
    rank: float | None = None
    if with_rank and scored:
        rank = None if ranks is None else ranks.rank(conn, catalogs, here, subject_id, score)
        if rank is None:
            rank = rank_in_scheme(conn, catalogs, here, subject_id)
    forecast: tuple[Change, ...] = ()
    if with_forecast:
        forecast = _forecast(conn, catalogs, subject_id, here, statuses, score, grade)
    return ScoreReport(
        subject_id=subject_id,
        scheme=scheme,
        as_of=t,
        known_at=k,
        score=score,
        grade=grade,
        rank=rank,
        scored=scored,
        records=statuses,
        policy=policy_values(catalogs, scheme),
        forecast=forecast,
        catalog_digest=catalogs.digest,
        counts=counts,
    )


def rank_in_scheme(conn: Connection, catalogs: Registry, here: Evaluation, subject_id: int) -> float | None:
    """The rank by the definition over the whole scheme, in one statement (the exact slow path)."""
    found = run_live(conn, catalogs, "ranked", [here], where=f"subject_id = {int(subject_id)}")
    return None if not found or found[0]["rank"] is None else float(found[0]["rank"])


# ---------------------------------------------------------------------------
# The restoration forecast
# ---------------------------------------------------------------------------

_BECOMES: Final[Mapping[str, str]] = {
    "expired": "expires",
    "rectified": "is rectified",
    "counted": "counts",
    "capped": "is capped",
}


def _forecast(
    conn: Connection,
    catalogs: Registry,
    subject_id: int,
    here: Evaluation,
    statuses: Sequence[RecordStatus],
    score: int,
    grade: str,
) -> tuple[Change, ...]:
    """Every later date on which the score or grade changes with the same knowledge.

    The candidate dates are the days the subject's live records stop counting
    and the days of acts known at ``known_at`` that fall after ``as_of``;
    evaluating the definition there can reveal further dates (an act after
    ``as_of`` moves a clean period), so this repeats until no new date appears.
    """
    t = day_number(here.as_of)
    later_acts = {
        day_number(d)
        for d in conn.execute(
            select(records.c.occurred_on).where(
                records.c.subject_id == subject_id,
                records.c.kind.in_(("incident", "restoration")),
                records.c.occurred_on > here.as_of,
                records.c.recorded_at <= here.known_at,
            )
        ).scalars()
    }
    dates: set[int] = {day_number(r.ends_on) for r in statuses if r.ends_on is not None} | later_acts
    dates = {d for d in dates if d > t}
    evaluated: dict[int, tuple[int, str, dict[int, str]]] = {}
    while True:
        pending = sorted(d for d in dates if d not in evaluated)[: FORECAST_LIMIT - len(evaluated)]
        if not pending:
            break
        evals = [Evaluation(i + 1, here.scheme, from_day(d), here.known_at) for i, d in enumerate(pending)]
        by_eval = {e.eval_id: day_number(e.as_of) for e in evals}
        found: dict[int, dict[int, str]] = {d: {} for d in pending}
        for row in run_live(conn, catalogs, "statuses", evals, subject_id=subject_id):
            d = by_eval[int(row["eval_id"])]
            found[d][int(row["seq"])] = str(row["status"])
            if row["end_day"] is not None and int(row["end_day"]) > t:
                dates.add(int(row["end_day"]))
        totals = {
            by_eval[int(r["eval_id"])]: (int(r["score"]), str(r["grade"]))
            for r in run_live(conn, catalogs, "ranked", evals, subject_id=subject_id)
        }
        policy = catalogs.policy(here.scheme)
        for d in pending:
            base = policy.clamp(policy.base_score)
            s, g = totals.get(d, (base, grade_for(policy, base)))
            evaluated[d] = (s, g, found[d])
        if len(evaluated) >= FORECAST_LIMIT:
            break
    policy = catalogs.policy(here.scheme)
    base_grade = grade_for(policy, policy.clamp(policy.base_score))
    changes: list[Change] = []
    prev_score, prev_grade = score, grade
    prev_status = {r.seq: r.status for r in statuses}
    for d in sorted(evaluated):
        s, g, status = evaluated[d]
        if (s, g) != (prev_score, prev_grade):
            causes = tuple(
                (seq, _BECOMES.get(st, st))
                for seq, st in sorted(status.items())
                if prev_status.get(seq) != st and st in _BECOMES
            )
            changes.append(Change(from_day(d), prev_score, s, prev_grade, g, causes, base_grade))
        prev_score, prev_grade, prev_status = s, g, status
    return tuple(changes)
