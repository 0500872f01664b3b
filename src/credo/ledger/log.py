"""The ledger as a Merkle log: leaves, the frontier, signed tree heads, proofs.

Leaf ``seq - 1`` is ``SHA-256(0x00 || RFC 8785 JSON of record seq)``; the
JSON holds every stored field of the record, so changing, deleting,
reordering or duplicating a row changes a leaf or a root. After every batch
the new root is signed as a C2SP checkpoint and kept in ``tree_heads``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, select, update

from credo.ids import SubjectId
from credo.ledger.canonical import MAX_SAFE_INTEGER, canonical_bytes, record_leaf_hash
from credo.ledger.checkpoint import Signer, load_or_create_signing_key
from credo.ledger.merkle import CompactRange
from credo.store.tables import log_state, records, subjects, tree_heads

_sha256 = hashlib.sha256


def utc_text(moment: datetime) -> str:
    """One text form for a stored instant, whatever the driver hands back.

    SQLite returns naive datetimes (credo only ever stores UTC there);
    PostgreSQL returns aware ones in the session's zone.
    """
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_document(row: Mapping[str, Any], subject: SubjectId) -> dict[str, Any]:
    """The record as the Merkle log sees it: every stored field except its hashes' own."""
    return {
        **_fields_known_early(row, subject),
        "seq": int(row["seq"]),
        "recorded_at": utc_text(row["recorded_at"]),
    }


def _fields_known_early(row: Mapping[str, Any], subject: SubjectId) -> dict[str, Any]:
    """The leaf document but for ``seq`` and ``recorded_at``, which ingest fixes under the log lock."""
    occurred = row["occurred_on"]
    return {
        "agency": row["agency"],
        "agency_ref": row["agency_ref"],
        "kind": row["kind"],
        "subject": str(subject),
        "rule": row["rule"],
        "rule_version": int(row["rule_version"]),
        "jurisdiction": row["jurisdiction"],
        "occurred_on": occurred.isoformat() if isinstance(occurred, date) else str(occurred),
        "evidence": row["evidence"],
        "target_seq": None if row["target_seq"] is None else int(row["target_seq"]),
        "content_hash": bytes(row["content_hash"]).hex(),
    }


def leaf_for(row: Mapping[str, Any], subject: SubjectId) -> bytes:
    return record_leaf_hash(leaf_document(row, subject))


#: The leaf document's fields in RFC 8785 order (every name is ASCII, so
#: UTF-16 order is plain string order). ``recorded_at`` and ``seq`` are known
#: only once the log lock is held; the fields after each start the next part
#: of a :class:`LeafTemplate`.
LEAF_FIELDS = (
    "agency",
    "agency_ref",
    "content_hash",
    "evidence",
    "jurisdiction",
    "kind",
    "occurred_on",
    "recorded_at",
    "rule",
    "rule_version",
    "seq",
    "subject",
    "target_seq",
)


class LeafTemplate(NamedTuple):
    """A record's leaf hash input with ``recorded_at`` and ``seq`` still open.

    RFC 8785 writes an object as ``{`` + its members in key order, joined by
    commas, + ``}``, each member (``"name":value``) written on its own. So
    the canonical JSON of the document without the two late fields holds
    every other member already in place: cut it before ``,"rule":`` and
    before ``,"subject":`` and put ``recorded_at`` and ``seq`` in the cuts.
    The cuts are found by searching for those bytes, which occur nowhere
    else: inside a JSON string a quote is always escaped (``\\"``), so a
    comma followed by a quote is always a member boundary (and UTF-8 never
    uses those bytes inside a multi-byte character).

    Ingest builds a template per record before taking the lock; under the
    lock it only fills in the two fields and hashes (:meth:`leaf`). The
    result is :func:`leaf_for` of the record (``tests/ledger/test_ingest_path.py``).
    """

    head: bytes
    middle: bytes
    tail: bytes

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> LeafTemplate:
        """The template of a leaf document without ``recorded_at`` and ``seq``."""
        text = canonical_bytes(doc)
        rule = text.index(b',"rule":')
        subject = text.index(b',"subject":', rule)
        return cls(
            b"\x00" + text[:rule] + b',"recorded_at":',
            text[rule:subject] + b',"seq":',
            text[subject:],
        )

    def leaf(self, recorded_at: bytes, seq: int) -> bytes:
        """The leaf hash with ``recorded_at`` (from :func:`recorded_json`) and ``seq`` filled in."""
        if not 0 < seq <= MAX_SAFE_INTEGER:
            raise ValueError(f"seq {seq} is outside what RFC 8785 numbers hold exactly")
        return _sha256(self.head + recorded_at + self.middle + str(seq).encode() + self.tail).digest()


def recorded_json(moment: datetime) -> bytes:
    """``recorded_at`` of a leaf document as its canonical JSON value."""
    return canonical_bytes({"v": utc_text(moment)})[len(b'{"v":') : -1]


def leaf_template(row: Mapping[str, Any], subject: SubjectId) -> LeafTemplate:
    """The :class:`LeafTemplate` of a record (``row`` as for :func:`leaf_document`, without
    ``seq`` and ``recorded_at``)."""
    return LeafTemplate.of(_fields_known_early(row, subject))


_json = orjson.dumps


def record_leaf_template(
    agency: str,
    agency_ref: str,
    kind: str,
    rule: str,
    rule_version: int,
    jurisdiction: str,
    occurred_on: date,
    evidence: str,
    target_seq: int | None,
    content_hash: bytes,
    subject: SubjectId,
) -> LeafTemplate:
    """:func:`leaf_template` of a record given field by field, written directly (ingest's path).

    The document has fixed ASCII member names, so its RFC 8785 form is the
    members in :data:`LEAF_FIELDS` order, each name followed by its value:
    a string is ``orjson.dumps`` of it (exactly JCS for every string orjson
    accepts, ``tests/ledger/test_canonical.py``), a safe integer its digits,
    a date ``YYYY-MM-DD`` and a hash its lowercase hex (neither needs an
    escape). Anything else -- a value of another type, an integer beyond
    2**53 - 1, a lone surrogate -- goes through :meth:`LeafTemplate.of`,
    which refuses it as :func:`canonical_bytes` does. The two paths are
    compared with the ``rfc8785`` reference in ``tests/ledger/test_ingest_path.py``.
    """
    if (
        type(agency) is str
        and type(agency_ref) is str
        and type(kind) is str
        and type(rule) is str
        and type(jurisdiction) is str
        and type(evidence) is str
        and type(occurred_on) is date
        and type(content_hash) is bytes
        and type(rule_version) is int
        and 0 <= rule_version <= MAX_SAFE_INTEGER
        and (target_seq is None or (type(target_seq) is int and 0 <= target_seq <= MAX_SAFE_INTEGER))
    ):
        try:
            subject_text = _json(str(subject))
            return LeafTemplate(
                b'\x00{"agency":'
                + _json(agency)
                + b',"agency_ref":'
                + _json(agency_ref)
                + b',"content_hash":"'
                + content_hash.hex().encode()
                + b'","evidence":'
                + _json(evidence)
                + b',"jurisdiction":'
                + _json(jurisdiction)
                + b',"kind":'
                + _json(kind)
                + b',"occurred_on":"'
                + occurred_on.isoformat().encode()
                + b'","recorded_at":',
                b',"rule":' + _json(rule) + b',"rule_version":' + str(rule_version).encode() + b',"seq":',
                b',"subject":'
                + subject_text
                + b',"target_seq":'
                + (b"null" if target_seq is None else str(target_seq).encode())
                + b"}",
            )
        except orjson.JSONEncodeError:
            pass  # a lone surrogate: the general path says why it cannot be hashed
    row = {
        "agency": agency,
        "agency_ref": agency_ref,
        "kind": kind,
        "rule": rule,
        "rule_version": rule_version,
        "jurisdiction": jurisdiction,
        "occurred_on": occurred_on,
        "evidence": evidence,
        "target_seq": target_seq,
        "content_hash": content_hash,
    }
    return leaf_template(row, subject)


@dataclass(frozen=True)
class LogHead:
    size: int
    frontier: CompactRange
    checkpoint: str | None = None

    @property
    def root(self) -> bytes:
        return self.frontier.root()


class LedgerLog:
    """Appends leaves under a lock and signs the new tree head."""

    def __init__(self, key_path: Path, origin: str) -> None:
        self.key_path = key_path
        self.origin = origin
        self._signer: Signer | None = None

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = load_or_create_signing_key(self.key_path, self.origin)
        return self._signer

    def lock(self, conn: Connection) -> LogHead:
        """Take the append lock (SQLite: the write transaction holds it already)."""
        q = select(log_state.c.size, log_state.c.frontier).where(log_state.c.id == 1)
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        row = conn.execute(q).one()
        hashes = [bytes.fromhex(h) for h in json.loads(row.frontier)]
        return LogHead(int(row.size), CompactRange.from_hashes(int(row.size), hashes))

    def append(self, conn: Connection, head: LogHead, leaves: Sequence[bytes], now: datetime) -> LogHead:
        frontier = head.frontier.copy()
        frontier.extend(leaves)
        conn.execute(
            update(log_state)
            .where(log_state.c.id == 1, log_state.c.size == head.size)
            .values(size=frontier.size, frontier=json.dumps([h.hex() for h in frontier.to_hashes()]))
        )
        root = frontier.root()
        checkpoint = self.signer.sign_checkpoint(self.origin, frontier.size, root)
        conn.execute(
            tree_heads.insert().values(size=frontier.size, root=root, checkpoint=checkpoint, created_at=now)
        )
        return LogHead(frontier.size, frontier, checkpoint)


def latest_tree_head(conn: Connection) -> Mapping[str, Any] | None:
    row = conn.execute(select(tree_heads).order_by(tree_heads.c.size.desc()).limit(1)).first()
    return None if row is None else dict(row._mapping)


def leaf_hashes(conn: Connection, size: int | None = None) -> list[bytes]:
    """Stored leaf hashes in log order (the first ``size`` of them)."""
    q = select(records.c.leaf_hash).order_by(records.c.seq)
    if size is not None:
        q = q.where(records.c.seq <= size)
    return [bytes(h) for h in conn.execute(q).scalars()]


def record_rows(conn: Connection, after_seq: int = 0, limit: int = 50_000) -> list[Mapping[str, Any]]:
    """Stored records with their subject, in sequence order (for verification and export)."""
    q = (
        select(
            records, subjects.c.kind.label("subject_kind"), subjects.c.identifier.label("subject_identifier")
        )
        .join(subjects, subjects.c.id == records.c.subject_id)
        .where(records.c.seq > after_seq)
        .order_by(records.c.seq)
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(q)]
