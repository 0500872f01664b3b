"""``credo score``, ``credo rescore`` and ``credo export ledger`` as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from ledgers import LedgerBuilder, cli_registry, person_for

from credo.catalog.registry import Registry
from credo.cli import scoring


def _app() -> typer.Typer:
    """The scoring commands, registered as credo.cli registers them."""
    app = typer.Typer()
    app.command("score")(scoring.score)
    app.command("rescore")(scoring.rescore)
    app.add_typer(scoring.export_app, name="export")
    return app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: Registry) -> Any:
    b = LedgerBuilder()
    b.incident("a1", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01", subject="alice")
    b.incident("a2", "CN-SD-RC.HEROIC-ACT", "2024-04-01", subject="alice")
    b.incident("b1", "CN-SD-RC.SUED-IN-BREACH", "2024-03-01", subject="bob")
    b.incident("h1", "CN-ZJ-HZ.TRAFFIC-RED-LIGHT", "2024-03-01", subject="carol")
    runner = cli_registry(tmp_path, monkeypatch, b, catalogs)
    app = _app()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=False)

    run.builder = b  # type: ignore[attr-defined]
    return run


def test_score_explains_every_record_and_the_policy(cli: Any) -> None:
    alice = person_for(cli.builder.subjects["alice"])
    result = cli("score", alice, "--as-of", "2024-06-01", "--explain")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # the console wraps at its width
    assert "score 1010, grade A" in text
    assert "CN-SD-RC.CONTRACT-BREACH" in text and "CN-SD-RC.HEROIC-ACT v1" in text
    assert "rectification 730 days" in text and "AAA>=1050" in text
    breach = cli.builder.refs["a1"]
    assert f"next: grade changes to AA on 2026-03-01 when record {breach} is rectified" in text


def test_score_json_reproduces_a_past_knowledge_time(cli: Any) -> None:
    alice = person_for(cli.builder.subjects["alice"])
    data = json.loads(cli("score", f"person:{alice}", "--scheme", "CN-SD-RC", "--as-of", "2024-06-01",
                          "--known-at", "2024-03-02T09:00:00Z", "--json").stdout)
    (report,) = data["scores"]
    assert (report["score"], [r["rule"] for r in report["records"]]) == (980, ["CN-SD-RC.CONTRACT-BREACH"])
    assert report["known_at"] == "2024-03-02T09:00:00+00:00"


def test_score_refuses_bad_input_with_the_reason(cli: Any) -> None:
    assert cli("score", "110105194912310021").exit_code == 2
    assert cli("score", "11010519491231002X").exit_code == 1  # valid, but not in the registry
    alice = person_for(cli.builder.subjects["alice"])
    assert cli("score", alice, "--as-of", "June").exit_code == 2
    assert cli("score", alice, "--scheme", "XX").exit_code == 2


def test_rescore_duckdb_from_the_live_database_and_from_an_export_agree(cli: Any, tmp_path: Path) -> None:
    live = json.loads(cli("rescore", "--all", "--as-of", "2024-06-01", "--json").stdout)
    exported = cli("export", "ledger", "--out", str(tmp_path / "export"), "--buckets", "4", "--json")
    assert exported.exit_code == 0, exported.output
    manifest = json.loads(exported.stdout)
    assert (manifest["records"], manifest["buckets"]) == (4, 4)
    out = tmp_path / "scores.parquet"
    done = cli("rescore", "--all", "--as-of", "2024-06-01", "--ledger", str(tmp_path / "export"),
               "--out", str(out), "--memory-limit", "1GB", "--json")
    assert done.exit_code == 0, done.output
    from_file = pq.read_table(out).to_pylist()
    key = lambda r: (r["scheme"], r["subject_id"])  # noqa: E731
    assert sorted(from_file, key=key) == sorted(live["subjects"], key=key)
    rc = {r["subject_id"]: (r["score"], r["grade"]) for r in from_file if r["scheme"] == "CN-SD-RC"}
    assert rc == {cli.builder.subjects["alice"]: (1010, "A"), cli.builder.subjects["bob"]: (950, "B")}
    carol = cli.builder.subjects["carol"]
    assert {r["scheme"] for r in from_file if r["subject_id"] == carol} == {"CN-ZJ-HZ"}


def test_rescore_refuses_what_it_cannot_do(cli: Any, tmp_path: Path) -> None:
    assert cli("rescore").exit_code == 2  # neither --scheme nor --all
    assert cli("rescore", "--all", "--engine", "presto").exit_code == 2
    assert cli("rescore", "--scheme", "XX").exit_code == 2
    assert cli("rescore", "--all", "--ledger", str(tmp_path)).exit_code == 2
    assert cli("rescore", "--all", "--out", str(tmp_path / "x.csv")).exit_code == 2


def test_export_refuses_a_folder_that_is_not_an_export(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert cli("export", "ledger", "--out", str(tmp_path / "mine")).exit_code == 2
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    # An earlier export is replaced whole.
    assert cli("export", "ledger", "--out", str(tmp_path / "e"), "--buckets", "2").exit_code == 0
    assert cli("export", "ledger", "--out", str(tmp_path / "e"), "--buckets", "3").exit_code == 0
    buckets = sorted(p.name for p in (tmp_path / "e" / "records").iterdir())
    assert buckets == ["bucket=0", "bucket=1", "bucket=2"]


def test_export_keeps_kinds_apart_and_rows_by_subject_and_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalogs: Registry
) -> None:
    """The layout rescoring reads fastest: bucket, then kind, then subject, act date and seq."""
    b = LedgerBuilder()
    for i, (who, day) in enumerate([("zoe", "2024-05-01"), ("amy", "2024-04-01"), ("zoe", "2024-01-01"),
                                    ("amy", "2024-01-01"), ("bob", "2024-02-01"), ("amy", "2024-04-01")]):
        b.incident(f"r{i}", "CN-SD-RC.CONTRACT-BREACH", day, subject=who)
    b.retraction("x1", "r0", "2024-06-01")
    b.restoration("x2", "r3", "2024-06-02")
    runner = cli_registry(tmp_path, monkeypatch, b, catalogs)
    done = runner.invoke(_app(), ["export", "ledger", "--out", str(tmp_path / "e"), "--buckets", "2"],
                         catch_exceptions=False)
    assert done.exit_code == 0, done.output
    folders = sorted(str(f.parent.relative_to(tmp_path / "e" / "records"))
                     for f in (tmp_path / "e" / "records").rglob("*.parquet"))
    kinds = {f.split("/")[1] for f in folders}
    assert kinds == {"kind=incident", "kind=retraction", "kind=restoration"}
    assert all(f.split("/")[0] in ("bucket=0", "bucket=1") for f in folders)
    seen = 0
    for f in sorted((tmp_path / "e" / "records").rglob("*.parquet")):
        rows = pq.read_table(f).to_pylist()
        assert "kind" not in rows[0] and "bucket" not in rows[0]
        keys = [(r["subject_id"], r["occurred_on"], r["seq"]) for r in rows]
        assert keys == sorted(keys), f
        seen += len(rows)
    assert seen == 8


@pytest.mark.slow
def test_rescore_with_spark_matches_duckdb(cli: Any, tmp_path: Path, spark: Any) -> None:
    """`--engine spark` exports the live ledger itself when no --ledger is given."""
    duck = json.loads(cli("rescore", "--all", "--as-of", "2024-06-01", "--json").stdout)["subjects"]
    sparked = json.loads(cli("rescore", "--all", "--as-of", "2024-06-01", "--engine", "spark",
                             "--threads", "2", "--json").stdout)["subjects"]
    assert sparked == duck


@pytest.mark.slow
def test_the_spark_submit_job_scores_an_export_on_each_schemes_local_date(cli: Any, tmp_path: Path,
                                                                           spark: Any) -> None:
    from credo.scoring.spark_job import run

    assert cli("export", "ledger", "--out", str(tmp_path / "export")).exit_code == 0
    evals = run(spark, ["--ledger", str(tmp_path / "export"), "--out", str(tmp_path / "scores"),
                        "--scheme", "CN-SD-RC", "--known-at", "2024-06-01T17:00:00Z"])
    assert [(e.scheme, e.as_of.isoformat()) for e in evals] == [("CN-SD-RC", "2024-06-02")]  # Shanghai
    rows = pq.read_table(tmp_path / "scores").to_pylist()
    duck = json.loads(cli("rescore", "--scheme", "CN-SD-RC", "--as-of", "2024-06-02",
                          "--known-at", "2024-06-01T17:00:00Z", "--json").stdout)["subjects"]
    key = lambda r: r["subject_id"]  # noqa: E731
    assert sorted(rows, key=key) == sorted(duck, key=key)
