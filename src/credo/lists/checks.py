"""Relying-party checks: yes or no per subject and measure, and nothing else.

The answer to a party is exactly ``{subject, measure, decision, ref}``.
The log row keeps what the subject may later see: who asked, when, for
what purpose, and the answer; the ``ref`` lets the subject find the
listing behind a denial and contest it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from credo.ids import IdentifierError, parse_subject_ref
from credo.lists.index import CheckIndex

MAX_ITEMS = 1000


class CheckError(ValueError):
    """The call as a whole is refused; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Party:
    code: str
    purpose: str
    measures: frozenset[str]


def answer(
    index: CheckIndex, party: Party, items: Sequence[Any], now: datetime
) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Decide every item; returns (answers for the party, rows for the check log).

    A measure the party is not registered for refuses the whole call (403):
    a party must not learn anything outside its purpose, not even by mistake.
    """
    if len(items) > MAX_ITEMS:
        raise CheckError(413, f"body: at most {MAX_ITEMS} items per call, got {len(items)}")
    call = secrets.token_hex(6)
    answers: list[dict[str, str]] = []
    rows: list[dict[str, Any]] = []
    normalised: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("subject"), str)
            or not isinstance(item.get("measure"), str)
        ):
            raise CheckError(422, f"items[{i}]: must be an object with string fields subject and measure")
        measure = item["measure"]
        if measure not in party.measures:
            raise CheckError(403, f"items[{i}].measure: {party.code} is not registered for {measure!r}")
        try:
            subject = str(parse_subject_ref(item["subject"]))
        except IdentifierError as exc:
            raise CheckError(422, f"items[{i}].subject: {exc}") from None
        normalised.append((subject, measure))
    for i, (subject, measure) in enumerate(normalised):
        decision = index.decide(measure, subject)
        ref = f"{call}-{i}"
        answers.append({"subject": items[i]["subject"], "measure": measure, "decision": decision, "ref": ref})
        rows.append(
            {
                "ref": ref,
                "party": party.code,
                "subject": subject,
                "measure": measure,
                "purpose": party.purpose,
                "decision": decision,
                "listing_id": None,
                "checked_at": now,
            }
        )
    return answers, rows
