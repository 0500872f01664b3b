"""Building ledgers for scoring tests: exact rows, straight into the tables.

Tests need exact ``recorded_at`` instants (knowledge time is part of the
definition), so records are inserted as rows rather than through ``ingest``,
which stamps them with the clock; ``tests/scoring/test_online.py`` also
drives the real ingest path once.

>>> b = LedgerBuilder()
>>> b.incident("r1", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01")
1000001
>>> b.retraction("r1-x", "r1", "2024-04-01"), b.records[1]["target_seq"]
(1000002, 1000001)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, delete, insert, select

from credo.catalog.registry import Registry
from credo.ids import make_ric
from credo.store.tables import agencies, appeals, records, subjects

EPOCH_SUBJECT = 900_000  # subject ids far above anything a fixture creates


def _day(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _instant(value: datetime | str | None, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def person_for(n: int) -> str:
    """A valid resident identity number, different for every n."""
    return make_ric("110105", date(1980, 1, 1) + timedelta(days=n // 1000), n % 1000)


def subject_number(name: str, names: dict[str, int]) -> int:
    if name not in names:
        names[name] = EPOCH_SUBJECT + len(names) + 1
    return names[name]


@dataclass
class LedgerBuilder:
    """Records, appeals and subjects, numbered as the ledger would number them."""

    first_seq: int = 1_000_001
    records: list[dict[str, Any]] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)
    subjects: dict[str, int] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)
    agency: str = "CN-SPC"
    rule_versions: dict[tuple[str, date], int] = field(default_factory=dict)

    def _next(self) -> int:
        return self.first_seq + len(self.records)

    def incident(
        self,
        ref: str,
        rule: str,
        occurred_on: date | str,
        *,
        subject: str = "alice",
        recorded_at: datetime | str | None = None,
        version: int = 1,
        jurisdiction: str | None = None,
    ) -> int:
        """``jurisdiction``: where the act was recorded; the rule's own by default."""
        day = _day(occurred_on)
        return self._add(ref, "incident", rule, version, day, subject, recorded_at, None,
                         jurisdiction=jurisdiction)

    def retraction(
        self, ref: str, target: str, occurred_on: date | str, *, recorded_at: datetime | str | None = None
    ) -> int:
        return self._follow(ref, "retraction", target, occurred_on, recorded_at)

    def restoration(
        self, ref: str, target: str, occurred_on: date | str, *, recorded_at: datetime | str | None = None
    ) -> int:
        return self._follow(ref, "restoration", target, occurred_on, recorded_at)

    def _follow(
        self, ref: str, kind: str, target: str, occurred_on: date | str, recorded_at: datetime | str | None
    ) -> int:
        t = self.records[self.refs[target] - self.first_seq]
        seq = self._add(ref, kind, t["rule"], t["rule_version"], _day(occurred_on), None, recorded_at,
                        t["seq"], subject_id=t["subject_id"])
        return seq

    def _add(
        self, ref: str, kind: str, rule: str, version: int, day: date, subject: str | None,
        recorded_at: datetime | str | None, target: int | None, subject_id: int | None = None,
        jurisdiction: str | None = None,
    ) -> int:
        seq = self._next()
        if subject_id is None:
            assert subject is not None
            subject_id = subject_number(subject, self.subjects)
        default = datetime.combine(day + timedelta(days=1), time(9, 0), UTC)
        digest = hashlib.sha256(f"{seq}:{ref}".encode()).digest()
        self.records.append({
            "seq": seq, "agency": self.agency, "agency_ref": ref, "kind": kind, "subject_id": subject_id,
            "rule": rule, "rule_version": version, "occurred_on": day,
            # The rule codes here start with their jurisdiction's code.
            "jurisdiction": jurisdiction or rule.split(".")[0],
            "recorded_at": _instant(recorded_at, default), "evidence": "", "target_seq": target,
            "content_hash": digest, "leaf_hash": digest,
        })
        self.refs[ref] = seq
        return seq

    def appeal(
        self, record: str, *, filed_at: datetime | str, deadline_at: datetime | str,
        decided_at: datetime | str | None = None, outcome: str | None = None, ref: str | None = None,
    ) -> int:
        seq = self.refs[record]
        r = self.records[seq - self.first_seq]
        appeal_id = 500_000 + len(self.appeals) + 1
        filed = _instant(filed_at, datetime.now(UTC))
        self.appeals.append({
            "id": appeal_id, "record_seq": seq, "subject_id": r["subject_id"], "filed_at": filed,
            "deadline_at": _instant(deadline_at, filed), "grounds": "test",
            "decided_at": None if decided_at is None else _instant(decided_at, filed),
            "outcome": outcome, "reviewer": None if decided_at is None else "reviewer", "reasons": None,
        })
        if ref is not None:
            self.refs[ref] = appeal_id
        return appeal_id

    # -- where the rows go ---------------------------------------------------

    def write(self, conn: Connection, catalogs: Registry | None = None) -> None:
        """Insert subjects, the agency, records and appeals."""
        known = set(conn.execute(select(subjects.c.id)).scalars())
        rows = [
            {"id": n, "kind": "person", "identifier": person_for(n),
             "created_at": datetime(2000, 1, 1, tzinfo=UTC)}
            for n in sorted(set(self.subjects.values()) | {r["subject_id"] for r in self.records})
            if n not in known
        ]
        if rows:
            conn.execute(insert(subjects), rows)
        if conn.execute(select(agencies.c.code).where(agencies.c.code == self.agency)).first() is None:
            jurisdiction = catalogs.agency_jurisdiction(self.agency) if catalogs else "CN"
            conn.execute(insert(agencies).values(code=self.agency, jurisdiction=jurisdiction,
                                                 name_en=self.agency, name_zh=self.agency, kind="court"))
        if self.records:
            conn.execute(insert(records), self.records)
        if self.appeals:
            conn.execute(insert(appeals), self.appeals)

    def clear(self, conn: Connection) -> None:
        conn.execute(delete(appeals))
        conn.execute(delete(records))

    def arrow(self) -> tuple[pa.Table, pa.Table]:
        """The records and appeals as the export writes them (for DuckDB from Arrow)."""
        from credo.ledger.export import APPEAL_SCHEMA, RECORD_SCHEMA

        rs = RECORD_SCHEMA.remove(RECORD_SCHEMA.get_field_index("bucket"))
        as_ = APPEAL_SCHEMA.remove(APPEAL_SCHEMA.get_field_index("bucket"))
        rec = pa.Table.from_pylist([{f.name: r[f.name] for f in rs} for r in self.records], schema=rs)
        app = pa.Table.from_pylist([{f.name: a[f.name] for f in as_} for a in self.appeals], schema=as_)
        return rec, app


def cli_registry(tmp_path: Path, monkeypatch: Any, builder: LedgerBuilder, catalogs: Registry) -> Any:
    """A migrated SQLite registry for the ``credo`` command, holding ``builder``'s ledger.

    Points the command at it (``CREDO_*`` variables through ``monkeypatch``)
    and returns a Typer ``CliRunner``.
    """
    from typer.testing import CliRunner

    from credo.cli import app
    from credo.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("CREDO_DATABASE_URL", url)
    monkeypatch.setenv("CREDO_SIGNING_KEY_PATH", str(tmp_path / "keys" / "log.key"))
    runner = CliRunner()
    assert runner.invoke(app, ["db", "upgrade"], catch_exceptions=False).exit_code == 0
    engine = make_engine(url)
    with engine.begin() as conn:
        builder.write(conn, catalogs)
    engine.dispose()
    return runner
