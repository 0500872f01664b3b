"""The check index: one compressed bitmap of subject numbers per measure.

A relying party's question "may subject s use measure m today?" is a
bitmap membership test, not a query: about 100 ns in-process. The index is
built from the listings enforceable today and rebuilt when a listing
changes (``list_changes``) or the date turns over.

>>> idx = CheckIndex.from_enforceable({"air-travel": "deny"}, {"air-travel": [7]}, {"person:X": 7})
>>> idx.decide("air-travel", "person:X"), idx.decide("air-travel", "person:Y")
('denied', 'allowed')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from pyroaring import BitMap

DECISIONS = ("allowed", "denied", "granted")


@dataclass
class CheckIndex:
    effects: Mapping[str, str]  # measure -> deny | grant
    bitmaps: dict[str, BitMap] = field(default_factory=dict)
    # Only subjects that are on some bitmap need a number here: anyone else
    # is simply not listed, whatever their identifier.
    numbers: dict[str, int] = field(default_factory=dict)
    built_on: date | None = None
    version: int = 0

    @classmethod
    def from_enforceable(
        cls,
        effects: Mapping[str, str],
        members: Mapping[str, Iterable[int]],
        numbers: Mapping[str, int],
        *,
        built_on: date | None = None,
        version: int = 0,
    ) -> CheckIndex:
        return cls(
            effects=dict(effects),
            bitmaps={m: BitMap(ids) for m, ids in members.items()},
            numbers=dict(numbers),
            built_on=built_on,
            version=version,
        )

    def decide(self, measure: str, subject: str) -> str:
        """``denied``/``granted`` when an enforceable listing applies, else ``allowed``."""
        number = self.numbers.get(subject)
        if number is None:
            return "allowed"
        bitmap = self.bitmaps.get(measure)
        if bitmap is None or number not in bitmap:
            return "allowed"
        return "denied" if self.effects[measure] == "deny" else "granted"

    def size_in_bytes(self) -> int:
        return sum(len(b.serialize()) for b in self.bitmaps.values())
