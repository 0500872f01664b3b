"""The ``credo whatif --html`` report: one self-contained HTML file with charts.

It draws the summary of :meth:`credo.lists.whatif.WhatIf.summary` (the
``--json`` document) and nothing else: the transition matrix as a heatmap
table, entries and exits per list, measures gained and lost, changes per
scheme and per subject kind, and the disparity check with its flags. The
vendored Chart.js, the dashboard's chart script and the stylesheet are
inlined, so the file opens anywhere without a server or a network; every
chart has its numbers in a table beside it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import jinja2
from markupsafe import Markup

from credo.web import STATIC, TEMPLATES

CHART_JS: Final = STATIC / "vendor" / "chart.js-4.5.1.umd.min.js"
#: Regions shown in the disparity chart: the flagged ones, then the highest shares.
MAX_REGIONS: Final = 30


def _chart(
    ident: str, title: str, labels: Sequence[str], datasets: Mapping[str, Sequence[float]], **extra: Any
) -> dict[str, Any]:
    return {
        "id": ident,
        "title": title,
        "type": "bar",
        "labels": list(labels),
        "datasets": [{"label": k, "data": list(v)} for k, v in datasets.items()],
        **extra,
    }


def _percent(value: float) -> float:
    return round(100 * value, 1)


def charts(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Chart.js-ready data in the dashboard's format (``static/dashboard.js`` draws it)."""
    lists, measures = summary["lists"], summary["measures"]
    out = [
        _chart("lists", "Entries and exits per list (subjects)", list(lists), {
            "entries": [v["entries"] for v in lists.values()],
            "exits": [v["exits"] for v in lists.values()],
        }),
        _chart("measures", "Measures gained and lost (subjects)", list(measures), {
            "gained": [v["gained"] for v in measures.values()],
            "lost": [v["lost"] for v in measures.values()],
        }),
    ]
    for ident, key, title in (("schemes", "by_scheme", "scheme"), ("kinds", "by_kind", "subject kind")):
        groups = summary[key]
        out.append(_chart(ident, f"Subjects whose outcome changed, per {title}", list(groups), {
            name: [g[name] for g in groups.values()] for name in ("grade_changed", "worsened", "improved")
        }))
    disparity = summary["disparity"]
    flagged = {f["group"] for f in disparity["flags"] if f["dimension"] == "region_code"}
    regions = sorted(
        disparity["region_code"], key=lambda g: (g["group"] not in flagged, -g["changed_rate"], g["group"])
    )[:MAX_REGIONS]
    for ident, groups, title in (
        ("disparity-age_band", disparity["age_band"], "Share of persons affected, per age band"),
        ("disparity-region_code", regions, "Share of subjects affected, per region code (highest first)"),
    ):
        shares = {
            f"{name} (%)": [_percent(g[f"{name}_rate"]) for g in groups]
            for name in disparity["rule"]["outcomes"]
        }
        labels = [f"{g['group']} (n={g['subjects']})" for g in groups]
        out.append(_chart(ident, title, labels, shares, percent=True))
    return out


def heatmap(transitions: Mapping[str, Mapping[str, int]], grades: Sequence[str]) -> dict[str, Any]:
    """Rows (before) and columns (after) in grade order, each cell with its count and shade."""
    present = {g for g in transitions} | {a for row in transitions.values() for a in row}
    order = [g for g in grades if g in present] + sorted(present - set(grades))
    stay = max((transitions.get(g, {}).get(g, 0) for g in order), default=0) or 1
    move = max((n for b, row in transitions.items() for a, n in row.items() if a != b), default=0) or 1
    rows = []
    for b in order:
        cells = []
        for a in order:
            n = transitions.get(b, {}).get(a, 0)
            # Blue for subjects that keep their grade, vermilion for those that move.
            rgb, top = ("0,114,178", stay) if a == b else ("213,94,0", move)
            alpha = 0.0 if n == 0 else 0.15 + 0.85 * n / top
            cells.append({"n": n, "style": f"background: rgba({rgb},{alpha:.2f})", "dark": alpha > 0.6})
        rows.append({"grade": b, "cells": cells})
    return {"grades": order, "rows": rows}


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _script(text: str) -> Markup:
    """Text safe inside a <script> element (no end tag can close it early)."""
    return Markup(text.replace("</", "<\\/"))  # noqa: S704 - our own vendored files and JSON


def render_report(summary: Mapping[str, Any]) -> str:
    """The whole report as one HTML document."""
    grades = summary["grades"]
    schemes = {
        code: heatmap(s["transitions"], grades)
        for code, s in summary["by_scheme"].items()
        if s["grade_changed"]
    }
    data = charts(summary)
    return _environment().get_template("whatif_report.html").render(
        s=summary,
        overall=heatmap(summary["transitions"], grades),
        schemes=schemes,
        charts=data,
        charts_json=_script(json.dumps(data, ensure_ascii=False)),
        css=Markup((STATIC / "credo.css").read_text(encoding="utf-8")),  # noqa: S704 - our stylesheet
        chart_js=_script(CHART_JS.read_text(encoding="utf-8")),
        draw_js=_script((STATIC / "dashboard.js").read_text(encoding="utf-8")),
    )
