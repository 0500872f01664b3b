"""Verification of the whole ledger against its signed tree heads, and proofs.

``verify`` recomputes every leaf from the stored record, every signed root
from those leaves, and checks each checkpoint's signature. It names the first
sequence number that does not hold:

- a changed field: that record's leaf no longer matches (``seq N: ...``);
- a changed field whose leaf hash was also rewritten: the next signed root
  no longer matches (``seq A..B``: the altered record lies in that range);
- a deleted row: a gap in the sequence; a truncated tail: a tree head (or a
  checkpoint saved earlier) larger than the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from credo.ids import SubjectId
from credo.ledger.checkpoint import CheckpointError, verify_checkpoint
from credo.ledger.log import leaf_for, leaf_hashes, record_rows
from credo.ledger.merkle import CompactRange, SubtreeCache, consistency_proof, inclusion_proof, root
from credo.store.tables import tree_heads


@dataclass(frozen=True)
class Finding:
    seq: int | None
    message: str


@dataclass
class VerifyReport:
    size: int = 0
    root: bytes = b""
    tree_heads: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [f.seq for f in self.findings if f.seq is not None]
        return min(seqs) if seqs else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "size": self.size,
            "root": self.root.hex(),
            "tree_heads": self.tree_heads,
            "first_bad_seq": self.first_bad_seq,
            "findings": [{"seq": f.seq, "message": f.message} for f in self.findings],
        }


def verify(
    conn: Connection, verifier_key: str, checkpoint_text: str | None = None, batch: int = 50_000
) -> VerifyReport:
    report = VerifyReport()
    heads = list(conn.execute(select(tree_heads).order_by(tree_heads.c.size)))
    report.tree_heads = len(heads)
    frontier = CompactRange()
    head_i = 0
    prev_head = 0
    root_broken = False
    leaf_bad_in_range = False
    expected = 1
    after = 0
    while True:
        rows = record_rows(conn, after_seq=after, limit=batch)
        if not rows:
            break
        for row in rows:
            seq = int(row["seq"])
            if seq != expected:
                report.findings.append(Finding(expected, f"seq {expected}: missing (next stored is {seq})"))
                # Later leaves cannot line up with the signed roots any more.
                report.size = frontier.size
                return _finish(report, heads, head_i, checkpoint_text, verifier_key, conn)
            subject = SubjectId(row["subject_kind"], row["subject_identifier"])
            leaf = leaf_for(row, subject)
            if leaf != bytes(row["leaf_hash"]):
                leaf_bad_in_range = True
                report.findings.append(
                    Finding(seq, f"seq {seq}: the stored record does not match its leaf hash (altered)")
                )
            # Roots are checked over the stored leaf hashes: a field changed
            # without its leaf is named above, a rewritten leaf by the root below.
            frontier.append(bytes(row["leaf_hash"]))
            while head_i < len(heads) and heads[head_i].size == frontier.size:
                head = heads[head_i]
                if frontier.root() != bytes(head.root) and not root_broken and not leaf_bad_in_range:
                    root_broken = True  # every later root differs too: name the first range only
                    report.findings.append(
                        Finding(
                            prev_head + 1,
                            f"seq {prev_head + 1}..{head.size}: records do not match the signed tree head "
                            f"of size {head.size} (a record in this range was altered)",
                        )
                    )
                _check_signature(report, head.checkpoint, head.size, bytes(head.root), verifier_key)
                prev_head = head.size
                leaf_bad_in_range = False
                head_i += 1
            expected += 1
        after = int(rows[-1]["seq"])
    report.size = frontier.size
    report.root = frontier.root()
    return _finish(report, heads, head_i, checkpoint_text, verifier_key, conn)


def _check_signature(report: VerifyReport, text: str, size: int, root_hash: bytes, key: str) -> None:
    try:
        cp = verify_checkpoint(text, key)
    except CheckpointError as exc:
        report.findings.append(Finding(None, f"tree head of size {size}: {exc}"))
        return
    if cp.size != size or cp.root != root_hash:
        report.findings.append(Finding(None, f"tree head of size {size}: checkpoint text disagrees with row"))


def _finish(
    report: VerifyReport,
    heads: list[Any],
    head_i: int,
    checkpoint_text: str | None,
    key: str,
    conn: Connection,
) -> VerifyReport:
    for head in heads[head_i:]:
        report.findings.append(
            Finding(
                report.size + 1,
                f"seq {report.size + 1}: tree head of size {head.size} signed, but the ledger has only "
                f"{report.size} records (tail deleted)",
            )
        )
    covered = heads[-1].size if heads else 0
    if report.size > covered and not report.findings:
        report.findings.append(
            Finding(
                covered + 1, f"seq {covered + 1}..{report.size}: records not covered by any signed tree head"
            )
        )
    if checkpoint_text is not None:
        try:
            cp = verify_checkpoint(checkpoint_text, key)
        except CheckpointError as exc:
            report.findings.append(Finding(None, f"checkpoint file: {exc}"))
            return report
        if cp.size > report.size:
            report.findings.append(
                Finding(
                    report.size + 1,
                    f"seq {report.size + 1}: the saved checkpoint covers {cp.size} records but the ledger "
                    f"has only {report.size} (truncated)",
                )
            )
        elif root(leaf_hashes(conn, cp.size)) != cp.root:
            report.findings.append(
                Finding(
                    1,
                    f"seq 1..{cp.size}: the ledger no longer matches the saved checkpoint of size {cp.size}",
                )
            )
    return report


def inclusion(conn: Connection, seq: int, size: int) -> dict[str, Any]:
    """An RFC 9162 inclusion proof of record ``seq`` in the tree of ``size`` leaves."""
    leaves = leaf_hashes(conn, size)
    if size > len(leaves) or not 1 <= seq <= size:
        raise ValueError(f"seq must be between 1 and the tree size {size}")
    cache = SubtreeCache(leaves)
    return {
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": size,
        "leaf_hash": leaves[seq - 1].hex(),
        "proof": [h.hex() for h in inclusion_proof(cache, seq - 1, size)],
        "root": root(leaves).hex(),
    }


def consistency(conn: Connection, old: int, new: int) -> dict[str, Any]:
    """An RFC 9162 consistency proof between two tree sizes."""
    leaves = leaf_hashes(conn, new)
    if not 0 < old <= new <= len(leaves):
        raise ValueError(f"need 0 < from <= to <= {len(leaves)}, got from={old} to={new}")
    cache = SubtreeCache(leaves)
    return {
        "from": old,
        "to": new,
        "proof": [h.hex() for h in consistency_proof(cache, old, new)],
        "old_root": root(leaves[:old]).hex(),
        "new_root": root(leaves).hex(),
    }
