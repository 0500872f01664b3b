"""The online rank: score_subject with and without the rank cache, on the configured registry.

    CREDO_DATABASE_URL=... .venv/bin/python bench/online_rank.py [--repeat 5] [--scheme CODE]

Picks the scheme with the most scored subjects (or --scheme) and the subject
with the most records in it, then times ``score_subject`` (explanation,
rank, forecast: what `credo score` and GET /api/v1/subjects/{id}/score do):

0. without the rank (explanation and forecast only), the floor;
1. slow path (no cache): the whole scheme in one statement, first and warm;
2. with a ``RankCache``: the first call (builds the entry) and warm calls;
3. after ingesting one record for another subject (through the ledger's
   ingest, so it writes to the registry): the first call, then warm again;
4. the rank alone: a build by DuckDB and by the live SQL statement, then
   ``RankCache.rank`` for every scored subject of the scheme (each checked
   against the whole-scheme statement's rank).

Every cached rank is checked against the slow path's. Times are medians of
--repeat calls (the first calls are single).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from credo.ledger.services import ingest
from credo.runtime import Runtime
from credo.scoring.online import ScoreReport, run_live, score_subject
from credo.scoring.rank import RankCache
from credo.scoring.relations import ask
from credo.store.tables import records, subjects


def timed(call: Callable[[], ScoreReport]) -> tuple[float, ScoreReport]:
    start = time.perf_counter()
    report = call()
    return time.perf_counter() - start, report


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scheme")
    args = parser.parse_args()
    runtime = Runtime.open()
    catalogs = runtime.catalogs
    with runtime.db.read() as conn:
        schemes = [args.scheme] if args.scheme else [j.code for j in catalogs.jurisdictions()]
        sizes = {}
        for question in ask(catalogs, schemes):
            rows = run_live(conn, catalogs, "scores", [question])
            sizes[question.scheme] = sum(int(r["scored"]) for r in rows)
        scheme = max(sizes, key=lambda s: sizes[s])
        owners = [
            r for r in catalogs.rules_for_scheme(scheme) if catalogs.rule_jurisdiction(r.code) == scheme
        ]
        by_count = (
            select(records.c.subject_id)
            .where(records.c.rule.in_([r.code for r in owners]), records.c.kind == "incident")
            .group_by(records.c.subject_id)
            .order_by(func.count().desc())
            .limit(2)
        )
        subject, other = conn.execute(by_count).scalars().all()
        ledger = conn.execute(select(func.count()).select_from(records)).scalar_one()
        people = conn.execute(select(func.count()).select_from(subjects)).scalar_one()

    cache = RankCache()
    out: dict[str, Any] = {
        "database": runtime.db.dialect,
        "subjects": people,
        "records": ledger,
        "scheme": scheme,
        "scored_in_scheme": sizes[scheme],
        "subject": subject,
    }

    def score(ranks: RankCache | None) -> Callable[[], ScoreReport]:
        def call() -> ScoreReport:
            with runtime.db.read() as conn:
                return score_subject(conn, catalogs, subject, scheme, ranks=ranks)

        return call

    def series(name: str, ranks: RankCache | None, expect: float | None) -> None:
        first, report = timed(score(ranks))
        warm = []
        for _ in range(args.repeat):
            took, again = timed(score(ranks))
            warm.append(took)
            assert again.rank == report.rank
        assert expect is None or report.rank == expect, (report.rank, expect)
        out[name] = {"first_s": round(first, 3), "warm_median_s": round(statistics.median(warm), 3),
                     "rank": report.rank}

    def bare() -> ScoreReport:
        with runtime.db.read() as conn:
            return score_subject(conn, catalogs, subject, scheme, with_rank=False)

    floor = statistics.median(timed(bare)[0] for _ in range(args.repeat))
    out["without_rank_warm_median_s"] = round(floor, 3)
    slow_first, slow = timed(score(None))
    series("slow_path", None, slow.rank)
    out["slow_path"]["first_s"] = round(slow_first, 3)
    series("cache", cache, slow.rank)

    # One new record for another subject of the scheme, through the ledger's ingest.
    with runtime.db.read() as conn:
        row = conn.execute(select(subjects.c.kind, subjects.c.identifier).where(subjects.c.id == other)).one()
    rule = next(r for r in owners if r.points < 0)
    today = datetime.now(UTC).astimezone(runtime.zone).date()
    with runtime.db.begin() as conn:
        item = {
            "agency_ref": f"bench-online-rank-{time.time_ns()}",
            "subject_kind": row.kind,
            "subject": row.identifier,
            "rule": rule.code,
            "occurred_on": today.isoformat(),
            "evidence": "bench",
        }
        ingest(conn, catalogs, runtime.log, rule.agencies[0], [item], source="bench/online_rank.py")
    _, fresh = timed(score(None))
    series("cache_after_ingest", cache, fresh.rank)
    out["cache_counts"] = dict(cache.counts)
    out["rank_alone"] = rank_alone(runtime, scheme)
    print(json.dumps(out, indent=2))


def rank_alone(runtime: Runtime, scheme: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    with runtime.db.read() as conn:
        (question,) = ask(runtime.catalogs, [scheme])
        rows = [r for r in run_live(conn, runtime.catalogs, "ranked", [question]) if int(r["scored"]) == 1]
        for builder in ("live", "duckdb"):
            cache = RankCache(builder=builder)
            first = rows[0]
            start = time.perf_counter()
            cache.rank(conn, runtime.catalogs, question, int(first["subject_id"]), int(first["score"]))
            found[f"build_{builder}_s"] = round(time.perf_counter() - start, 3)
        took, wrong = [], 0
        for r in rows:
            start = time.perf_counter()
            got = cache.rank(conn, runtime.catalogs, question, int(r["subject_id"]), int(r["score"]))
            took.append(time.perf_counter() - start)
            wrong += got != float(r["rank"])
    found.update(subjects=len(rows), median_ms=round(statistics.median(took) * 1000, 3), mismatches=wrong)
    return found


if __name__ == "__main__":
    main()
