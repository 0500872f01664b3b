"""The statistics dashboard for auditors and admins: the figures of
:mod:`credo.process.stats` (the same as ``GET /api/v1/stats``) and the score
distributions, drawn by Chart.js and given as tables too."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from markupsafe import Markup
from starlette.responses import Response

from credo.access.services import Role
from credo.process import stats
from credo.web.page import Page, require
from credo.web.stats import score_distribution

router = APIRouter()
AuditPage = Annotated[Page, Depends(require(Role.AUDITOR, Role.ADMIN))]


def charts(page: Page, summary: dict[str, Any], scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chart.js-ready data: one entry per chart, with its title and table."""
    t = page.t
    out: list[dict[str, Any]] = []
    for dist in scores:
        out.append(
            {
                "id": f"scores-{dist['scheme']}",
                "title": t("Scores in {scheme} ({n} subjects)", scheme=dist["scheme"], n=dist["subjects"]),
                "type": "bar",
                "labels": [f"{b['from']}–{b['to']}" for b in dist["histogram"]],
                "datasets": [{"label": t("subjects"), "data": [b["subjects"] for b in dist["histogram"]]}],
            }
        )
    by_month: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    categories: set[str] = set()
    for row in summary["records_by_category"]:
        by_month[row["year"]][row["category"]] += row["records"]
        categories.add(row["category"])
    years = sorted(by_month)
    out.append(
        {
            "id": "records",
            "title": t("Records per category and year of the act"),
            "type": "bar",
            "stacked": True,
            "labels": years,
            "datasets": [
                {"label": c, "data": [by_month[y].get(c, 0) for y in years]} for c in sorted(categories)
            ],
        }
    )
    months: dict[str, dict[str, int]] = defaultdict(lambda: {"listed": 0, "delisted": 0})
    for row in summary["listings_over_time"]:
        months[row["month"]]["listed"] += row["listed"]
        months[row["month"]]["delisted"] += row["delisted"]
    labels = sorted(months)
    out.append(
        {
            "id": "listings",
            "title": t("Listings and delistings per month"),
            "type": "line",
            "labels": labels,
            "datasets": [
                {"label": t("listed"), "data": [months[m]["listed"] for m in labels]},
                {"label": t("delisted"), "data": [months[m]["delisted"] for m in labels]},
            ],
        }
    )
    appeals = summary["appeals_by_outcome"]
    out.append(
        {
            "id": "appeals",
            "title": t("Appeals by outcome"),
            "type": "bar",
            "labels": [t(a["outcome"]) for a in appeals],
            "datasets": [{"label": t("appeals"), "data": [a["appeals"] for a in appeals]}],
        }
    )
    decided = [a for a in appeals if a["mean_days_to_decision"] is not None]
    out.append(
        {
            "id": "decision-time",
            "title": t("Days to decision (mean and longest)"),
            "type": "bar",
            "labels": [t(a["outcome"]) for a in decided],
            "datasets": [
                {"label": t("mean days"), "data": [a["mean_days_to_decision"] for a in decided]},
                {"label": t("longest"), "data": [a["max_days_to_decision"] for a in decided]},
            ],
        }
    )
    agencies = [a for a in summary["overturn_rate_by_agency"] if a["appealed"]]
    out.append(
        {
            "id": "overturns",
            "title": t("Overturned share of appealed records per agency"),
            "type": "bar",
            "percent": True,
            "labels": [a["agency"] for a in agencies],
            "datasets": [
                {
                    "label": t("overturned / appealed"),
                    "data": [round(100 * a["overturned"] / a["appealed"], 1) for a in agencies],
                }
            ],
        }
    )
    return out


def script_json(data: Any) -> Markup:
    """JSON to embed in ``<script type="application/json">`` (no ``</script>`` can close it)."""
    text = json.dumps(data, ensure_ascii=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))  # noqa: S704


@router.get("/dashboard")
def dashboard(page: AuditPage) -> Response:
    with page.runtime.db.read() as conn:
        summary = stats.summary(conn, page.runtime.catalogs)
        scores = score_distribution(conn, page.runtime.catalogs)
    figures = charts(page, summary, scores)
    return page.render(
        "dashboard.html",
        charts=figures,
        charts_json=script_json(figures),
        summary=summary,
    )
