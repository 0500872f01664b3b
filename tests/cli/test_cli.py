"""The CLI end to end, as an operator runs it, on a fresh database of each kind."""

from __future__ import annotations

import csv
import json
import os
import secrets
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import RecordFactory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from credo.api.app import create_app
from credo.cli import app
from credo.runtime import Runtime
from credo.settings import load_settings
from credo.store.append_only import unprotect
from credo.store.db import make_engine

POSTGRES_URL = os.environ.get("CREDO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty registry database for the CLI to migrate."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.db'}"
        return
    engine: Engine = request.getfixturevalue("postgresql_engine")  # fails under CI=true when unreachable
    del engine
    schema = f"credo_cli_{secrets.token_hex(4)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CREDO_DATABASE_URL", database_url)
    monkeypatch.setenv("CREDO_SIGNING_KEY_PATH", str(tmp_path / "keys" / "log.key"))
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(app, list(args), input=stdin, catch_exceptions=False)

    assert run("db", "upgrade").exit_code == 0
    return run


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    fields = sorted({k for r in rows for k in r})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows)
    return path


def test_ingest_csv_quarantines_bad_rows_and_is_idempotent(cli: Any, tmp_path: Path) -> None:
    rows = [RecordFactory() for _ in range(20)]
    rows[4]["subject"] = "110105194912310021"  # wrong check character
    rows[9]["occurred_on"] = "2031-01-01"
    path = write_csv(tmp_path / "week.csv", rows)
    first = cli("ingest", str(path), "--agency", "CN-ZJ-HZ-TP", "--json", "--batch", "7")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert (summary["accepted"], summary["duplicate"], summary["quarantined"]) == (18, 0, 2)
    again = json.loads(cli("ingest", str(path), "--agency", "CN-ZJ-HZ-TP", "--json").stdout)
    assert (again["accepted"], again["duplicate"], again["quarantined"]) == (0, 18, 2)
    listed = json.loads(cli("quarantine", "list", "--json").stdout)
    assert [r["line"] for r in listed] == [6, 11, 6, 11]  # CSV line numbers (header is line 1)
    assert "check character is 1, expected X" in listed[0]["reasons"][0]
    assert cli("audit", "verify").exit_code == 0


def test_ingest_jsonl_and_parquet(cli: Any, tmp_path: Path) -> None:
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(RecordFactory()) for _ in range(3)) + "\nnot json\n")
    out = json.loads(cli("ingest", str(jsonl), "--agency", "CN-ZJ-HZ-TP", "--json").stdout)
    assert (out["accepted"], out["quarantined"]) == (3, 1)
    table = pa.Table.from_pylist([RecordFactory() for _ in range(4)])
    pq.write_table(table, tmp_path / "b.parquet")
    out = json.loads(cli("ingest", str(tmp_path / "b.parquet"), "--agency", "CN-ZJ-HZ-TP", "--json").stdout)
    assert out["accepted"] == 4
    shown = json.loads(cli("quarantine", "show", "1", "--json").stdout)
    assert shown["line"] == 4 and shown["reasons"][0].startswith("line 4: invalid JSON")


def test_unreadable_files_exit_2(cli: Any, tmp_path: Path) -> None:
    assert cli("ingest", str(tmp_path / "missing.csv"), "--agency", "CN-ZJ-HZ-TP").exit_code == 2
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    assert cli("ingest", str(bad), "--agency", "CN-ZJ-HZ-TP").exit_code == 2
    odd = tmp_path / "x.xlsx"
    odd.write_text("?")
    assert cli("ingest", str(odd), "--agency", "CN-ZJ-HZ-TP").exit_code == 2
    assert cli("ingest", str(odd), "--agency", "NOPE").exit_code == 2


def test_retry_after_the_cause_is_gone(cli: Any, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "a.csv", [RecordFactory(agency_ref="A-1")])
    cli("ingest", str(path), "--agency", "CN-ZJ-HZ-TP")
    # A retraction sent before its target: refused, then released once the target arrives.
    rt = write_csv(
        tmp_path / "r.csv",
        [{"agency_ref": "R-2", "kind": "retraction", "target_ref": "A-2", "occurred_on": "2024-06-01"}],
    )
    assert json.loads(cli("ingest", str(rt), "--agency", "CN-ZJ-HZ-TP", "--json").stdout)["quarantined"] == 1
    cli(
        "ingest",
        str(write_csv(tmp_path / "b.csv", [RecordFactory(agency_ref="A-2")])),
        "--agency",
        "CN-ZJ-HZ-TP",
    )
    retried = json.loads(cli("quarantine", "retry", "--json").stdout)
    assert retried == {"released": 1, "still_refused": 0}


def test_audit_verify_fails_naming_the_edited_row_and_the_truncated_tail(
    cli: Any, tmp_path: Path, database_url: str
) -> None:
    rows = [RecordFactory() for _ in range(10)]
    cli("ingest", str(write_csv(tmp_path / "a.csv", rows)), "--agency", "CN-ZJ-HZ-TP", "--batch", "5")
    saved = tmp_path / "head.txt"
    saved.write_text(cli("audit", "tree-head").stdout)
    engine = make_engine(database_url)
    with engine.begin() as conn:
        unprotect(conn, "records")
        conn.execute(text("UPDATE records SET evidence = 'edited' WHERE seq = 4"))
    engine.dispose()
    result = cli("audit", "verify", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["first_bad_seq"] == 4
    assert "FAILED at seq 4" in cli("audit", "verify").stdout


def test_catalog_validate_lists_every_error_and_exits_1(cli: Any) -> None:
    refused = Path(__file__).resolve().parents[2] / "catalogs" / "examples" / "refused"
    out = cli("catalog", "validate", str(refused), "--json")
    assert out.exit_code == 1
    grounds = {e["ground"] for e in json.loads(out.stdout)["errors"]}
    assert {"religion", "expression", "private-life"} <= grounds
    shipped = Path(__file__).resolve().parents[2] / "catalogs"
    assert cli("catalog", "validate", str(shipped)).exit_code == 0


def test_catalog_show_gives_the_effective_policy(cli: Any) -> None:
    shown = json.loads(cli("catalog", "show", "CN-ZJ-YW", "--json").stdout)
    assert shown["ancestors"] == ["CN-ZJ-YW", "CN-ZJ", "CN"]
    assert shown["policy"]["appeal_window_days"] == 15
    assert shown["policy"]["rectification_period_days"] == 365
    assert cli("catalog", "show", "XX").exit_code == 1


def test_token_create_prints_once_and_refuses_bad_bindings(cli: Any) -> None:
    out = json.loads(cli("token", "create", "--role", "agency", "--agency", "CN-SPC", "--json").stdout)
    assert out["token"].startswith("credo_")
    assert cli("token", "create", "--role", "agency").exit_code == 2
    assert cli("token", "create", "--role", "subject", "--subject", "123").exit_code == 2
    assert cli("token", "create", "--role", "subject", "--subject", "11010519491231002X").exit_code == 0


def test_token_revoke_by_id_hash_token_or_principal_is_a_401_at_once_and_recorded(cli: Any) -> None:
    def create(*args: str) -> str:
        return str(json.loads(cli("token", "create", *args, "--json").stdout)["token"])

    police = [create("--role", "agency", "--agency", "CN-ZJ-HZ-TP") for _ in range(3)]
    court = create("--role", "agency", "--agency", "CN-SPC", "--label", "court clerk")
    auditor = create("--role", "auditor", "--label", "inspector")
    listed = json.loads(cli("token", "list", "--json").stdout)
    assert [t["role"] for t in listed] == ["agency"] * 4 + ["auditor"]
    assert not any(token in json.dumps(listed) for token in [*police, court, auditor]), "never shown again"
    hash_of_court = "sha256:" + listed[3]["hash_prefix"][:10]

    # The server keeps running while the operator revokes: the next request is refused (with
    # token_cache_seconds 0; tests/api/test_token_cache.py: within it otherwise).
    server = Runtime.open(load_settings().replace(scheduler_interval=0, token_cache_seconds=0))
    client = TestClient(create_app(server))

    def status(token: str) -> int:
        return client.get("/api/v1/quarantine", headers={"Authorization": f"Bearer {token}"}).status_code

    assert [status(t) for t in [*police, court]] == [200] * 4
    by_id = cli("token", "revoke", str(listed[0]["id"]), "--reason", "laptop lost", "--json")
    assert json.loads(by_id.stdout) == {"revoked": [listed[0]["id"]], "already_revoked": []}
    assert [status(t) for t in police] == [401, 200, 200]
    assert cli("token", "revoke", str(listed[0]["id"])).exit_code == 1  # nothing left to revoke
    assert cli("token", "revoke", hash_of_court).exit_code == 0
    assert status(court) == 401
    assert cli("token", "revoke", "-", stdin=police[1] + "\n").exit_code == 0  # out of the shell history
    assert [status(t) for t in police] == [401, 401, 200]
    whole = json.loads(cli("token", "revoke", "--agency", "CN-ZJ-HZ-TP", "--json").stdout)
    assert whole == {"revoked": [listed[2]["id"]], "already_revoked": []}  # only live tokens are named
    assert status(police[2]) == 401
    assert cli("token", "revoke", "--agency", "CN-ZJ-HZ-TP").exit_code == 1

    live = json.loads(cli("token", "list", "--live", "--json").stdout)
    assert [t["label"] for t in live] == ["inspector"]
    shown = {t["id"]: t for t in json.loads(cli("token", "list", "--json").stdout)}
    assert shown[listed[0]["id"]]["reason"] == "laptop lost"
    assert all(shown[t["id"]]["revoked_by"].startswith("cli:") for t in listed[:4])
    assert "sha256:" in cli("token", "list").stdout
    # Refusals name what is wrong; nothing is revoked by them.
    assert cli("token", "revoke").exit_code == 2
    assert cli("token", "revoke", "1", "--agency", "CN-SPC").exit_code == 2
    assert "no token" in cli("token", "revoke", "9999").output
    assert "expected an id" in cli("token", "revoke", "sha256:12").output
    assert cli("token", "revoke", "--subject", "123").exit_code == 2
    assert status(auditor) != 401

    # The revocations are append-only records.
    try:
        with server.db.read() as conn:
            rows = conn.execute(text("SELECT token_id FROM token_revocations ORDER BY token_id")).scalars()
            assert list(rows) == [t["id"] for t in listed[:4]]
        with pytest.raises(DBAPIError, match="append-only"), server.db.begin() as conn:
            conn.execute(text("DELETE FROM token_revocations"))
    finally:
        server.db.dispose()


def test_settings_lists_every_variable(cli: Any) -> None:
    rows = json.loads(cli("settings", "--json").stdout)
    assert {r["env"] for r in rows} >= {"CREDO_DATABASE_URL", "CREDO_PORT", "CREDO_TIMEZONE"}


def test_party_add_check_and_lists_show(cli: Any) -> None:
    ok = cli(
        "party",
        "add",
        "CR",
        "--name",
        "China Railway",
        "--sector",
        "rail",
        "--purpose",
        "ticket sales",
        "--measure",
        "high-speed-rail",
    )
    assert ok.exit_code == 0, ok.output
    again = cli(
        "party", "add", "CR", "--name", "x", "--sector", "rail", "--purpose", "p", "--measure", "air-travel"
    )
    assert again.exit_code == 2
    assert (
        cli(
            "party", "add", "X", "--name", "x", "--sector", "s", "--purpose", "p", "--measure", "nope"
        ).exit_code
        == 2
    )
    decided = json.loads(cli("check", "11010519491231002X", "air-travel", "--json").stdout)
    assert decided == {"subject": "person:11010519491231002X", "measure": "air-travel", "decision": "allowed"}
    assert cli("check", "11010519491231002X", "teleport").exit_code == 2
    shown = json.loads(cli("lists", "show", "11010519491231002X", "--json").stdout)
    assert shown["listings"] == []


def test_appeal_commands_and_the_clock(cli: Any, tmp_path: Path) -> None:
    assert json.loads(cli("appeal", "list", "--json").stdout) == []
    refused = cli(
        "appeal",
        "decide",
        "99",
        "--outcome",
        "upheld",
        "--reasons",
        "r",
        "--reviewer",
        "me",
        "--jurisdiction",
        "CN",
    )
    assert refused.exit_code == 1 and "no appeal 99" in refused.output
    recent = (date.today() - timedelta(days=10)).isoformat()  # a listing lasts 2 years from the act
    rows = [RecordFactory(court_defaulter=True, occurred_on=recent)]
    cli("ingest", str(write_csv(tmp_path / "j.csv", rows)), "--agency", "CN-SPC")
    shown = json.loads(cli("lists", "show", rows[0]["subject"], "--json").stdout)
    assert [v["list_code"] for v in shown["listings"]] == ["CN.DEFAULTER"]  # ingest moved the listing
    assert json.loads(cli("lists", "refresh", "--json").stdout) == {"listed": 0, "delisted": 0, "warned": 0}
    ticked = json.loads(cli("tick", "--json").stdout)
    assert ticked["overdue"] == 0


def test_commands_hide_their_start_up_objects_from_the_collector(database_url: str, tmp_path: Path) -> None:
    # Full collections walking the catalogs cost a quarter of an ingest's CPU (bench/RESULTS.md).
    import subprocess
    import sys

    probe = (
        "import gc; from credo.cli.common import open_runtime; open_runtime(); print(gc.get_freeze_count())"
    )
    env = {**os.environ, "CREDO_DATABASE_URL": database_url, "CREDO_SIGNING_KEY_PATH": str(tmp_path / "k")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) > 10_000  # the modules, the catalogs, the engine
