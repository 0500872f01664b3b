"""The one figure the dashboard needs that :mod:`credo.process.stats` does not give:
how scores are distributed in each scheme, today, from the online engine.

Counts only; no subject appears. It scores every subject with a record in
each scheme in one statement per scheme (the ``ranked`` output of the one
definition), so on a large registry read it from the batch engine instead.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from credo.catalog.registry import Registry
from credo.scoring.online import run_live
from credo.scoring.relations import ask

BINS = 12


def score_distribution(
    conn: Connection, catalogs: Registry, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Per scheme with scored subjects: how many, per grade, and a histogram of scores."""
    now = now or datetime.now(UTC)
    out = []
    for evaluation in ask(catalogs, [j.code for j in catalogs.jurisdictions()], known_at=now):
        rows = [r for r in run_live(conn, catalogs, "ranked", [evaluation]) if r["scored"] in (1, True)]
        if not rows:
            continue
        scores = [int(r["score"]) for r in rows]
        grades = Counter(str(r["grade"]) for r in rows)
        policy = catalogs.policy(evaluation.scheme)
        low, high = min(scores), max(scores)
        width = max(1, -(-(high - low + 1) // BINS))
        bins = Counter((s - low) // width for s in scores)
        out.append(
            {
                "scheme": evaluation.scheme,
                "subjects": len(scores),
                "grades": [{"grade": g, "subjects": grades.get(g, 0)} for g in policy.grades],
                "histogram": [
                    {"from": low + i * width, "to": low + (i + 1) * width - 1, "subjects": bins.get(i, 0)}
                    for i in range(max(bins) + 1)
                ],
            }
        )
    return out
