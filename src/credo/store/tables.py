"""The registry's tables (SQLAlchemy Core).

Migrations in ``credo/migrations`` create these; this module is what the code
queries. ``tests/store/test_migrations.py`` fails when the two drift apart.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

# Stable constraint names so migrations can refer to them on both databases.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

UTCDateTime = DateTime(timezone=True)
# SQLite assigns ids only to an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = BigInteger().with_variant(Integer, "sqlite")

agencies = Table(
    "agencies",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("jurisdiction", String(32), nullable=False),
    Column("name_en", Text, nullable=False),
    Column("name_zh", Text, nullable=False),
    Column("kind", String(32), nullable=False),
)

subjects = Table(
    "subjects",
    metadata,
    # The subject number: dense, so check indexes can be bitmaps over it.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("identifier", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("kind", "identifier"),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("agency", String(64), ForeignKey("agencies.code"), nullable=True),
    Column("relying_party", String(64), nullable=True),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=True),
    Column("jurisdiction", String(32), nullable=True),
    Column("label", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
)

# Every revocation of a token, with who revoked it and why: tokens.revoked_at
# is what authentication reads; this append-only row is the record of it.
token_revocations = Table(
    "token_revocations",
    metadata,
    Column("token_id", Integer, ForeignKey("tokens.id"), primary_key=True),
    Column("revoked_at", UTCDateTime, nullable=False),
    Column("revoked_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

records = Table(
    "records",
    metadata,
    # The ledger sequence number; leaf index in the Merkle log is seq - 1.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("agency", String(64), ForeignKey("agencies.code"), nullable=False),
    Column("agency_ref", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=False),
    Column("rule", String(96), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("jurisdiction", String(32), nullable=False),
    Column("occurred_on", Date, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("evidence", Text, nullable=False, default=""),
    Column("target_seq", BigInteger, ForeignKey("records.seq"), nullable=True),
    # sha256 of what the agency sent: a resent batch is a duplicate only when equal.
    Column("content_hash", LargeBinary(32), nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    UniqueConstraint("agency", "agency_ref"),
    Index("ix_records_subject_id", "subject_id"),
    Index("ix_records_target_seq", "target_seq"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("agency", String(64), nullable=False),
    Column("source", Text, nullable=False),
    Column("line", Integer, nullable=True),
    Column("raw", Text, nullable=False),
    Column("reasons", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Index("ix_quarantine_agency", "agency"),
)

# Quarantine rows are never edited: a successful retry is a new row here.
quarantine_releases = Table(
    "quarantine_releases",
    metadata,
    Column("quarantine_id", BigInteger, ForeignKey("quarantine.id"), primary_key=True),
    Column("seq", BigInteger, ForeignKey("records.seq"), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("released_at", UTCDateTime, nullable=False),
)

tree_heads = Table(
    "tree_heads",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("checkpoint", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row: the Merkle frontier after the last batch, so appending is O(log n).
log_state = Table(
    "log_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("frontier", Text, nullable=False),
)

# Appeals against a record (the due-process issue fills in the workflow);
# scoring already reads them: overturned voids, overdue-and-undecided suspends.
appeals = Table(
    "appeals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("record_seq", BigInteger, ForeignKey("records.seq"), nullable=False),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=False),
    Column("filed_at", UTCDateTime, nullable=False),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("grounds", Text, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("outcome", String(16), nullable=True),
    Column("reviewer", Text, nullable=True),
    Column("reasons", Text, nullable=True),
    Column("listing_id", BigInteger, ForeignKey("listings.id"), nullable=True),
    Column("notice_id", BigInteger, ForeignKey("notices.id"), nullable=True),
    Column("filed_by", Text, nullable=False, server_default=""),
    Column("attachments", Text, nullable=False, server_default="[]"),
    Column("amended_seq", BigInteger, ForeignKey("records.seq"), nullable=True),
    Column("suspension_noticed", Boolean, nullable=False, server_default=false()),
    Index("ix_appeals_record_seq", "record_seq"),
    Index("ix_appeals_subject_id", "subject_id"),
)

relying_parties = Table(
    "relying_parties",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("sector", String(64), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

relying_party_measures = Table(
    "relying_party_measures",
    metadata,
    Column("party", String(64), ForeignKey("relying_parties.code"), primary_key=True),
    Column("measure", String(64), primary_key=True),
)

# A listing, derived from the ledger and the catalogs by the lists job. Its
# end is a separate row (listing_ends) so that history is never rewritten.
listings = Table(
    "listings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=False),
    Column("list_code", String(96), nullable=False),
    Column("scheme", String(32), nullable=False),
    Column("cause", String(8), nullable=False),  # rule | grade
    Column("cause_seq", BigInteger, ForeignKey("records.seq"), nullable=True),
    Column("started_on", Date, nullable=False),
    Column("planned_end_on", Date, nullable=False),
    Column("grace_until", Date, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_listings_subject_id", "subject_id"),
)

listing_ends = Table(
    "listing_ends",
    metadata,
    Column("listing_id", BigInteger, ForeignKey("listings.id"), primary_key=True),
    Column("ended_on", Date, nullable=False),
    Column("reason", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# Grade-based blacklists warn first; a warning lapses when the grade recovers.
list_warnings = Table(
    "list_warnings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=False),
    Column("list_code", String(96), nullable=False),
    Column("scheme", String(32), nullable=False),
    Column("warned_on", Date, nullable=False),
    Column("lapsed_on", Date, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_list_warnings_subject_id", "subject_id"),
)

# Notices to subjects. The due-process issue adds delivery; a listing is
# enforceable only once its notice row exists.
notices = Table(
    "notices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("listing_id", BigInteger, ForeignKey("listings.id"), nullable=True),
    Column("warning_id", BigInteger, ForeignKey("list_warnings.id"), nullable=True),
    Column("record_seq", BigInteger, ForeignKey("records.seq"), nullable=True),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_notices_subject_id", "subject_id"),
)

# Every relying-party call and its answers, one row per call (a manifest of 300 is one row):
# what the subject sees. Item i of the call has the ref f"{id}-{i}"; ``subjects`` holds the
# canonical subject texts and ``measures`` the measures (one when every item asks the same),
# newline-separated; ``decisions`` one letter per item (a: allowed, d: denied, g: granted).
# A subject's calls are found by an inverted index of ``subjects``: on PostgreSQL a GIN index
# of its lines' hashes, written in the call's transaction (migrations 0008 and 0011); on SQLite
# a contentless FTS5 table ``check_calls_index`` (rowid = seq) and the last call it holds,
# ``check_calls_indexed``, filled behind the commits (migration 0014, lists/checklog.py).
#: What the migrations make for that index, which these tables do not describe.
CHECK_CALLS_INDEX = ("check_calls_index", "ix_check_calls_subjects")

check_calls = Table(
    "check_calls",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("party", String(64), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("checked_at", UTCDateTime, nullable=False),
    Column("measures", Text, nullable=False),
    Column("subjects", Text, nullable=False),
    Column("decisions", Text, nullable=False),
)

# Bumped by every change the check index must see (listing, end, notice).
list_changes = Table(
    "list_changes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subject_id", Integer, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
)

# Where a subject's notices go; the outbox delivers each notice to each channel.
subject_channels = Table(
    "subject_channels",
    metadata,
    Column("subject_id", Integer, ForeignKey("subjects.id"), primary_key=True),
    Column("channel", String(16), primary_key=True),  # email | webhook
    Column("address", Text, nullable=False),
    Column("language", String(8), nullable=False, server_default="zh"),
)

notice_deliveries = Table(
    "notice_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("notice_id", BigInteger, ForeignKey("notices.id"), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("address", Text, nullable=False),
    Column("state", String(8), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Index("ix_notice_deliveries_state", "state", "next_attempt_at"),
)

# A subject's request to clear a rectifiable record early on the strength of
# a restorative act; an approval is a restoration record in the ledger.
rectification_requests = Table(
    "rectification_requests",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("subject_id", Integer, ForeignKey("subjects.id"), nullable=False),
    Column("record_seq", BigInteger, ForeignKey("records.seq"), nullable=False),
    Column("act", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("filed_at", UTCDateTime, nullable=False),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("outcome", String(16), nullable=True),  # approved | refused
    Column("decided_by", Text, nullable=True),
    Column("reasons", Text, nullable=True),
    Column("restoration_seq", BigInteger, ForeignKey("records.seq"), nullable=True),
    Index("ix_rectification_requests_subject_id", "subject_id"),
)

catalog_loads = Table(
    "catalog_loads",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("loaded_at", UTCDateTime, nullable=False),
    Column("files", Text, nullable=False),
)

# Web sign-in: a one-time link signs its holder in as one token's principal,
# once, before it expires (``credo token create --link``).
login_links = Table(
    "login_links",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("token_id", Integer, ForeignKey("tokens.id"), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime, nullable=True),
)

# An organisation's registered name as an agency reported it, so the public
# lookup can find a listed organisation by name (people only by identifier).
organisation_names = Table(
    "organisation_names",
    metadata,
    Column("subject_id", Integer, ForeignKey("subjects.id"), primary_key=True),
    Column("agency", String(64), ForeignKey("agencies.code"), primary_key=True),
    Column("name", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# One row per completed daily refresh of every listing (the clock's; migration 0009): a server
# starting again on the same day, under the same catalogs, skips the full scoring pass.
clock_runs = Table(
    "clock_runs",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("catalog_digest", String(64), nullable=False),
    Column("finished_at", UTCDateTime, nullable=False),
    Column("changes", Integer, nullable=False),
)

# One row per API request, allowed or denied: who, as what, did what, to whom.
access_log = Table(
    "access_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("token_id", Integer, nullable=True),
    Column("role", String(16), nullable=False),
    Column("operation", String(200), nullable=False),
    Column("subject", String(80), nullable=True),
    Column("purpose", Text, nullable=True),
    Column("status", Integer, nullable=False),
    Column("outcome", String(8), nullable=False),
    Index("ix_access_log_at", "at"),
)

__all__ = [
    "access_log",
    "agencies",
    "appeals",
    "catalog_loads",
    "check_calls",
    "clock_runs",
    "list_changes",
    "list_warnings",
    "listing_ends",
    "listings",
    "log_state",
    "login_links",
    "metadata",
    "notice_deliveries",
    "notices",
    "organisation_names",
    "quarantine",
    "quarantine_releases",
    "records",
    "rectification_requests",
    "relying_parties",
    "relying_party_measures",
    "subject_channels",
    "subjects",
    "token_revocations",
    "tokens",
    "tree_heads",
]
