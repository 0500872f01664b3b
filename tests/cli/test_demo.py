"""`credo demo` builds a living registry and prints a way in for each kind of person."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from credo.cli import app
from credo.runtime import Runtime
from credo.settings import load_settings
from credo.store.tables import appeals, listings, notices, records


def test_demo_sets_up_a_registry_with_every_kind_of_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CREDO_SIGNING_KEY_PATH", str(tmp_path / "keys" / "log.key"))
    result = CliRunner().invoke(app, ["demo", "--subjects", "1500", "--no-serve"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    out = result.output
    for kind in ("listed", "appealing", "redlisted", "clean"):
        assert re.search(rf"subject: {kind}\s+http://127\.0\.0\.1:\d+/login/link/\S+", out), kind
    for staff in ("reviewer", "agency", "auditor"):
        assert re.search(rf"{staff}.*/login/link/", out), staff
    runtime = Runtime.open(load_settings({"CREDO_DATABASE_URL": f"sqlite:///{tmp_path / 'credo-demo.db'}"}))
    with runtime.db.read() as conn:
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (records, notices, appeals, listings)
        }
    runtime.db.dispose()
    assert all(n > 0 for n in counts.values()), counts
