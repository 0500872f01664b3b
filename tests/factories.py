"""Factories for records and subjects: valid by default, with named traits.

>>> RecordFactory(agency_ref="r1")["rule"]
'CN-ZJ-HZ.TRAFFIC-RED-LIGHT'
>>> RecordFactory(court_defaulter=True)["rule"]
'CN.COURT-DEFAULTER'
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import factory

from credo.ids import make_ric, make_uscc

_persons = itertools.count(1)


def person_id(n: int | None = None) -> str:
    """A valid resident identity number, different for each n (Hangzhou-born, 1990)."""
    n = next(_persons) if n is None else n
    return make_ric("330106", date(1990, 1, 1 + n % 28), n % 1000)


def org_id(n: int) -> str:
    return make_uscc("9", "1", "330100", f"{n:08d}X")


class RecordFactory(factory.DictFactory):
    """An incident as an agency sends it: a Hangzhou red-light ticket."""

    agency_ref = factory.Sequence(lambda n: f"ref-{n}")
    subject = factory.LazyFunction(person_id)
    rule = "CN-ZJ-HZ.TRAFFIC-RED-LIGHT"
    occurred_on = "2024-03-01"
    evidence = factory.Sequence(lambda n: f"https://example.invalid/ticket/{n}")

    class Params:
        # Reported by the Supreme People's Court, not the Hangzhou traffic police.
        court_defaulter = factory.Trait(rule="CN.COURT-DEFAULTER", occurred_on="2024-05-10")
        organisation = factory.Trait(subject=factory.Sequence(org_id))


def retraction(target_ref: str, **extra: Any) -> dict[str, Any]:
    return {
        "agency_ref": f"retract-{target_ref}",
        "kind": "retraction",
        "target_ref": target_ref,
        "occurred_on": "2024-06-01",
        **extra,
    }
