"""Policy what-if: the ledger scored and listed under a draft catalog and under the one in force.

A **draft** is one catalog file (TOML, the format of ``catalogs/``). Its
``jurisdiction.code`` picks the catalog it replaces; every other catalog in
force stays as it is. The draft is parsed, validated and guarded exactly like
a shipped file (:func:`credo.catalog.registry.parse_catalog`), then checked
against the other files (:func:`credo.catalog.registry.build_registry`); any
error refuses it (:class:`DraftError`, each error naming the field).

Both catalogs then ask the same questions of the same ledger ("every scheme
on date t as known at k"), on one batch engine (:mod:`credo.scoring.batch`,
DuckDB or Spark, executing the one definition of a score), and the lists
each would produce are derived by the planning functions of
:mod:`credo.lists.derive` from an empty registry of listings -- so a list
here means "would be listed" (rule trigger, or grade) or, for a blacklist
entered by grade, "would be warned, then listed if the grade stays".
Nothing is restated: scores, grades, listings and measures come from the
same code the registry runs.

The comparison has one row per subject and scheme the subject is scored in
under either catalog (:class:`Change`); summaries count subjects (a subject
scored in several schemes counts once overall) and break down by scheme and
by subject kind (:meth:`WhatIf.summary`).

**Disparity.** Each subject gets a region code (a person's: the first six
digits of the resident identity number, where the number was issued; an
organisation's: characters 3-8 of its Unified Social Credit Code, where it
was registered; foreign subjects have none) and, for persons, an age band
on the as-of date. For each dimension and each of two outcomes -- *changed*
(a grade or a list membership changed) and *worsened* (a grade fell, a
blacklist was entered, the worst list became more severe -- watch, then
black -- or a red list was left) -- the share of subjects with
that outcome is computed per group and compared with the share among every
other subject that has a value in that dimension. A group is **flagged** when
at least :data:`DISPARITY_MIN_AFFECTED` of its subjects have the outcome and
its share is at least :data:`DISPARITY_RATIO` times the rest's (or the rest
has none at all). This is a screening rule, not a significance test; the
figures are in every flag. These traits are read for this report only:
no rule may score them (docs/catalogs.md, the guard).

>>> age_band(date(1990, 6, 1), date(2024, 5, 31)), age_band(date(2010, 1, 1), date(2024, 1, 1))
('25-34', '0-17')
>>> subject_traits("organisation", "91371082MA3C00000X")
('371082', None)
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, select
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from credo.catalog.errors import CatalogError
from credo.catalog.registry import Registry, build_registry, parse_catalog
from credo.ledger.export import export_ledger, ledger_tables
from credo.lists.derive import TriggerState, plan_grade_listings, plan_rule_listings
from credo.lists.refresh import trigger_rules
from credo.scoring.batch import DuckDBOptions, Outcome, outcome_arrow, outcome_spark
from credo.scoring.relations import ask, catalog_relations, from_day
from credo.store.tables import subjects

#: A group is flagged when its share of subjects with an outcome is at least
#: this many times the share among all other subjects (of that dimension)...
DISPARITY_RATIO: Final = 2.0
#: ...and at least this many of its subjects have the outcome.
DISPARITY_MIN_AFFECTED: Final = 5
#: Age bands of persons on the as-of date: (lowest age, label), youngest first.
AGE_BANDS: Final[tuple[tuple[int, str], ...]] = (
    (0, "0-17"),
    (18, "18-24"),
    (25, "25-34"),
    (35, "35-44"),
    (45, "45-54"),
    (55, "55-64"),
    (65, "65+"),
)
#: The outcomes whose shares the disparity check compares.
OUTCOMES: Final[tuple[str, ...]] = ("changed", "worsened")
#: The label of "no grade" (not scored in that scheme) in transition matrices.
UNSCORED: Final = "-"

Engine = Literal["duckdb", "spark"]
GradeMove = Literal["same", "worse", "better", "scored", "unscored"]
Step = Callable[[str], None]


# ---------------------------------------------------------------------------
# The draft
# ---------------------------------------------------------------------------


class DraftError(ValueError):
    """A draft catalog refused: every error, each naming the file, where and the field."""

    def __init__(self, errors: Sequence[CatalogError]) -> None:
        self.errors = list(errors)
        super().__init__("draft catalog refused:\n" + "\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class Draft:
    """The catalogs with a draft in force in place of its jurisdiction's catalog."""

    name: str
    jurisdiction: str
    registry: Registry


def apply_draft(current: Registry, text: str, name: str) -> Draft:
    """The registry ``current`` with the draft ``text`` replacing its jurisdiction's file.

    Raises :class:`DraftError` when the draft fails validation or the guard
    on its own, names a jurisdiction that has no catalog in force, or does
    not fit the other catalogs.
    """
    draft, errors = parse_catalog(text, name)
    if draft is None:
        raise DraftError(errors)
    code = draft.jurisdiction.code
    if current.jurisdiction(code) is None:
        known = ", ".join(j.code for j in current.jurisdictions())
        raise DraftError([
            CatalogError(
                name,
                "jurisdiction",
                f"jurisdiction.code: {code} has no catalog in force to replace (a draft replaces "
                f"the catalog of its own jurisdiction; in force: {known})",
            )
        ])
    files = [(f"{f.jurisdiction.code} (in force)", f) for f in current.files() if f.jurisdiction.code != code]
    registry, errors = build_registry([*files, (name, draft)])
    if registry is None:
        raise DraftError(errors)
    return Draft(name, code, registry)


# ---------------------------------------------------------------------------
# Subjects' traits (for the disparity check only)
# ---------------------------------------------------------------------------


def subject_traits(kind: str, identifier: str) -> tuple[str | None, date | None]:
    """(region code, birth date) read from an identifier; ``None`` where it has none."""
    if kind == "person" and len(identifier) == 18:
        try:
            born: date | None = ric.get_birth_date(identifier)
        except ValidationError:
            born = None
        return identifier[:6], born
    if kind == "organisation" and len(identifier) == 18:
        return identifier[2:8], None
    return None, None


def age_band(born: date | None, on: date) -> str | None:
    """The :data:`AGE_BANDS` label of someone born on ``born``, on ``on``."""
    if born is None:
        return None
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    label = AGE_BANDS[0][1]
    for lowest, name in AGE_BANDS:
        if age >= lowest:
            label = name
    return label


@dataclass(frozen=True)
class Subject:
    id: int
    kind: str
    identifier: str
    region_code: str | None
    age_band: str | None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.identifier}"


def load_subjects(conn: Connection, ids: Iterable[int], on: date) -> dict[int, Subject]:
    out: dict[int, Subject] = {}
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), 900):
        q = select(subjects.c.id, subjects.c.kind, subjects.c.identifier).where(
            subjects.c.id.in_(wanted[i : i + 900])
        )
        for row in conn.execute(q):
            region, born = subject_traits(row.kind, row.identifier)
            out[row.id] = Subject(row.id, row.kind, row.identifier, region, age_band(born, on))
    return out


# ---------------------------------------------------------------------------
# One catalog's view of the ledger
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Side:
    """Scores, grades and would-be lists of every subject under one catalog."""

    registry: Registry
    #: (subject, scheme) -> (score, grade), scored subjects only
    graded: Mapping[tuple[int, str], tuple[int, str]]
    #: (subject, scheme) -> codes of the lists the subject would be on, entered in that scheme
    lists: Mapping[tuple[int, str], frozenset[str]]

    def measures(self, lists: Iterable[str]) -> frozenset[str]:
        out: set[str] = set()
        for code in lists:
            definition = self.registry.list(code)
            if definition is not None:
                out.update(m.measure for m in definition.measures)
        return frozenset(out)


def side(registry: Registry, outcome: Outcome, today: date) -> Side:
    """Grades from the scores, lists from :mod:`credo.lists.derive` with nothing on file yet."""
    s = outcome.scores
    graded = {
        (subject, scheme): (score, grade)
        for subject, scheme, score, grade in zip(
            s.column("subject_id").to_pylist(),
            s.column("scheme").to_pylist(),
            s.column("score").to_pylist(),
            s.column("grade").to_pylist(),
            strict=True,
        )
    }
    triggers = [
        TriggerState(row["seq"], row["subject_id"], row["rule"], from_day(row["occurred_day"]), row["status"])
        for row in outcome.statuses.to_pylist()
        if registry.rule_versions(row["rule"]) and row["scheme"] == registry.rule_jurisdiction(row["rule"])
    ]
    by_rule = plan_rule_listings(registry, today, triggers, [])
    by_grade = plan_grade_listings(registry, today, {k: g for k, (_, g) in graded.items()}, [], [])
    lists: dict[tuple[int, str], set[str]] = defaultdict(set)
    for listing in (*by_rule.open, *by_grade.open):
        lists[listing.subject_id, listing.scheme].add(listing.list_code)
    for warning in by_grade.warn:
        lists[warning.subject_id, warning.scheme].add(warning.list_code)
    return Side(registry, graded, {k: frozenset(v) for k, v in lists.items()})


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One subject in one scheme, under the catalog in force and under the draft."""

    subject: Subject
    scheme: str
    score_before: int | None
    grade_before: str | None
    score_after: int | None
    grade_after: str | None
    grade_move: GradeMove
    lists_before: frozenset[str]
    lists_after: frozenset[str]
    measures_before: frozenset[str]
    measures_after: frozenset[str]

    @property
    def differs(self) -> bool:
        """Anything differs: the score, the grade or the lists (a row of ``--out``)."""
        return (
            self.score_before != self.score_after
            or self.grade_before != self.grade_after
            or self.lists_before != self.lists_after
        )

    def as_row(self) -> dict[str, Any]:
        return {
            "subject_id": self.subject.id,
            "subject": self.subject.ref,
            "kind": self.subject.kind,
            "scheme": self.scheme,
            "region_code": self.subject.region_code,
            "age_band": self.subject.age_band,
            "score_before": self.score_before,
            "grade_before": self.grade_before,
            "score_after": self.score_after,
            "grade_after": self.grade_after,
            "grade_move": self.grade_move,
            "lists_before": sorted(self.lists_before),
            "lists_after": sorted(self.lists_after),
            "lists_entered": sorted(self.lists_after - self.lists_before),
            "lists_left": sorted(self.lists_before - self.lists_after),
            "measures_gained": sorted(self.measures_after - self.measures_before),
            "measures_lost": sorted(self.measures_before - self.measures_after),
        }


#: Columns of the ``--out`` Parquet file, one row per differing (subject, scheme).
PARQUET_SCHEMA: Final = pa.schema(
    [
        ("subject_id", pa.int64()),
        ("subject", pa.string()),
        ("kind", pa.string()),
        ("scheme", pa.string()),
        ("region_code", pa.string()),
        ("age_band", pa.string()),
        ("score_before", pa.int32()),
        ("grade_before", pa.string()),
        ("score_after", pa.int32()),
        ("grade_after", pa.string()),
        ("grade_move", pa.string()),
        ("lists_before", pa.list_(pa.string())),
        ("lists_after", pa.list_(pa.string())),
        ("lists_entered", pa.list_(pa.string())),
        ("lists_left", pa.list_(pa.string())),
        ("measures_gained", pa.list_(pa.string())),
        ("measures_lost", pa.list_(pa.string())),
    ]
)


def _grade_move(before: Side, after: Side, scheme: str, a: str | None, b: str | None) -> GradeMove:
    if a is None:
        return "same" if b is None else "scored"
    if b is None:
        return "unscored"
    # Each side's own bands, best first: renamed bands compare by position.
    ra = before.registry.policy(scheme).grades.index(a)
    rb = after.registry.policy(scheme).grades.index(b)
    return "worse" if rb > ra else "better" if rb < ra else "same"


def compare(before: Side, after: Side, people: Mapping[int, Subject]) -> list[Change]:
    """One :class:`Change` per subject and scheme scored or listed under either catalog."""
    keys = sorted(set(before.graded) | set(after.graded) | set(before.lists) | set(after.lists))
    none: frozenset[str] = frozenset()
    out = []
    for subject_id, scheme in keys:
        sb, gb = before.graded.get((subject_id, scheme), (None, None))
        sa, ga = after.graded.get((subject_id, scheme), (None, None))
        lb = before.lists.get((subject_id, scheme), none)
        la = after.lists.get((subject_id, scheme), none)
        person = people.get(subject_id) or Subject(subject_id, "unknown", str(subject_id), None, None)
        out.append(
            Change(
                person, scheme, sb, gb, sa, ga, _grade_move(before, after, scheme, gb, ga),
                lb, la, before.measures(lb), after.measures(la),
            )
        )
    return out


@dataclass
class _Outcome:
    """One subject's outcome over a group of its rows (a scheme, or all of them)."""

    subject: Subject
    lists_before: set[str] = field(default_factory=set)
    lists_after: set[str] = field(default_factory=set)
    measures_before: set[str] = field(default_factory=set)
    measures_after: set[str] = field(default_factory=set)
    score_changed: bool = False
    grade_changed: bool = False
    grade_worse: bool = False
    grade_better: bool = False

    def add(self, c: Change) -> None:
        self.lists_before |= c.lists_before
        self.lists_after |= c.lists_after
        self.measures_before |= c.measures_before
        self.measures_after |= c.measures_after
        self.score_changed |= c.score_before != c.score_after
        self.grade_changed |= c.grade_before != c.grade_after
        self.grade_worse |= c.grade_move == "worse"
        self.grade_better |= c.grade_move == "better"

    def outcomes(self, kinds: Mapping[str, str]) -> dict[str, bool]:
        """changed: a grade or a list; worsened: a grade fell, a blacklist was entered, the
        worst list is more severe (watch, then black) or a red list was left; improved: the
        reverse. Moving from the watch list to a blacklist only worsens."""

        def on(lists: set[str], kind: str) -> set[str]:
            return {c for c in lists if kinds.get(c) == kind}

        def severity(lists: set[str]) -> int:
            return 2 if on(lists, "black") else 1 if on(lists, "watch") else 0

        was, now = self.lists_before, self.lists_after
        return {
            "changed": self.grade_changed or was != now,
            "worsened": self.grade_worse
            or severity(now) > severity(was)
            or bool(on(now, "black") - was)
            or bool(on(was, "red") - now),
            "improved": self.grade_better
            or severity(now) < severity(was)
            or bool(on(was, "black") - now)
            or bool(on(now, "red") - was),
        }


def _by_subject(rows: Iterable[Change]) -> dict[int, _Outcome]:
    out: dict[int, _Outcome] = {}
    for c in rows:
        out.setdefault(c.subject.id, _Outcome(c.subject)).add(c)
    return out


def _tally(rows: Sequence[Change], kinds: Mapping[str, str]) -> dict[str, Any]:
    """Counts of one group of rows; lists and measures per subject (union over its schemes)."""
    people = _by_subject(rows)
    outcomes = [p.outcomes(kinds) for p in people.values()]
    transitions: dict[str, Counter[str]] = defaultdict(Counter)
    for c in rows:
        transitions[c.grade_before or UNSCORED][c.grade_after or UNSCORED] += 1
    lists: dict[str, Counter[str]] = defaultdict(Counter)
    measures: dict[str, Counter[str]] = defaultdict(Counter)
    for p in people.values():
        for code in p.lists_before | p.lists_after:
            was, now = code in p.lists_before, code in p.lists_after
            lists[code].update(before=int(was), after=int(now), entries=int(now > was), exits=int(was > now))
        for code in p.measures_before ^ p.measures_after:
            measures[code].update(gained=int(code in p.measures_after), lost=int(code in p.measures_before))
    return {
        "subjects": len(people),
        "rows": len(rows),
        "score_changed": sum(p.score_changed for p in people.values()),
        "grade_changed": sum(p.grade_changed for p in people.values()),
        **{name: sum(o[name] for o in outcomes) for name in ("changed", "worsened", "improved")},
        "transitions": {b: dict(sorted(a.items())) for b, a in sorted(transitions.items())},
        "lists": {
            code: {k: c[k] for k in ("before", "after", "entries", "exits")}
            for code, c in sorted(lists.items())
        },
        "measures": {code: {k: c[k] for k in ("gained", "lost")} for code, c in sorted(measures.items())},
    }


def _rate(n: int, d: int) -> float:
    return round(n / d, 6) if d else 0.0


def disparity(rows: Sequence[Change], kinds: Mapping[str, str]) -> dict[str, Any]:
    """Shares of subjects with each outcome per region code and age band, and the flags."""
    people = [(p.subject, p.outcomes(kinds)) for p in _by_subject(rows).values()]
    result: dict[str, Any] = {
        "rule": {
            "ratio": DISPARITY_RATIO,
            "min_affected": DISPARITY_MIN_AFFECTED,
            "outcomes": list(OUTCOMES),
            "text": (
                f"a group is flagged when at least {DISPARITY_MIN_AFFECTED} of its subjects have "
                f"the outcome and its share is at least {DISPARITY_RATIO:g} times the share among "
                "all other subjects with a value in that dimension (or they have none)"
            ),
        },
        "flags": [],
    }
    for dimension in ("region_code", "age_band"):
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for subject, outcome in people:
            label: str | None = getattr(subject, dimension)
            if label is not None:
                groups[label].update(subjects=1, **{k: int(outcome[k]) for k in OUTCOMES})
        total: Counter[str] = Counter()
        for c in groups.values():
            total.update(c)
        table = []
        for label, c in sorted(groups.items()):
            entry: dict[str, Any] = {"group": label, "subjects": c["subjects"]}
            for outcome_name in OUTCOMES:
                entry[outcome_name] = c[outcome_name]
                entry[f"{outcome_name}_rate"] = _rate(c[outcome_name], c["subjects"])
                flag = _flag(dimension, label, outcome_name, c, total)
                if flag is not None:
                    result["flags"].append(flag)
            table.append(entry)
        result[dimension] = table
    return result


def _flag(
    dimension: str, label: str, outcome: str, group: Counter[str], total: Counter[str]
) -> dict[str, Any] | None:
    affected, n = group[outcome], group["subjects"]
    rest_affected, rest_n = total[outcome] - affected, total["subjects"] - n
    rate, rest = _rate(affected, n), _rate(rest_affected, rest_n)
    if affected < DISPARITY_MIN_AFFECTED or rest_n == 0:
        return None
    if rest > 0 and rate < DISPARITY_RATIO * rest:
        return None
    ratio = round(rate / rest, 2) if rest > 0 else None
    what = "region code" if dimension == "region_code" else "age band"
    times = f"{ratio:g} times as often" if ratio is not None else "and nowhere else"
    return {
        "dimension": dimension,
        "group": label,
        "outcome": outcome,
        "affected": affected,
        "subjects": n,
        "rate": rate,
        "rest_affected": rest_affected,
        "rest_subjects": rest_n,
        "rest_rate": rest,
        "ratio": ratio,
        "message": (
            f"{what} {label}: {affected} of {n} subjects {outcome} ({rate:.1%}), against "
            f"{rest_affected} of {rest_n} ({rest:.1%}) in the others -- {times}"
        ),
    }


# ---------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------


@dataclass
class WhatIf:
    """The comparison and what it was asked: :meth:`summary` is the ``--json`` document."""

    draft: Draft
    current: Registry
    engine: Engine
    as_of: dict[str, date]
    known_at: datetime
    today: date
    changes: list[Change]
    timings: dict[str, float] = field(default_factory=dict)

    def list_kinds(self) -> dict[str, str]:
        kinds: dict[str, str] = {}
        for registry in (self.current, self.draft.registry):
            for j in registry.jurisdictions():
                kinds.update((lst.code, lst.kind) for lst in registry.lists_for(j.code))
        return kinds

    def grade_order(self) -> list[str]:
        """Every grade name, best first as the schemes order them, then :data:`UNSCORED`."""
        seen: dict[str, None] = {}
        for registry in (self.current, self.draft.registry):
            for j in registry.jurisdictions():
                seen.update(dict.fromkeys(registry.policy(j.code).grades))
        return [*seen, UNSCORED]

    def summary(self) -> dict[str, Any]:
        kinds = self.list_kinds()
        by_scheme: dict[str, list[Change]] = defaultdict(list)
        by_kind: dict[str, list[Change]] = defaultdict(list)
        for c in self.changes:
            by_scheme[c.scheme].append(c)
            by_kind[c.subject.kind].append(c)
        return {
            "draft": {
                "file": self.draft.name,
                "jurisdiction": self.draft.jurisdiction,
                "digest_in_force": self.current.digest,
                "digest_draft": self.draft.registry.digest,
            },
            "engine": self.engine,
            "as_of": sorted({d.isoformat() for d in self.as_of.values()}),
            "known_at": self.known_at.isoformat(),
            "grades": self.grade_order(),
            **_tally(self.changes, kinds),
            "differing_rows": sum(c.differs for c in self.changes),
            "by_scheme": {k: _tally(v, kinds) for k, v in sorted(by_scheme.items())},
            "by_kind": {k: _tally(v, kinds) for k, v in sorted(by_kind.items())},
            "disparity": disparity(self.changes, kinds),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }


def write_changes(result: WhatIf, path: Path) -> int:
    """The differing rows as Parquet (:data:`PARQUET_SCHEMA`); returns how many."""
    rows = [c.as_row() for c in result.changes if c.differs]
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), path)
    return len(rows)


def _quiet(_: str) -> None:
    return None


class _Clock:
    def __init__(self, step: Step) -> None:
        self.step = step
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.step(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = time.perf_counter() - started


def run_whatif(
    conn: Connection,
    current: Registry,
    draft: Draft,
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
    engine: Engine = "duckdb",
    spark: Any = None,
    options: DuckDBOptions | None = None,
    step: Step = _quiet,
) -> WhatIf:
    """Score and list the whole ledger under both catalogs and compare.

    Every scheme is asked on ``as_of`` (default: today in its timezone) as
    known at ``known_at`` (default: now). ``engine="spark"`` needs a running
    ``spark`` session; the live ledger is exported to a temporary folder for
    it. ``step`` is called with the name of each long step as it starts.
    """
    schemes = [j.code for j in current.jurisdictions()]
    evals = ask(current, schemes, as_of=as_of, known_at=known_at)
    today = evals[0].as_of
    rules = sorted(trigger_rules(current) | trigger_rules(draft.registry))
    catalogs = (catalog_relations(current), catalog_relations(draft.registry))
    clock = _Clock(step)
    outcomes: list[Outcome] = []
    if engine == "duckdb":
        with clock("reading the ledger"):
            records, appeals = ledger_tables(conn)
        for name, catalog in zip(("the catalog in force", "the draft"), catalogs, strict=True):
            with clock(f"scoring under {name} (duckdb)"):
                outcome = outcome_arrow(records, appeals, catalog, evals, rules, options or DuckDBOptions())
                outcomes.append(outcome)
    else:
        if spark is None:
            raise ValueError("engine spark needs a SparkSession")
        with tempfile.TemporaryDirectory(prefix="credo-whatif-") as tmp:
            with clock("exporting the ledger for Spark"):
                export_ledger(conn, current, Path(tmp) / "ledger")
            for name, catalog in zip(("the catalog in force", "the draft"), catalogs, strict=True):
                with clock(f"scoring under {name} (spark)"):
                    outcomes.append(outcome_spark(spark, Path(tmp) / "ledger", catalog, evals, rules))
    with clock("deriving lists"):
        before = side(current, outcomes[0], today)
        after = side(draft.registry, outcomes[1], today)
    with clock("comparing"):
        ids = {s for s, _ in (*before.graded, *after.graded, *before.lists, *after.lists)}
        changes = compare(before, after, load_subjects(conn, ids, as_of or today))
    return WhatIf(
        draft=draft,
        current=current,
        engine=engine,
        as_of={e.scheme: e.as_of for e in evals},
        known_at=evals[0].known_at,
        today=today,
        changes=changes,
        timings=clock.timings,
    )
