"""Relying-party checks: yes or no per subject and measure, and nothing else.

The answer to a party is exactly ``{subject, measure, decision, ref}``.
The logged call (``checklog.Call``) keeps what the subject may later see:
who asked, when, for what purpose, and the answer; the ``ref`` lets the
subject find the listing behind a denial and contest it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from credo.ids import AT_ONCE, IdentifierError, canonical_persons, parse_subject_ref
from credo.lists.checklog import Call
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


_CALL_KEY = secrets.token_bytes(16)
_CALLS = itertools.count()


def call_id() -> str:
    """A new call's reference prefix: a keyed hash of (process, call number), 96 bits.

    Unique (a new input each time, so a repeat is a 96-bit collision), unguessable,
    and it says nothing about how many calls other parties made. No system call: an
    ``os.urandom`` per call releases the GIL on the event loop, and getting it back
    behind the server's other threads took up to milliseconds.
    """
    data = f"{os.getpid()}:{next(_CALLS)}".encode()
    return hashlib.blake2b(data, key=_CALL_KEY, digest_size=12).hexdigest()


@lru_cache(maxsize=1 << 16)
def canonical(text: str) -> str:
    """``kind:identifier`` of a subject as a party wrote it (raises IdentifierError)."""
    return str(parse_subject_ref(text))


_REFS = tuple(f"-{i}" for i in range(MAX_ITEMS))  # what follows the call's id in each item's ref


def answer(
    index: CheckIndex, party: Party, items: Sequence[Any], now: datetime
) -> tuple[list[dict[str, str]], Call]:
    """Decide every item; returns (answers for the party, the call for the check log).

    A measure the party is not registered for refuses the whole call (403):
    a party must not learn anything outside its purpose, not even by mistake.
    The whole manifest is decided in one look-up (``CheckIndex.decide_many``).
    """
    if len(items) > MAX_ITEMS:
        raise CheckError(413, f"body: at most {MAX_ITEMS} items per call, got {len(items)}")
    try:  # a well-formed call is checked a column at a time, in C; any doubt: item by item
        given = [item["subject"] for item in items]
        measures = [item["measure"] for item in items]
        "".join(given), "".join(measures)  # TypeError unless every one is a str
        if not party.measures.issuperset(measures):
            raise TypeError
        # a manifest of people is checked at once (~60 us, then ~0.3 us a person); a short call,
        # anything else or a refusal one at a time (~11 us a subject first seen, then ~50 ns)
        fast = canonical_persons(given) if len(given) >= AT_ONCE else [None] * len(given)
        subjects = [c if c is not None else canonical(g) for c, g in zip(fast, given, strict=True)]
    except (TypeError, KeyError, IdentifierError):
        given, measures, subjects = _validated(party, items)
    decisions = index.decide_many(subjects, measures, canonical=True)
    call = call_id()
    answers = [
        {"subject": subject, "measure": measure, "decision": decision, "ref": call + ref}
        for subject, measure, decision, ref in zip(given, measures, decisions, _REFS, strict=False)
    ]
    return answers, Call(call, party.code, party.purpose, now, subjects, measures, decisions)


def _validated(party: Party, items: Sequence[Any]) -> tuple[list[str], list[str], list[str]]:
    """(subjects as given, measures, canonical subjects), or CheckError naming the first item
    refused and why (its shape, then its measure, then its subject)."""
    given: list[str] = []
    subjects: list[str] = []
    measures: list[str] = []
    registered = party.measures
    for i, item in enumerate(items):
        subject = item.get("subject") if type(item) is dict or isinstance(item, Mapping) else None
        measure = item.get("measure") if subject is not None else None
        if type(subject) is not str or type(measure) is not str:
            raise CheckError(422, f"items[{i}]: must be an object with string fields subject and measure")
        if measure not in registered:
            raise CheckError(403, f"items[{i}].measure: {party.code} is not registered for {measure!r}")
        try:
            subjects.append(canonical(subject))
        except IdentifierError as exc:
            raise CheckError(422, f"items[{i}].subject: {exc}") from None
        given.append(subject)
        measures.append(measure)
    return given, measures, subjects
