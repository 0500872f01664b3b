"""Statistics over the registry, for the dashboard, the API and researchers.

Counts only: no subject appears in any figure. Each function returns plain
rows (lists of dicts) so the API serialises them as they are and the
dashboard draws them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, extract, func, select

from credo.catalog.registry import Registry
from credo.store.tables import appeals, listing_ends, listings, records


def records_by_category(conn: Connection, catalogs: Registry) -> list[dict[str, Any]]:
    """Incidents per (category, jurisdiction, year of the act)."""
    q = (
        select(
            records.c.rule,
            records.c.rule_version,
            records.c.jurisdiction,
            extract("year", records.c.occurred_on).label("year"),
            func.count().label("n"),
        )
        .where(records.c.kind == "incident")
        .group_by(records.c.rule, records.c.rule_version, records.c.jurisdiction, "year")
    )
    totals: Counter[tuple[str, str, str]] = Counter()
    for row in conn.execute(q):
        versions = {v.version: v for v in catalogs.rule_versions(row.rule)}
        rule = versions.get(row.rule_version)
        category = rule.category if rule is not None else "unknown"
        totals[(category, row.jurisdiction, str(row.year))] += int(row.n)
    return [
        {"category": c, "jurisdiction": j, "year": y, "records": n} for (c, j, y), n in sorted(totals.items())
    ]


def listings_over_time(conn: Connection) -> list[dict[str, Any]]:
    """Listings started and ended per (list, month)."""
    started = conn.execute(select(listings.c.list_code, listings.c.started_on)).all()
    ended = conn.execute(
        select(listings.c.list_code, listing_ends.c.ended_on).join(
            listing_ends, listing_ends.c.listing_id == listings.c.id
        )
    ).all()
    months: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"listed": 0, "delisted": 0})
    for code, day in started:
        months[(code, day.strftime("%Y-%m"))]["listed"] += 1
    for code, day in ended:
        months[(code, day.strftime("%Y-%m"))]["delisted"] += 1
    return [{"list": code, "month": month, **counts} for (code, month), counts in sorted(months.items())]


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def appeals_by_outcome(conn: Connection) -> list[dict[str, Any]]:
    """Appeals per outcome (open ones as ``pending``) with the mean and longest days to decision."""
    groups: dict[str, list[float]] = defaultdict(list)
    for row in conn.execute(select(appeals.c.outcome, appeals.c.filed_at, appeals.c.decided_at)):
        outcome = row.outcome or "pending"
        days = (
            (_aware(row.decided_at) - _aware(row.filed_at)).total_seconds() / 86400
            if row.decided_at
            else None
        )
        groups[outcome].append(-1.0 if days is None else days)
    out = []
    for outcome, values in sorted(groups.items()):
        decided = [v for v in values if v >= 0]
        out.append(
            {
                "outcome": outcome,
                "appeals": len(values),
                "mean_days_to_decision": round(sum(decided) / len(decided), 2) if decided else None,
                "max_days_to_decision": round(max(decided), 2) if decided else None,
            }
        )
    return out


def overturn_rate_by_agency(conn: Connection) -> list[dict[str, Any]]:
    """Per agency: incidents, appealed, overturned (incl. amended), and the overturned share."""
    incidents: dict[str, int] = dict(
        conn.execute(
            select(records.c.agency, func.count())
            .where(records.c.kind == "incident")
            .group_by(records.c.agency)
        ).all()
    )
    appealed: Counter[str] = Counter()
    overturned: Counter[str] = Counter()
    q = select(records.c.agency, appeals.c.outcome).join(appeals, appeals.c.record_seq == records.c.seq)
    for agency, outcome in conn.execute(q):
        appealed[agency] += 1
        if outcome in ("overturned", "amended"):
            overturned[agency] += 1
    return [
        {
            "agency": agency,
            "records": int(n),
            "appealed": appealed[agency],
            "overturned": overturned[agency],
            "overturned_share": round(overturned[agency] / n, 6) if n else 0.0,
        }
        for agency, n in sorted(incidents.items())
    ]


def summary(conn: Connection, catalogs: Registry) -> dict[str, Any]:
    return {
        "records_by_category": records_by_category(conn, catalogs),
        "listings_over_time": listings_over_time(conn),
        "appeals_by_outcome": appeals_by_outcome(conn),
        "overturn_rate_by_agency": overturn_rate_by_agency(conn),
    }
