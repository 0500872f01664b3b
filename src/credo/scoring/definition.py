"""The score, defined once, as one relational program (SQL), rendered for every engine.

This module is the only place the rules of issue 4 are written down in code.
The online engine (SQLite or PostgreSQL), the embedded batch engine (DuckDB)
and the distributed one (Spark SQL) all execute the text produced by
:func:`render`; docs/scoring.md states the same rules in prose.

The program is a chain of named steps (common table expressions) over seven
input relations. Engines only *provide* the inputs under these names; they
never restate a rule:

``ledger_records``
    ``seq, kind, subject_id, rule, rule_version, occurred_day, occurred_year,
    recorded_us, target_seq`` -- every ledger entry. ``occurred_day`` is the
    act's local date as days since 1970-01-01, ``recorded_us`` the UTC
    instant it was recorded as microseconds since the epoch.
``ledger_appeals``
    ``id, record_seq, filed_us, deadline_us, decided_us, outcome``.
``catalog_rules``
    ``rule, rule_version, rule_jurisdiction, points, expiry_days,
    rectifiable`` (``expiry_days`` NULL: the policy default; ``rectifiable``
    0/1).
``catalog_visibility``
    ``scheme, rule_jurisdiction``: scheme J counts rules of J and above it.
``catalog_policies``
    ``scheme, base_score, floor_score, ceiling_score, rectification_days,
    default_expiry_days, positive_cap``.
``catalog_bands``
    ``scheme, grade, min_score, below_score``: ``min_score <= score <
    below_score`` (``below_score`` NULL for the top band).
``evaluations``
    ``eval_id, scheme, as_of_day, known_us``: the questions asked -- "score
    in scheme J on valid date t as known at instant k". A batch run asks one
    per scheme; a forecast asks one per future date.

Dates are whole days and instants whole microseconds, so every rule below is
integer arithmetic and comparison, which every engine evaluates the same way.
How a store spells "days since 1970" or "microseconds since 1970" is the only
thing that differs; :data:`PRIMITIVES` holds those few spellings and the
``ledger_*`` adapters use them (``tests/scoring/test_definition.py`` checks
that they agree).

Outputs (:data:`OUTPUTS`): ``statuses`` (every candidate record with its
status, counted points and cause), ``explained`` (the same with rule and
recording time), ``scores`` (one row per subject and evaluation) and
``ranked`` (scores with grade and rank).

Worked example (Rongcheng, base 1000, bands A >= 960, B >= 850, national
rectification period 730 days): a contract breach (-20, rectifiable) on
2024-03-01 and a late utility fee (-20, rectifiable) on 2024-05-01, nothing
since. The breach's clean period would end on 2026-03-01, but the fee falls
inside it; the fee's own period (2024-05-01, 2026-05-01] stays clean, so
both records are rectified on 2026-05-01. As of 2026-04-30 both count: score
960, grade A; as of 2026-05-01 neither does: score 1000.

>>> sql = render("ranked", "duckdb")
>>> "catalog_bands" in sql and "WITH" in sql
True
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

import sqlglot
from sqlglot import exp

Dialect = Literal["duckdb", "spark", "postgres", "sqlite"]
DIALECTS: Final[tuple[Dialect, ...]] = ("duckdb", "spark", "postgres", "sqlite")

#: Statuses a candidate record can have, in the order they are decided.
STATUSES: Final[tuple[str, ...]] = (
    "retracted",
    "overturned",
    "suspended",
    "expired",
    "rectified",
    "capped",
    "counted",
)
VOID_STATUSES: Final[frozenset[str]] = frozenset({"retracted", "overturned", "suspended"})

#: Column names and types of every input relation (types in the neutral dialect).
INPUTS: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "ledger_records": (
        ("seq", "BIGINT"),
        ("kind", "VARCHAR"),
        ("subject_id", "BIGINT"),
        ("rule", "VARCHAR"),
        ("rule_version", "INTEGER"),
        ("jurisdiction", "VARCHAR"),
        ("occurred_day", "INTEGER"),
        ("occurred_year", "INTEGER"),
        ("recorded_us", "BIGINT"),
        ("target_seq", "BIGINT"),
    ),
    "ledger_appeals": (
        ("id", "BIGINT"),
        ("record_seq", "BIGINT"),
        ("filed_us", "BIGINT"),
        ("deadline_us", "BIGINT"),
        ("decided_us", "BIGINT"),
        ("outcome", "VARCHAR"),
    ),
    "catalog_rules": (
        ("rule", "VARCHAR"),
        ("rule_version", "INTEGER"),
        ("rule_jurisdiction", "VARCHAR"),
        ("points", "INTEGER"),
        ("expiry_days", "INTEGER"),
        ("rectifiable", "INTEGER"),
    ),
    "catalog_visibility": (("scheme", "VARCHAR"), ("rule_jurisdiction", "VARCHAR")),
    "catalog_policies": (
        ("scheme", "VARCHAR"),
        ("base_score", "INTEGER"),
        ("floor_score", "INTEGER"),
        ("ceiling_score", "INTEGER"),
        ("rectification_days", "INTEGER"),
        ("default_expiry_days", "INTEGER"),
        ("positive_cap", "INTEGER"),
    ),
    "catalog_bands": (
        ("scheme", "VARCHAR"),
        ("grade", "VARCHAR"),
        ("min_score", "INTEGER"),
        ("below_score", "INTEGER"),
    ),
    "evaluations": (
        ("eval_id", "INTEGER"),
        ("scheme", "VARCHAR"),
        ("as_of_day", "INTEGER"),
        ("known_us", "BIGINT"),
    ),
}


# ---------------------------------------------------------------------------
# The definition. Written in DuckDB's spelling of standard SQL (no engine
# extensions); sqlglot renders it for the others. Each step says which
# clause of docs/scoring.md it implements.
# ---------------------------------------------------------------------------

_STEPS: Final[tuple[tuple[str, str], ...]] = (
    # The distinct knowledge times asked about: retractions, restorations and
    # appeal decisions are judged once per k, not once per (scheme, date).
    ("knowledge", "SELECT DISTINCT known_us FROM evaluations"),
    # §4 a restoration clears the record it names; the earliest-dated one
    # known at k counts (ties: the lower sequence number). Whether its date
    # is on or before t is decided per evaluation below.
    (
        "restorations",
        """
        SELECT k.known_us, x.target_seq, x.seq, x.occurred_day,
               ROW_NUMBER() OVER (
                   PARTITION BY k.known_us, x.target_seq ORDER BY x.occurred_day, x.seq
               ) AS nth
        FROM ledger_records AS x
        JOIN knowledge AS k ON x.recorded_us <= k.known_us
        WHERE x.kind = 'restoration'
        """,
    ),
    # §2 What happened to each record as known at k, one row per (k, record):
    # retracted by a retraction recorded at or before k; overturned by an
    # overturning (or amending) appeal decision made at or before k;
    # suspended by an appeal filed at or before k whose decision deadline
    # has passed at k (deadline_at is exclusive: a decision is due before
    # it, so deadline <= k is overdue) with no decision made at or before k;
    # restored as above.
    (
        "effects",
        """
        SELECT known_us, seq, MIN(retracted_by) AS retracted_by, MIN(overturned_by) AS overturned_by,
               MIN(suspended_by) AS suspended_by, MIN(restored_by) AS restored_by,
               MIN(restored_day) AS restored_day
        FROM (
            SELECT k.known_us, x.target_seq AS seq, x.seq AS retracted_by,
                   CAST(NULL AS BIGINT) AS overturned_by, CAST(NULL AS BIGINT) AS suspended_by,
                   CAST(NULL AS BIGINT) AS restored_by, CAST(NULL AS INTEGER) AS restored_day
            FROM ledger_records AS x
            JOIN knowledge AS k ON x.recorded_us <= k.known_us
            WHERE x.kind = 'retraction'
            UNION ALL
            SELECT known_us, target_seq, NULL, NULL, NULL, seq, occurred_day
            FROM restorations
            WHERE nth = 1
            UNION ALL
            SELECT k.known_us, a.record_seq, NULL,
                   CASE WHEN a.outcome IN ('overturned', 'amended') AND a.decided_us <= k.known_us
                        THEN a.id END,
                   CASE WHEN a.deadline_us <= k.known_us
                             AND (a.decided_us IS NULL OR a.decided_us > k.known_us)
                        THEN a.id END,
                   NULL, NULL
            FROM ledger_appeals AS a
            JOIN knowledge AS k ON a.filed_us <= k.known_us
        ) AS u
        GROUP BY known_us, seq
        """,
    ),
    # Per evaluation: the scheme's policy and its horizon, the last day on
    # which an act has surely expired at t (t minus the longest expiry of any
    # rule the scheme counts). Acts on or before the horizon need none of the
    # clean-period or cap arithmetic below, which keeps a long ledger cheap.
    (
        "questions",
        """
        SELECT e.eval_id, e.scheme, e.as_of_day, e.known_us, p.rectification_days, p.positive_cap,
               p.default_expiry_days, e.as_of_day - MAX(COALESCE(c.expiry_days, p.default_expiry_days))
                 AS horizon_day
        FROM evaluations AS e
        JOIN catalog_policies AS p ON p.scheme = e.scheme
        JOIN catalog_visibility AS v ON v.scheme = e.scheme
        JOIN catalog_rules AS c ON c.rule_jurisdiction = v.rule_jurisdiction
        GROUP BY e.eval_id, e.scheme, e.as_of_day, e.known_us, p.rectification_days, p.positive_cap,
                 p.default_expiry_days
        """,
    ),
    # §1 candidates: incidents recorded at or before k, acted on or before t,
    # of a rule version defined at the scheme or above it. §3 the expiry day
    # E = act + the version's expiry (else the policy default). §2 void_code:
    # 0 standing, else the status code of the first cause that voids it
    # (1 retracted, 2 overturned, 3 suspended); void records are treated as
    # if never made. (One narrow column, not three wide ones, in the step
    # every later one reads.) One subject in one evaluation is one partition key.
    # lane: which arithmetic a record needs. 1: a standing adverse act after
    # the horizon (it may break, or be cleared by, a clean period); 2: a live
    # reward (standing, not expired, not cleared by a restoration: rewards
    # are never rectified by a clean period), which uses the yearly cap;
    # 0: neither (void, or expired, or a reward cleared by a restoration).
    (
        "judged",
        """
        SELECT x.*,
               CASE WHEN x.void_code = 0 AND x.points < 0 AND x.occurred_day > x.horizon_day THEN 1
                    WHEN x.void_code = 0 AND x.points > 0 AND x.expires_day > x.as_of_day
                         AND (x.restored_day IS NULL OR x.restored_day > x.as_of_day) THEN 2
                    ELSE 0 END AS lane
        FROM (
            SELECT q.eval_id, r.subject_id, q.eval_id * 4294967296 + r.subject_id AS subject_key,
                   r.seq, r.occurred_day, r.occurred_year, c.points, c.rectifiable,
                   CASE WHEN w.scheme IS NULL THEN 0 ELSE 1 END AS own,
                   r.occurred_day + COALESCE(c.expiry_days, q.default_expiry_days) AS expires_day,
                   f.retracted_by, f.overturned_by, f.suspended_by, f.restored_by, f.restored_day,
                   CASE WHEN f.retracted_by IS NOT NULL THEN 1 WHEN f.overturned_by IS NOT NULL THEN 2
                        WHEN f.suspended_by IS NOT NULL THEN 3 ELSE 0 END AS void_code,
                   q.as_of_day, q.horizon_day, q.rectification_days, q.positive_cap
            FROM ledger_records AS r
            JOIN catalog_rules AS c ON c.rule = r.rule AND c.rule_version = r.rule_version
            JOIN catalog_visibility AS v ON v.rule_jurisdiction = c.rule_jurisdiction
            JOIN questions AS q ON q.scheme = v.scheme
            LEFT JOIN effects AS f ON f.known_us = q.known_us AND f.seq = r.seq
            -- own: the act was recorded in the scheme's jurisdiction or within it
            -- (visibility read backwards: the scheme is an ancestor of the place)
            LEFT JOIN catalog_visibility AS w
              ON w.scheme = r.jurisdiction AND w.rule_jurisdiction = q.scheme
            WHERE r.kind = 'incident' AND r.recorded_us <= q.known_us AND r.occurred_day <= q.as_of_day
        ) AS x
        """,
    ),
    # §4 clean periods, over lane 1 in date order (ties: sequence number).
    # Acts on or before the horizon have expired at t, and an act can only
    # break the clean period of an earlier act, so leaving them out changes
    # no status. next_adverse_day equals the row's own day when another act
    # falls on the same day: only the last act of a day can start a clean
    # period, so same-day acts never break one.
    (
        "adverse_acts",
        """
        SELECT eval_id, seq, subject_key, occurred_day, rectification_days,
               LEAD(occurred_day) OVER (PARTITION BY subject_key ORDER BY occurred_day, seq)
                 AS next_adverse_day
        FROM judged
        WHERE lane = 1
        """,
    ),
    # An adverse act on day d is followed by a clean period when no standing
    # adverse act falls in (d, d + P]; that period ends on d + P. A record
    # acted on day a is rectified at the end of the first clean period that
    # follows an adverse act on or after a (its own act is one).
    (
        "clean_periods",
        """
        SELECT eval_id, seq,
               MIN(CASE WHEN next_adverse_day IS NULL
                             OR next_adverse_day > occurred_day + rectification_days
                        THEN occurred_day + rectification_days END) OVER (
                   PARTITION BY subject_key ORDER BY occurred_day, seq
                   ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING
               ) AS clean_day
        FROM adverse_acts
        """,
    ),
    # §5 the yearly cap, over lane 2: the live rewards of one calendar year
    # of the act, in date order (ties: sequence number); earlier_rewards is
    # what the cap has used before the row. (Cast to BIGINT: DuckDB's SUM is
    # 128-bit, which would make every candidate's counted points 128-bit.)
    (
        "capped_rewards",
        """
        SELECT eval_id, seq,
               CAST(COALESCE(SUM(points) OVER (
                   PARTITION BY subject_key, occurred_year ORDER BY occurred_day, seq
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
               ), 0) AS BIGINT) AS earlier_rewards
        FROM judged
        WHERE lane = 2
        """,
    ),
    # §3/§4 when a record stops counting. Expiry is final: a record past its
    # expiry is "expired" whatever happened before. Otherwise it is
    # "rectified" on the earlier of its restoration and (rectifiable rules
    # only) the end of its clean period; a tie names the restoration.
    (
        "ended",
        """
        SELECT x.*,
               CASE WHEN x.void_code > 0 THEN 0
                    WHEN x.expires_day <= x.as_of_day THEN 0
                    WHEN x.restored_day <= x.as_of_day THEN 0
                    WHEN x.rectifies_day <= x.as_of_day THEN 0
                    ELSE 1 END AS live,
               CASE WHEN x.restored_day IS NOT NULL
                         AND (x.rectifies_day IS NULL OR x.restored_day <= x.rectifies_day)
                    THEN x.restored_day ELSE x.rectifies_day END AS rectified_day
        FROM (
            -- Each lane takes what its own arithmetic found; no row is in two lanes.
            SELECT j.*, CASE WHEN j.rectifiable = 1 THEN cp.clean_day END AS rectifies_day,
                   0 AS earlier_rewards
            FROM judged AS j
            JOIN clean_periods AS cp ON cp.eval_id = j.eval_id AND cp.seq = j.seq
            WHERE j.lane = 1
            UNION ALL
            SELECT j.*, CAST(NULL AS INTEGER), cr.earlier_rewards
            FROM judged AS j
            JOIN capped_rewards AS cr ON cr.eval_id = j.eval_id AND cr.seq = j.seq
            WHERE j.lane = 2
            UNION ALL
            SELECT j.*, CAST(NULL AS INTEGER), 0
            FROM judged AS j
            WHERE j.lane = 0
        ) AS x
        """,
    ),
    # Every candidate record with its status, the points it counts, and why.
    # §5 a live reward counts until the year's cap is used; the one that
    # crosses it counts in part ("capped" either way). status_day: when a
    # record expired or was rectified; end_day: when a live record will stop
    # counting if nothing new happens. Status codes follow STATUSES.
    (
        "statuses",
        """
        SELECT s.*,
               CASE s.status_code WHEN 1 THEN 'retracted' WHEN 2 THEN 'overturned'
                    WHEN 3 THEN 'suspended' WHEN 4 THEN 'expired' WHEN 5 THEN 'rectified'
                    WHEN 6 THEN 'capped' ELSE 'counted' END AS status
        FROM (
            SELECT e.eval_id, e.subject_id, e.subject_key, e.seq, e.occurred_day, e.points, e.own,
                   CASE WHEN e.void_code > 0 THEN e.void_code
                        WHEN e.expires_day <= e.as_of_day THEN 4
                        WHEN e.live = 0 THEN 5
                        WHEN e.points > 0 AND e.earlier_rewards + e.points > e.positive_cap THEN 6
                        ELSE 7 END AS status_code,
                   CASE WHEN e.live = 0 THEN 0
                        WHEN e.points < 0 THEN e.points
                        WHEN e.earlier_rewards >= e.positive_cap THEN 0
                        WHEN e.earlier_rewards + e.points > e.positive_cap
                             THEN e.positive_cap - e.earlier_rewards
                        ELSE e.points END AS counted_points,
                   CASE WHEN e.void_code > 0 THEN NULL
                        WHEN e.expires_day <= e.as_of_day THEN e.expires_day
                        WHEN e.live = 0 THEN e.rectified_day END AS status_day,
                   CASE WHEN e.live = 0 THEN NULL
                        WHEN e.rectified_day IS NOT NULL AND e.rectified_day < e.expires_day
                             THEN e.rectified_day
                        ELSE e.expires_day END AS end_day,
                   e.expires_day, e.rectifies_day, e.restored_day,
                   COALESCE(e.retracted_by,
                            CASE WHEN e.void_code = 0 AND e.restored_day IS NOT NULL
                                      AND e.restored_day = e.rectified_day THEN e.restored_by END)
                     AS cause_seq,
                   COALESCE(e.overturned_by, e.suspended_by) AS cause_appeal
            FROM ended AS e
        ) AS s
        """,
    ),
    # The statuses with what a reader needs to recognise each record.
    (
        "explained",
        """
        SELECT s.*, q.scheme, r.rule, r.rule_version, r.recorded_us
        FROM statuses AS s
        JOIN ledger_records AS r ON r.seq = s.seq
        JOIN questions AS q ON q.eval_id = s.eval_id
        """,
    ),
    # §6 one row per subject with a candidate record: the clamped score and
    # how many records had each status. A subject is *scored* in the scheme
    # when at least one of its candidate records of an act recorded in the
    # scheme's jurisdiction (or within it) is not void: a national record of
    # an act in Hangzhou puts its subject in Hangzhou's scheme, not in
    # Rongcheng's, though national rules count in both.
    (
        "scores",
        """
        SELECT t.eval_id, q.scheme, t.subject_id,
               CAST(CASE WHEN p.base_score + t.total < p.floor_score THEN p.floor_score
                         WHEN p.base_score + t.total > p.ceiling_score THEN p.ceiling_score
                         ELSE p.base_score + t.total END AS INTEGER) AS score,
               CASE WHEN t.own_standing > 0 THEN 1 ELSE 0 END AS scored,
               t.counted, t.capped, t.expired,
               t.candidates - t.void - t.counted - t.capped - t.expired AS rectified, t.void
        FROM (
            -- One group per subject and question; the key splits back into both.
            -- Statuses are counted with COUNT, not summed as 0/1: DuckDB sums
            -- integers in 128 bits, which took the group-by 1.4 times as long.
            SELECT CAST(subject_key // 4294967296 AS INTEGER) AS eval_id,
                   CAST(subject_key - (subject_key // 4294967296) * 4294967296 AS BIGINT) AS subject_id,
                   CAST(SUM(counted_points) AS BIGINT) AS total,
                   CAST(COUNT(*) AS BIGINT) AS candidates,
                   COUNT(CASE WHEN status_code = 7 THEN 1 END) AS counted,
                   COUNT(CASE WHEN status_code = 6 THEN 1 END) AS capped,
                   COUNT(CASE WHEN status_code = 4 THEN 1 END) AS expired,
                   COUNT(CASE WHEN status_code <= 3 THEN 1 END) AS void,
                   COUNT(CASE WHEN status_code > 3 AND own = 1 THEN 1 END) AS own_standing
            FROM statuses
            GROUP BY subject_key
        ) AS t
        JOIN questions AS q ON q.eval_id = t.eval_id
        JOIN catalog_policies AS p ON p.scheme = q.scheme
        """,
    ),
    # §6 grade and rank, computed once per distinct score (a few hundred rows
    # per scheme), so no engine sorts every subject of a scheme in one
    # partition. grade: the band containing the score. rank: the share of
    # the scheme's scored subjects with a strictly lower score.
    (
        "histogram",
        """
        SELECT h.eval_id, h.score, b.grade,
               COALESCE(SUM(h.scored) OVER (
                   PARTITION BY h.eval_id ORDER BY h.score
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
               ), 0) AS below,
               SUM(h.scored) OVER (PARTITION BY h.eval_id) AS total
        FROM (
            SELECT eval_id, scheme, score, SUM(scored) AS scored
            FROM scores
            GROUP BY eval_id, scheme, score
        ) AS h
        JOIN catalog_bands AS b
          ON b.scheme = h.scheme AND h.score >= b.min_score
         AND (b.below_score IS NULL OR h.score < b.below_score)
        """,
    ),
    (
        "ranked",
        """
        SELECT s.eval_id, s.scheme, s.subject_id, s.score, h.grade,
               CASE WHEN s.scored = 1 THEN CAST(h.below AS DOUBLE) / CAST(h.total AS DOUBLE) END AS rank,
               s.scored, s.counted, s.capped, s.expired, s.rectified, s.void
        FROM scores AS s
        JOIN histogram AS h ON h.eval_id = s.eval_id AND h.score = s.score
        """,
    ),
)

STEPS: Final[Mapping[str, str]] = dict(_STEPS)
Output = Literal["statuses", "explained", "scores", "ranked"]
OUTPUTS: Final[tuple[Output, ...]] = ("statuses", "explained", "scores", "ranked")

_REF = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", re.IGNORECASE)


def _needs(name: str, provided: frozenset[str]) -> list[str]:
    """The steps ``name`` depends on, in definition order (``name`` last)."""
    wanted: set[str] = set()

    def visit(step: str) -> None:
        if step in wanted or step in provided or step in INPUTS:
            return
        wanted.add(step)
        for ref in _REF.findall(STEPS[step]):
            if ref in STEPS:
                visit(ref)

    visit(name)
    return [step for step in STEPS if step in wanted]


# ---------------------------------------------------------------------------
# Engine primitives: the only per-engine spellings. Each maps a column of a
# stored DATE or UTC TIMESTAMP to the integers the definition works with.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Primitives:
    #: days since 1970-01-01 of a DATE column
    epoch_day: str
    #: calendar year of a DATE column
    year: str
    #: microseconds since 1970-01-01T00:00Z of a UTC TIMESTAMP column
    epoch_us: str


PRIMITIVES: Final[Mapping[Dialect, Primitives]] = {
    "duckdb": Primitives(
        epoch_day="CAST(DATE_DIFF('day', DATE '1970-01-01', {0}) AS INTEGER)",
        year="CAST(YEAR({0}) AS INTEGER)",
        epoch_us="EPOCH_US({0})",
    ),
    "spark": Primitives(
        epoch_day="UNIX_DATE({0})",
        year="YEAR({0})",
        epoch_us="UNIX_MICROS({0})",
    ),
    "postgres": Primitives(
        epoch_day="({0} - DATE '1970-01-01')",
        year="CAST(EXTRACT(YEAR FROM {0}) AS INTEGER)",
        epoch_us="CAST(EXTRACT(EPOCH FROM {0}) * 1000000 AS BIGINT)",
    ),
    # SQLAlchemy stores DATE as 'YYYY-MM-DD' and a UTC DateTime as
    # 'YYYY-MM-DD HH:MM:SS.ffffff' (always six fraction digits). julianday of
    # a date is an exact .5 value, so the subtraction is exact.
    "sqlite": Primitives(
        epoch_day="CAST(julianday({0}) - 2440587.5 AS INTEGER)",
        year="CAST(substr({0}, 1, 4) AS INTEGER)",
        epoch_us=(
            "(CAST(strftime('%s', substr({0}, 1, 19)) AS INTEGER) * 1000000"
            " + CAST(substr({0} || '.000000', 21, 6) AS INTEGER))"
        ),
    ),
}


def records_adapter(dialect: Dialect, source: str, where: str | None = None) -> str:
    """``SELECT`` of ``ledger_records`` from a table with the ledger's own columns.

    ``source`` is a table name or any FROM item with columns ``seq, kind,
    subject_id, rule, rule_version, jurisdiction, occurred_on (DATE),
    recorded_at (UTC TIMESTAMP), target_seq`` -- the ``records`` table or its
    Parquet export.
    """
    p = PRIMITIVES[dialect]
    # Column expressions from PRIMITIVES; ``source`` and ``where`` come from
    # the engines (a table name, a file reader, an integer filter).
    sql = (
        "SELECT CAST(seq AS BIGINT) AS seq, kind, CAST(subject_id AS BIGINT) AS subject_id, "  # noqa: S608
        "rule, "
        "CAST(rule_version AS INTEGER) AS rule_version, jurisdiction, "
        f"{p.epoch_day.format('occurred_on')} AS occurred_day, "
        f"{p.year.format('occurred_on')} AS occurred_year, "
        f"{p.epoch_us.format('recorded_at')} AS recorded_us, "
        f"CAST(target_seq AS BIGINT) AS target_seq FROM {source}"
    )
    return sql if where is None else f"{sql} WHERE {where}"


def appeals_adapter(dialect: Dialect, source: str, where: str | None = None) -> str:
    """``SELECT`` of ``ledger_appeals`` from the ``appeals`` table or its export."""
    p = PRIMITIVES[dialect]
    sql = (  # as records_adapter
        "SELECT CAST(id AS BIGINT) AS id, CAST(record_seq AS BIGINT) AS record_seq, "  # noqa: S608
        f"{p.epoch_us.format('filed_at')} AS filed_us, "
        f"{p.epoch_us.format('deadline_at')} AS deadline_us, "
        f"{p.epoch_us.format('decided_at')} AS decided_us, outcome FROM {source}"
    )
    return sql if where is None else f"{sql} WHERE {where}"


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _transpile(neutral: str, dialect: Dialect) -> str:
    """sqlglot's translation, kept: it costs ~100 ms, and the online engine renders per request."""
    return str(sqlglot.transpile(neutral, read="duckdb", write=dialect, pretty=False)[0])


def render(
    output: Output,
    dialect: Dialect,
    *,
    inputs: Mapping[str, str] | None = None,
    provided: Sequence[str] = (),
    where: str | None = None,
) -> str:
    """The definition as one SQL statement for ``dialect``, selecting step ``output``.

    ``inputs`` maps input relation names to a ``SELECT`` already written in
    ``dialect`` (they become the first CTEs, e.g. the live-database adapters
    and literal catalog rows); names not given must exist as tables or views.
    ``provided`` names steps the engine already holds as tables (e.g. the
    ``scores`` of earlier passes, to rank them). ``where`` filters the final
    rows (neutral SQL over the output's columns).
    """
    chosen = _needs(output, frozenset(provided))
    body = ",\n".join(f"{name} AS ({STEPS[name].strip()})" for name in chosen)
    # The steps are this module's own text; ``where`` is the engines' filter.
    final = f"SELECT * FROM {output}" + (f" WHERE {where}" if where else "")  # noqa: S608
    neutral = f"WITH {body}\n{final}"
    rendered = _transpile(neutral, dialect)
    if not inputs:
        return rendered
    # Input CTEs go first. They are already in the target dialect (adapters
    # use PRIMITIVES), so they are spliced in as text rather than transpiled.
    prefix = ", ".join(f"{name} AS ({sql})" for name, sql in inputs.items())
    if not rendered.upper().startswith("WITH "):
        raise AssertionError("the definition always renders as a WITH statement")
    return f"WITH {prefix}, {rendered[5:]}"


@lru_cache(maxsize=65_536, typed=True)  # catalog rows are rendered per online score: keep them
def literal(value: object, dialect: Dialect) -> str:
    """A SQL literal for ``value`` (None, bool, int, str) in ``dialect``."""
    node: exp.Expr
    if value is None:
        node = exp.Null()
    elif isinstance(value, bool):
        node = exp.Literal.number(int(value))
    elif isinstance(value, int):
        node = exp.Literal.number(value)
    elif isinstance(value, str):
        node = exp.Literal.string(value)
    else:
        raise TypeError(f"no SQL literal for {type(value).__name__}")
    return node.sql(dialect=dialect)


def literal_relation(name: str, rows: Sequence[Sequence[object]], dialect: Dialect) -> str:
    """A ``SELECT`` producing ``rows`` typed as input relation ``name``.

    Used for the small catalog relations and the evaluations on the live
    database, where nothing can be registered as a table.
    """
    columns = INPUTS[name]
    types = {"VARCHAR": "VARCHAR", "INTEGER": "INTEGER", "BIGINT": "BIGINT"}
    casts = ", ".join(f"CAST(column{i + 1} AS {types[t]}) AS {c}" for i, (c, t) in enumerate(columns))
    if not rows:
        nulls = ", ".join(f"CAST(NULL AS {types[t]}) AS {c}" for c, t in columns)
        return f"SELECT {nulls} FROM (SELECT 1 AS one) AS empty WHERE 1 = 0"  # noqa: S608
    values = ", ".join("(" + ", ".join(literal(v, dialect) for v in row) + ")" for row in rows)
    # Every value went through ``literal`` (sqlglot quotes strings).
    return f"SELECT {casts} FROM (VALUES {values}) AS v"  # noqa: S608
