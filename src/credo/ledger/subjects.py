"""Subjects get a dense number on first sight; indexes and bitmaps use it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select

from credo.ids import SubjectId
from credo.store.tables import subjects


def subject_number(conn: Connection, subject: SubjectId, *, create: bool = False) -> int | None:
    """The subject's number, creating it when ``create`` (returns None when unknown)."""
    found = conn.execute(
        select(subjects.c.id).where(
            subjects.c.kind == subject.kind, subjects.c.identifier == subject.identifier
        )
    ).scalar()
    if found is not None or not create:
        return found
    return int(
        conn.execute(
            subjects.insert()
            .values(kind=subject.kind, identifier=subject.identifier, created_at=datetime.now(UTC))
            .returning(subjects.c.id)
        ).scalar_one()
    )
