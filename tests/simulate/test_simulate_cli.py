"""``credo simulate population`` as an operator runs it (on SQLite: test_simulate_load covers both)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from credo.cli import db as db_cli
from credo.cli import simulate as simulate_cli


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CREDO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("CREDO_SIGNING_KEY_PATH", str(tmp_path / "keys" / "log.key"))
    # Until cli/__init__.py registers it, mount the app the way it will be.
    root = typer.Typer()
    root.add_typer(db_cli.app, name="db")
    root.add_typer(simulate_cli.app, name="simulate")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(root, list(args), catch_exceptions=False)

    assert invoke("db", "upgrade").exit_code == 0
    return invoke


def test_population_to_parquet_and_into_the_database(run: Any, tmp_path: Path) -> None:
    out = tmp_path / "pop"
    args = (
        "simulate",
        "population",
        "--subjects",
        "300",
        "--years",
        "3",
        "--seed",
        "4",
        "--end",
        "2025-06-30",
    )
    result = run(*args, "--out", str(out), "--into-db", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["subjects"] == 300
    assert summary["ingest"]["rejected"] == 0
    assert summary["ingest"]["accepted"] == summary["counts"]["records"] > 0
    assert (out / "subjects.parquet").is_file() and (out / "appeals.parquet").is_file()
    assert json.loads((out / "population.json").read_text())["params"]["seed"] == 4

    again = run(*args, "--into-db")
    assert again.exit_code == 0
    assert "0 accepted" in again.stdout and "0 quarantined" in again.stdout


def test_it_must_be_told_where_the_population_goes(run: Any) -> None:
    result = run("simulate", "population", "--subjects", "10")
    assert result.exit_code == 2
    assert "--out DIR, --into-db or both" in result.output


def test_an_end_date_in_the_future_is_refused(run: Any, tmp_path: Path) -> None:
    result = run("simulate", "population", "--subjects", "10", "--out", str(tmp_path), "--end", "2999-01-01")
    assert result.exit_code == 2
    assert "in the future" in result.output
