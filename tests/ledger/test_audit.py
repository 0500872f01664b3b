"""Any change to stored history is detected, and named."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from factories import RecordFactory
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from credo.access.services import create_token
from credo.api.app import create_app
from credo.ids import SubjectId
from credo.ledger import audit
from credo.ledger.checkpoint import verify_checkpoint
from credo.ledger.log import latest_tree_head, leaf_for, record_rows
from credo.ledger.merkle import verify_consistency, verify_inclusion
from credo.ledger.services import ingest
from credo.runtime import Runtime
from credo.store.append_only import protect, unprotect


def fill(runtime: Runtime, batches: int = 3, size: int = 4) -> None:
    for _ in range(batches):
        with runtime.db.begin() as conn:
            ingest(
                conn,
                runtime.catalogs,
                runtime.log,
                "CN-ZJ-HZ-TP",
                [RecordFactory() for _ in range(size)],
                source="test",
            )


def verify(runtime: Runtime, checkpoint: str | None = None) -> audit.VerifyReport:
    with runtime.db.read() as conn:
        return audit.verify(conn, runtime.log.signer.verifier_key(), checkpoint)


@contextmanager
def tampering(conn: Connection) -> Iterator[Connection]:
    """What an intruder with database access does: go around the append-only triggers."""
    if conn.dialect.name == "sqlite":
        unprotect(conn, "records")
        yield conn
        protect(conn, "records")
    else:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        yield conn
        conn.execute(text("SET LOCAL session_replication_role = origin"))


def test_an_untouched_ledger_verifies(runtime: Runtime) -> None:
    fill(runtime)
    report = verify(runtime)
    assert report.ok, report.findings
    assert (report.size, report.tree_heads) == (12, 3)


@pytest.mark.parametrize(
    "column",
    [
        "agency_ref",
        "kind",
        "rule",
        "rule_version",
        "jurisdiction",
        "occurred_on",
        "recorded_at",
        "evidence",
        "subject_id",
        "content_hash",
    ],
)
def test_changing_any_single_field_of_a_record_names_it(runtime: Runtime, column: str) -> None:
    fill(runtime)
    changes = {
        "agency_ref": "'forged'",
        "kind": "'restoration'",
        "rule": "'CN-ZJ-HZ.TRAFFIC-NOT-YIELDING'",
        "rule_version": "2",
        "jurisdiction": "'CN-ZJ'",
        "occurred_on": "occurred_on + 1"
        if runtime.db.dialect == "postgresql"
        else "date(occurred_on, '+1 day')",
        "recorded_at": "recorded_at - interval '1 hour'"
        if runtime.db.dialect == "postgresql"
        else "datetime(recorded_at, '-1 hour')",
        "evidence": "'none'",
        "subject_id": "(SELECT subject_id FROM records WHERE seq = 1)",
        "content_hash": "leaf_hash",
    }
    with runtime.db.begin() as conn, tampering(conn):
        conn.execute(text(f"UPDATE records SET {column} = {changes[column]} WHERE seq = 7"))
    report = verify(runtime)
    assert not report.ok
    assert report.first_bad_seq == 7, report.findings


def test_a_change_with_a_recomputed_leaf_hash_is_caught_by_the_signed_root(runtime: Runtime) -> None:
    fill(runtime)
    with runtime.db.read() as conn:
        row = record_rows(conn, after_seq=5, limit=1)[0]
    leaf = leaf_for({**row, "evidence": "forged"}, SubjectId(row["subject_kind"], row["subject_identifier"]))
    with runtime.db.begin() as conn, tampering(conn):
        conn.execute(
            text("UPDATE records SET evidence = 'forged', leaf_hash = :h WHERE seq = 6"), {"h": leaf}
        )
    report = verify(runtime)
    assert not report.ok
    assert report.first_bad_seq == 5  # the batch 5..8 whose signed root no longer matches
    assert "seq 5..8" in report.findings[0].message


def test_deleting_a_row_is_detected(runtime: Runtime) -> None:
    fill(runtime)
    with runtime.db.begin() as conn, tampering(conn):
        conn.execute(text("DELETE FROM records WHERE seq = 5"))
    report = verify(runtime)
    assert report.first_bad_seq == 5
    assert "missing" in report.findings[0].message


def test_reordering_two_rows_is_detected(runtime: Runtime) -> None:
    fill(runtime)
    with runtime.db.begin() as conn, tampering(conn):
        conn.execute(text("UPDATE records SET seq = 1000 WHERE seq = 3"))
        conn.execute(text("UPDATE records SET seq = 3 WHERE seq = 4"))
        conn.execute(text("UPDATE records SET seq = 4 WHERE seq = 1000"))
    assert verify(runtime).first_bad_seq == 3


def test_a_duplicated_row_is_detected(runtime: Runtime) -> None:
    fill(runtime)
    with runtime.db.begin() as conn, tampering(conn):
        conn.execute(
            text(
                "INSERT INTO records (seq, agency, agency_ref, kind, subject_id, rule, rule_version,"
                " jurisdiction, occurred_on, recorded_at, evidence, target_seq, content_hash, leaf_hash)"
                " SELECT 13, agency, agency_ref || '-copy', kind, subject_id, rule, rule_version,"
                " jurisdiction, occurred_on, recorded_at, evidence, target_seq, content_hash, leaf_hash"
                " FROM records WHERE seq = 2"
            )
        )
    report = verify(runtime)
    assert report.first_bad_seq == 13


def test_a_truncated_tail_is_detected_against_a_saved_checkpoint(runtime: Runtime) -> None:
    fill(runtime)
    with runtime.db.read() as conn:
        saved = latest_tree_head(conn)["checkpoint"]  # type: ignore[index]
    with runtime.db.begin() as conn, tampering(conn):
        conn.execute(text("DELETE FROM records WHERE seq > 8"))
        # The intruder also removes the tree heads that mention the tail ...
        if conn.dialect.name == "sqlite":
            unprotect(conn, "tree_heads")
        conn.execute(text("DELETE FROM tree_heads WHERE size > 8"))
        if conn.dialect.name == "sqlite":
            protect(conn, "tree_heads")
    assert verify(runtime).ok  # ... so the database alone looks consistent,
    report = verify(runtime, saved)  # but a checkpoint saved earlier is not fooled.
    assert report.first_bad_seq == 9
    assert "truncated" in report.findings[0].message


def test_checkpoints_verify_and_proofs_check_out(runtime: Runtime) -> None:
    fill(runtime, batches=4, size=5)
    with runtime.db.read() as conn:
        head = latest_tree_head(conn)
        assert head is not None
        cp = verify_checkpoint(head["checkpoint"], runtime.log.signer.verifier_key())
        for seq in range(1, 21):
            proof = audit.inclusion(conn, seq, 20)
            assert verify_inclusion(
                bytes.fromhex(proof["leaf_hash"]),
                seq - 1,
                20,
                [bytes.fromhex(h) for h in proof["proof"]],
                cp.root,
            )
        c = audit.consistency(conn, 5, 20)
        assert verify_consistency(
            5, 20, bytes.fromhex(c["old_root"]), cp.root, [bytes.fromhex(h) for h in c["proof"]]
        )


def test_audit_endpoints(runtime: Runtime) -> None:
    fill(runtime, batches=2, size=3)
    with runtime.db.begin() as conn:
        token = create_token(conn, "auditor")
    client = TestClient(create_app(runtime), headers={"Authorization": f"Bearer {token}"})
    head = client.get("/api/v1/audit/tree-head")
    assert head.status_code == 200 and head.text.splitlines()[1] == "6"
    key = client.get("/api/v1/audit/key").json()["verifier_key"]
    cp = verify_checkpoint(head.text, key)
    proof = client.get("/api/v1/audit/proof/4").json()
    assert verify_inclusion(
        bytes.fromhex(proof["leaf_hash"]), 3, 6, [bytes.fromhex(h) for h in proof["proof"]], cp.root
    )
    cons = client.get("/api/v1/audit/consistency", params={"from": 3, "to": 6}).json()
    assert verify_consistency(
        3, 6, bytes.fromhex(cons["old_root"]), cp.root, [bytes.fromhex(h) for h in cons["proof"]]
    )
    assert client.get("/api/v1/audit/proof/99").status_code == 404
    assert client.get("/api/v1/audit/consistency", params={"from": 5, "to": 3}).status_code == 422
