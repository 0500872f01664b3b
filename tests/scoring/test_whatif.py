"""Policy what-if (issue 7): the ledger under a draft catalog against the catalog in force.

The draft moves Rongcheng's D threshold (the lowest score of grade C) from
600 to 700: exactly the subjects whose score lies in [600, 700) fall from C
to D, leave the watch list, enter the low-grade blacklist and gain its
measures; nobody else changes.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from ledgers import LedgerBuilder, cli_registry, person_for
from sqlalchemy import Connection, insert

from credo.catalog.registry import Registry
from credo.cli import app as credo_app
from credo.ids import make_ric
from credo.lists.whatif import (
    DISPARITY_MIN_AFFECTED,
    DraftError,
    WhatIf,
    age_band,
    apply_draft,
    run_whatif,
    write_changes,
)
from credo.settings import PROJECT_ROOT
from credo.store.db import Database
from credo.store.tables import subjects

RONGCHENG = PROJECT_ROOT / "catalogs" / "cn-sd-rc.toml"
AS_OF = date(2024, 7, 1)
OLD_D, NEW_D = 600, 700
#: Scores around both thresholds, including each threshold itself.
SCORES = (1000, 880, 760, 710, 700, 697, 690, 650, 604, 600, 597, 560, 500)


def draft_text(c_min: int = NEW_D) -> str:
    """Rongcheng's catalog with grade C starting at ``c_min`` instead of 600."""
    text = RONGCHENG.read_text()
    moved = text.replace('{ grade = "C", min = 600 }', f'{{ grade = "C", min = {c_min} }}')
    assert moved != text
    return moved


def deduct(b: LedgerBuilder, subject: str, points: int, start: date = date(2024, 1, 2)) -> None:
    """Rongcheng records worth exactly -``points``, one act a day (last digit 0, 3, 6 or 9)."""
    day = start
    parts = [("CN-SD-RC.UTILITY-EQUIPMENT-DESTRUCTION", 100)] * (points // 100)
    parts += [("CN-SD-RC.BANK-ARREARS", 10)] * ((points % 100) // 10)
    parts += [("CN-SD-RC.TRAFFIC-TICKET", 3)] * ((points % 10) // 3)  # version 2, since 2021
    assert sum(p for _, p in parts) == points
    for i, (rule, p) in enumerate(parts):
        b.incident(f"{subject}-{i}", rule, day, subject=subject, version=2 if p == 3 else 1)
        day += timedelta(days=1)


def rongcheng_ledger() -> tuple[LedgerBuilder, dict[str, int]]:
    b = LedgerBuilder()
    scores: dict[str, int] = {}
    for score in SCORES:
        for copy in range(2):
            name = f"s{score}-{copy}"
            if score == 1000:  # scored at the base: a record that counts no points any more
                b.incident(f"{name}-t", "CN-SD-RC.TRAFFIC-TICKET", "2022-01-10", subject=name, version=2)
            else:
                deduct(b, name, 1000 - score)
            scores[name] = score
    # A national defaulter judgment (-100, counted in every scheme) by a court
    # in Rongcheng, so its subject is scored there: on the defaulter list
    # under both catalogs.
    b.incident("court", "CN.COURT-DEFAULTER", "2024-05-10", subject="defaulter", jurisdiction="CN-SD-RC")
    scores["defaulter"] = 900
    return b, scores


def write_ledger(conn: Connection, b: LedgerBuilder, catalogs: Registry,
                 identifiers: dict[str, str] | None = None) -> None:
    if identifiers:
        conn.execute(insert(subjects), [
            {"id": b.subjects[name], "kind": "person", "identifier": ident,
             "created_at": datetime(2000, 1, 1, tzinfo=UTC)}
            for name, ident in identifiers.items()
        ])
    b.write(conn, catalogs)


def run(db: Database, catalogs: Registry, text: str, **kw: Any) -> WhatIf:
    draft = apply_draft(catalogs, text, "draft.toml")
    with db.read() as conn:
        return run_whatif(conn, catalogs, draft, as_of=AS_OF, known_at=datetime(2024, 7, 2, tzinfo=UTC), **kw)


def by_name(b: LedgerBuilder) -> dict[int, str]:
    return {n: name for name, n in b.subjects.items()}


# ---------------------------------------------------------------------------
# The draft
# ---------------------------------------------------------------------------


def test_the_draft_replaces_the_catalog_of_its_own_jurisdiction(catalogs: Registry) -> None:
    draft = apply_draft(catalogs, draft_text(), "draft.toml")
    assert draft.jurisdiction == "CN-SD-RC"
    assert [b.min for b in draft.registry.policy("CN-SD-RC").grade_bands][-2:] == [NEW_D, 0]
    assert [b.min for b in catalogs.policy("CN-SD-RC").grade_bands][-2:] == [OLD_D, 0]
    assert draft.registry.policy("CN-SD").grade_bands == catalogs.policy("CN-SD").grade_bands
    assert draft.registry.digest != catalogs.digest
    assert apply_draft(catalogs, RONGCHENG.read_text(), "same.toml").registry.digest == catalogs.digest


@pytest.mark.parametrize(
    ("change", "field"),
    [
        # Bands out of order: the policy's own validation.
        (('{ grade = "C", min = 600 }', '{ grade = "C", min = 900 }'), "policy.grade_bands"),
        # A protected ground: the guard, as for a shipped catalog.
        (('category = "contract"', 'category = "religion"'), "category"),
        # A cross-file check: an agency of another jurisdiction.
        (('agencies = ["CN-SD-RC-CREDIT"]', 'agencies = ["CN-ZJ-HZ-TRAFFIC"]'), "rules[0].agencies"),
        # Not a catalog in force.
        (('code = "CN-SD-RC"\n', 'code = "CN-SD-WH"\n'), "jurisdiction.code"),
    ],
)
def test_a_refused_draft_names_the_field(catalogs: Registry, change: tuple[str, str], field: str) -> None:
    text = RONGCHENG.read_text()
    assert change[0] in text
    with pytest.raises(DraftError) as refused:
        apply_draft(catalogs, text.replace(change[0], change[1], 1), "draft.toml")
    assert any(field in e.message for e in refused.value.errors), refused.value.errors


# ---------------------------------------------------------------------------
# The comparison, on SQLite and PostgreSQL
# ---------------------------------------------------------------------------


def test_moving_the_d_threshold_changes_exactly_the_subjects_between_the_thresholds(
    db: Database, catalogs: Registry
) -> None:
    b, scores = rongcheng_ledger()
    with db.begin() as conn:
        write_ledger(conn, b, catalogs)
    result = run(db, catalogs, draft_text())
    names = by_name(b)
    rc = {names[c.subject.id]: c for c in result.changes if c.scheme == "CN-SD-RC"}
    # Every subject is scored, with the score the ledger was built for, under both catalogs.
    assert {n: (c.score_before, c.score_after) for n, c in rc.items()} == {
        n: (s, s) for n, s in scores.items()
    }
    changed = {n for n, c in rc.items() if c.grade_before != c.grade_after}
    assert changed == {n for n, s in scores.items() if OLD_D <= s < NEW_D}
    assert {(c.grade_before, c.grade_after, c.grade_move) for n, c in rc.items() if n in changed} == {
        ("C", "D", "worse")
    }
    for c in rc.values():
        if names[c.subject.id] in changed:
            assert (c.lists_before, c.lists_after) == ({"CN.WATCH"}, {"CN.LOW-GRADE"})
            assert c.measures_after - c.measures_before == {"state-bank-loan", "finance-employment"}
        else:
            assert (c.lists_before, c.measures_before) == (c.lists_after, c.measures_after)
    summary = result.summary()
    moved = len(changed)
    assert (summary["grade_changed"], summary["changed"], summary["worsened"], summary["improved"]) == (
        moved, moved, moved, 0
    )
    assert summary["transitions"]["C"]["D"] == moved
    assert summary["lists"]["CN.WATCH"]["exits"] == moved
    assert summary["lists"]["CN.LOW-GRADE"]["entries"] == moved
    assert summary["lists"]["CN.DEFAULTER"] == {"before": 1, "after": 1, "entries": 0, "exits": 0}
    assert summary["measures"] == {
        "finance-employment": {"gained": moved, "lost": 0},
        "state-bank-loan": {"gained": moved, "lost": 0},
    }
    assert summary["by_scheme"]["CN-SD-RC"]["grade_changed"] == moved
    assert summary["by_scheme"]["CN"]["grade_changed"] == 0  # the defaulter, scored nationally
    assert summary["by_kind"]["person"]["lists"]["CN.LOW-GRADE"]["entries"] == moved


def test_a_looser_draft_moves_subjects_back_up(db: Database, catalogs: Registry) -> None:
    b, scores = rongcheng_ledger()
    with db.begin() as conn:
        write_ledger(conn, b, catalogs)
    summary = run(db, catalogs, draft_text(550)).summary()
    back = sum(1 for s in scores.values() if 550 <= s < OLD_D)
    assert (summary["grade_changed"], summary["improved"], summary["worsened"]) == (back, back, 0)
    assert summary["lists"]["CN.LOW-GRADE"]["exits"] == back
    assert summary["lists"]["CN.WATCH"]["entries"] == back
    assert summary["measures"]["state-bank-loan"] == {"gained": 0, "lost": back}


def test_disparity_is_flagged_when_the_change_falls_on_one_region(db: Database, catalogs: Registry) -> None:
    """Rongcheng-born subjects sit just above 600, Hangzhou-born ones well above 700;
    both groups have the same birth dates, so no age band stands out."""
    b = LedgerBuilder()
    identifiers: dict[str, str] = {}
    per_region = 12
    for region, score in (("371082", 650), ("330106", 800)):
        for i in range(per_region):
            name = f"{region}-{i}"
            deduct(b, name, 1000 - score)
            born = date(1950 + 5 * (i % 10), 3, 1)
            identifiers[name] = make_ric(region, born, i)
    with db.begin() as conn:
        write_ledger(conn, b, catalogs, identifiers)
    result = run(db, catalogs, draft_text())
    d = result.summary()["disparity"]
    flags = {(f["dimension"], f["group"], f["outcome"]) for f in d["flags"]}
    assert flags == {("region_code", "371082", "changed"), ("region_code", "371082", "worsened")}
    (flag,) = [f for f in d["flags"] if f["outcome"] == "changed"]
    assert (flag["affected"], flag["subjects"], flag["rate"]) == (per_region, per_region, 1.0)
    assert (flag["rest_affected"], flag["rest_subjects"], flag["rest_rate"], flag["ratio"]) == (
        0, per_region, 0.0, None
    )
    assert "371082: 12 of 12 subjects changed (100.0%)" in flag["message"]
    groups = {g["group"]: g for g in d["region_code"]}
    assert (groups["330106"]["changed"], groups["371082"]["changed"]) == (0, per_region)
    bands = {g["group"]: g["changed_rate"] for g in d["age_band"]}
    assert set(bands.values()) == {0.5}
    assert d["rule"]["min_affected"] == DISPARITY_MIN_AFFECTED


def test_a_small_group_is_not_flagged(db: Database, catalogs: Registry) -> None:
    b = LedgerBuilder()
    identifiers = {}
    for i in range(DISPARITY_MIN_AFFECTED - 1):
        deduct(b, f"few-{i}", 350)
        identifiers[f"few-{i}"] = make_ric("371082", date(1980, 1, 1), i)
    for i in range(10):
        deduct(b, f"many-{i}", 100)
        identifiers[f"many-{i}"] = make_ric("330106", date(1980, 1, 1), i)
    with db.begin() as conn:
        write_ledger(conn, b, catalogs, identifiers)
    assert run(db, catalogs, draft_text()).summary()["disparity"]["flags"] == []


def test_age_bands() -> None:
    assert age_band(date(2006, 7, 2), AS_OF) == "0-17"
    assert age_band(date(2006, 7, 1), AS_OF) == "18-24"
    assert age_band(date(1959, 7, 1), AS_OF) == "65+"
    assert age_band(None, AS_OF) is None


def test_the_parquet_file_has_one_row_per_difference(
    db: Database, catalogs: Registry, tmp_path: Path
) -> None:
    b, scores = rongcheng_ledger()
    with db.begin() as conn:
        write_ledger(conn, b, catalogs)
    result = run(db, catalogs, draft_text())
    out = tmp_path / "diff.parquet"
    assert write_changes(result, out) == sum(1 for s in scores.values() if OLD_D <= s < NEW_D)
    rows = pq.read_table(out).to_pylist()
    names = by_name(b)
    row = rows[0]
    assert scores[names[row["subject_id"]]] in range(OLD_D, NEW_D)
    assert row["subject"] == f"person:{person_for(row['subject_id'])}"
    assert (row["kind"], row["scheme"], row["region_code"], row["age_band"]) == (
        "person", "CN-SD-RC", "110105", "35-44"
    )
    assert (row["grade_before"], row["grade_after"], row["grade_move"]) == ("C", "D", "worse")
    assert (row["lists_entered"], row["lists_left"]) == (["CN.LOW-GRADE"], ["CN.WATCH"])
    assert row["measures_gained"] == ["finance-employment", "state-bank-loan"]
    assert row["measures_lost"] == []


# ---------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: Registry) -> Any:
    b, scores = rongcheng_ledger()
    runner = cli_registry(tmp_path, monkeypatch, b, catalogs)
    (tmp_path / "draft.toml").write_text(draft_text())

    def run_cli(*args: str) -> Any:
        return runner.invoke(credo_app, ["whatif", *args], catch_exceptions=False)

    run_cli.moved = sum(1 for s in scores.values() if OLD_D <= s < NEW_D)  # type: ignore[attr-defined]
    run_cli.low = sum(1 for s in scores.values() if s < OLD_D)  # type: ignore[attr-defined]
    run_cli.draft = tmp_path / "draft.toml"  # type: ignore[attr-defined]
    return run_cli


def test_whatif_json_summary(cli: Any, tmp_path: Path) -> None:
    done = cli("--catalog", str(cli.draft), "--as-of", "2024-07-01", "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert {"draft", "engine", "as_of", "subjects", "grade_changed", "transitions", "lists", "measures",
            "by_scheme", "by_kind", "disparity"} <= set(summary)
    assert summary["draft"]["jurisdiction"] == "CN-SD-RC"
    assert (summary["engine"], summary["as_of"]) == ("duckdb", ["2024-07-01"])
    assert summary["grade_changed"] == cli.moved
    assert summary["lists"]["CN.LOW-GRADE"] == {"before": cli.low, "after": cli.low + cli.moved,
                                                "entries": cli.moved, "exits": 0}
    assert summary["lists"]["CN.DEFAULTER"] == {"before": 1, "after": 1, "entries": 0, "exits": 0}
    assert all(type(n) is int for v in summary["lists"].values() for n in v.values())  # not true/false
    assert set(summary["by_kind"]) == {"person"}
    assert set(summary["disparity"]) >= {"rule", "flags", "region_code", "age_band"}


def test_whatif_writes_parquet_and_an_html_report_with_charts(cli: Any, tmp_path: Path) -> None:
    out, html = tmp_path / "diff.parquet", tmp_path / "report.html"
    done = cli("--catalog", str(cli.draft), "--as-of", "2024-07-01", "--out", str(out), "--html", str(html))
    assert done.exit_code == 0, done.output
    text = " ".join(done.stdout.split())
    assert f"{cli.moved} subjects change grade" in text
    assert "CN.LOW-GRADE" in text
    assert pq.read_table(out).num_rows == cli.moved
    page = html.read_text()
    assert "new Chart" in page or "Chart=" in page  # Chart.js itself, inlined
    assert 'src="http' not in page and "src='http" not in page  # self-contained
    for chart in ("chart-lists", "chart-measures", "chart-disparity-age_band"):
        assert f'id="{chart}"' in page
    assert 'id="transitions"' in page and "CN-SD-RC" in page
    charts = json.loads(re.search(r'id="charts-data">(.*?)</script>', page, re.S).group(1))  # type: ignore[union-attr]
    lists = next(c for c in charts if c["id"] == "lists")
    entries = dict(zip(lists["labels"], lists["datasets"][0]["data"], strict=True))
    assert entries["CN.LOW-GRADE"] == cli.moved


def test_whatif_refuses_a_bad_draft_or_usage_with_exit_2(cli: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(RONGCHENG.read_text().replace('category = "contract"', 'category = "religion"', 1))
    done = cli("--catalog", str(bad))
    assert done.exit_code == 2
    assert "category" in " ".join(done.output.split()) and "religion" in done.output
    assert cli("--catalog", str(tmp_path / "missing.toml")).exit_code == 2
    assert cli("--catalog", str(cli.draft), "--engine", "presto").exit_code == 2
    assert cli("--catalog", str(cli.draft), "--as-of", "July").exit_code == 2
    assert cli("--catalog", str(cli.draft), "--out", str(tmp_path / "x.csv")).exit_code == 2


@pytest.mark.slow
def test_whatif_on_spark_matches_duckdb(cli: Any, spark: Any) -> None:
    duck = json.loads(cli("--catalog", str(cli.draft), "--as-of", "2024-07-01", "--json").stdout)
    done = cli("--catalog", str(cli.draft), "--as-of", "2024-07-01", "--engine", "spark", "--threads", "2",
               "--json")
    assert done.exit_code == 0, done.output
    sparked = json.loads(done.stdout)
    assert sparked["engine"] == "spark"
    for key in ("subjects", "grade_changed", "transitions", "lists", "measures", "by_scheme", "disparity"):
        assert sparked[key] == duck[key], key
