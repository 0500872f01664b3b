"""The rulebook: cases written as data (tests/scoring/cases/*.toml), checked on every engine.

Each case is a small ledger (records, retractions, restorations, appeals)
and a list of expectations: "as of t, as known at k, subject s scores N,
grade G, and record r has status X". The same case runs through the online
engine on SQLite and on PostgreSQL (``db`` fixture) and through DuckDB over
the Parquet export of that database. docs/scoring.md explains the format.

A case file::

    scheme = "CN-ZJ"
    [[records]]                      # ref, rule, on; optional subject, kind, target
    ref = "a"                        # (retraction/restoration), recorded, jurisdiction
    rule = "CN-ZJ.FALSE-LICENSING-MATERIALS"
    on = 2024-01-10
    [[expect]]                       # as_of; optional known_at, subject, scheme,
    as_of = 2025-01-09               # score, grade, rank, scored, status, forecast
    score = 1000
    status = { a = "rectified on 2025-01-09 after a clean period of 365 days" }
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from ledgers import LedgerBuilder

from credo.catalog.registry import Registry
from credo.ledger.export import export_ledger
from credo.scoring.batch import rescore_parquet
from credo.scoring.online import score_subject
from credo.scoring.relations import Evaluation
from credo.store.db import Database

CASES = Path(__file__).parent / "cases"
#: When a case does not say: everything in the ledger is known.
EVERYTHING_KNOWN = datetime(2100, 1, 1, tzinfo=UTC)


def _cases() -> Iterator[Any]:
    for path in sorted(CASES.glob("*.toml")):
        yield pytest.param(path, id=path.stem)


def _instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def build(case: dict[str, Any], catalogs: Registry) -> LedgerBuilder:
    """The case's ledger, with each record judged by the rule version in force on its day."""
    b = LedgerBuilder()
    for r in case.get("records", []):
        kind = r.get("kind", "incident")
        recorded = None if "recorded" not in r else _instant(r["recorded"])
        if kind == "incident":
            on = r["on"]
            version = catalogs.rule(r["rule"], on)
            assert version is not None, f"{r['rule']} is not in force on {on}"
            b.incident(r["ref"], r["rule"], on, subject=r.get("subject", "alice"), recorded_at=recorded,
                       version=version.version, jurisdiction=r.get("jurisdiction"))
        elif kind == "retraction":
            b.retraction(r["ref"], r["target"], r["on"], recorded_at=recorded)
        elif kind == "restoration":
            b.restoration(r["ref"], r["target"], r["on"], recorded_at=recorded)
        else:
            raise AssertionError(f"unknown kind {kind!r}")
    for a in case.get("appeals", []):
        b.appeal(
            a["record"], filed_at=_instant(a["filed"]), deadline_at=_instant(a["deadline"]),
            decided_at=None if "decided" not in a else _instant(a["decided"]), outcome=a.get("outcome"),
            ref=a.get("ref"),
        )
    return b


def _expectations(case: dict[str, Any]) -> Iterator[tuple[str, str, date, datetime, dict[str, Any]]]:
    for e in case["expect"]:
        yield (
            e.get("scheme", case["scheme"]),
            e.get("subject", "alice"),
            e["as_of"],
            _instant(e.get("known_at", EVERYTHING_KNOWN)),
            e,
        )


def _reason(text: str, refs: dict[str, int]) -> str:
    return text.format(**{k: str(v) for k, v in refs.items()})


@pytest.mark.parametrize("path", list(_cases()))
def test_case_online(path: Path, db: Database, catalogs: Registry) -> None:
    case = tomllib.loads(path.read_text())
    b = build(case, catalogs)
    with db.begin() as conn:
        b.write(conn, catalogs)
        for scheme, subject, as_of, known_at, e in _expectations(case):
            where = f"{path.stem}: {subject} in {scheme} as of {as_of} known at {known_at:%Y-%m-%d %H:%M}"
            report = score_subject(conn, catalogs, b.subjects[subject], scheme, as_of=as_of,
                                   known_at=known_at)
            if "score" in e:
                assert report.score == e["score"], where
            if "grade" in e:
                assert report.grade == e["grade"], where
            if "rank" in e:
                assert report.rank == pytest.approx(e["rank"]), where
            if "scored" in e:
                assert report.scored is e["scored"], where
            by_seq = {r.seq: r for r in report.records}
            for ref, expected in e.get("status", {}).items():
                seq = b.refs[ref]
                if expected == "absent":
                    assert seq not in by_seq, f"{where}: {ref} should not be a candidate"
                    continue
                assert seq in by_seq, f"{where}: {ref} is not a candidate"
                assert by_seq[seq].reason(report.policy) == _reason(expected, b.refs), f"{where}: {ref}"
            if "forecast" in e:  # the next changes, in order (later ones may follow)
                wanted = [_reason(s, b.refs) for s in e["forecast"]]
                assert [c.sentence() for c in report.forecast][: len(wanted)] == wanted, where


@pytest.mark.parametrize("path", list(_cases()))
def test_case_duckdb(path: Path, db: Database, catalogs: Registry, tmp_path: Path) -> None:
    """The same expectations from DuckDB over the Parquet export of the same database."""
    case = tomllib.loads(path.read_text())
    b = build(case, catalogs)
    with db.begin() as conn:
        b.write(conn, catalogs)
        export_ledger(conn, catalogs, tmp_path / "export", buckets=3)
    wanted = list(_expectations(case))
    evals = [Evaluation(i + 1, s, t, k) for i, (s, _, t, k, _) in enumerate(wanted)]
    rows = {(r["eval_id"], r["subject_id"]): r for r in rescore_parquet(tmp_path / "export", evals,
                                                                         with_eval=True).to_pylist()}
    for (scheme, subject, as_of, _, e), ev in zip(wanted, evals, strict=True):
        where = f"{path.stem}: {subject} in {scheme} as of {as_of}"
        row = rows.get((ev.eval_id, b.subjects[subject]))
        if e.get("scored", True) is False:
            assert row is None, f"{where}: a batch lists scored subjects only"
            continue
        assert row is not None, where
        for key in ("score", "grade"):
            if key in e:
                assert row[key] == e[key], where
        if "rank" in e:
            assert row["rank"] == pytest.approx(e["rank"]), where
