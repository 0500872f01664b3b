"""Catalogs and questions as the small input relations of the definition.

The catalogs become four relations (rule versions, visibility, policies,
grade bands); a question "scheme J on date t as known at k" becomes a row of
``evaluations``. Dates travel as days since 1970-01-01 and instants as
microseconds since the epoch (UTC), the integers the definition computes with.

>>> day_number(date(2024, 3, 1)), from_day(19783)
(19783, datetime.date(2024, 3, 1))
>>> to_us(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
1000005
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import pyarrow as pa

from credo.catalog.registry import Registry
from credo.scoring.definition import INPUTS

EPOCH: Final = date(1970, 1, 1)
_EPOCH_TS: Final = datetime(1970, 1, 1, tzinfo=UTC)

_ARROW: Final[Mapping[str, pa.DataType]] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
}

Row = tuple[object, ...]


def day_number(d: date) -> int:
    """Days since 1970-01-01 (negative before)."""
    return (d - EPOCH).days


def from_day(n: int) -> date:
    return EPOCH + timedelta(days=n)


def to_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware instant (naive means UTC)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    delta = t - _EPOCH_TS
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(n: int) -> datetime:
    return _EPOCH_TS + timedelta(microseconds=n)


def local_date(instant: datetime, timezone: str) -> date:
    """The calendar date at ``instant`` in ``timezone`` (the scheme's "today")."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(ZoneInfo(timezone)).date()


@dataclass(frozen=True)
class Relation:
    """Rows of one input relation of the definition, with its declared columns."""

    name: str
    rows: tuple[Row, ...]

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        return INPUTS[self.name]

    def to_arrow(self) -> pa.Table:
        names = [c for c, _ in self.columns]
        arrays = [
            pa.array([row[i] for row in self.rows], type=_ARROW[t]) for i, (_, t) in enumerate(self.columns)
        ]
        return pa.Table.from_arrays(arrays, names=names)


@dataclass(frozen=True)
class Evaluation:
    """One question: the score in ``scheme`` on ``as_of`` as known at ``known_at``."""

    eval_id: int
    scheme: str
    as_of: date
    known_at: datetime

    def row(self) -> Row:
        return (self.eval_id, self.scheme, day_number(self.as_of), to_us(self.known_at))


def evaluations(items: Iterable[Evaluation]) -> Relation:
    return Relation("evaluations", tuple(e.row() for e in items))


def ask(
    catalogs: Registry,
    schemes: Sequence[str],
    *,
    as_of: date | None = None,
    known_at: datetime | None = None,
) -> tuple[Evaluation, ...]:
    """One evaluation per scheme. ``known_at`` defaults to now; ``as_of`` to
    the date at ``known_at`` in each scheme's own timezone."""
    k = known_at or datetime.now(UTC)
    if k.tzinfo is None:
        k = k.replace(tzinfo=UTC)
    out = []
    for i, scheme in enumerate(schemes, start=1):
        t = as_of or local_date(k, catalogs.policy(scheme).timezone)
        out.append(Evaluation(i, scheme, t, k))
    return tuple(out)


def catalog_relations(catalogs: Registry) -> tuple[Relation, ...]:
    """The four catalog relations of every jurisdiction in ``catalogs``.

    A rule version keeps the jurisdiction of its rule; a scheme sees the
    rules of its own jurisdiction and of every ancestor.
    """
    rules: list[Row] = []
    for j in catalogs.jurisdictions():
        for rule in catalogs.rules_for_scheme(j.code):
            if catalogs.rule_jurisdiction(rule.code) != j.code:
                continue  # listed once, under the jurisdiction that defines it
            rules.append(
                (rule.code, rule.version, j.code, rule.points, rule.expiry_days, int(rule.rectifiable))
            )
    visibility: list[Row] = []
    policies: list[Row] = []
    bands: list[Row] = []
    for j in catalogs.jurisdictions():
        visibility += [(j.code, a) for a in catalogs.ancestors(j.code)]
        p = catalogs.policy(j.code)
        policies.append(
            (
                j.code,
                p.base_score,
                p.floor,
                p.ceiling,
                p.rectification_period_days,
                p.default_expiry_days,
                p.positive_cap_per_year,
            )
        )
        # Bands are sorted best first: each band ends where the one above starts.
        above: int | None = None
        for band in p.grade_bands:
            bands.append((j.code, band.grade, band.min, above))
            above = band.min
    return (
        Relation("catalog_rules", tuple(rules)),
        Relation("catalog_visibility", tuple(visibility)),
        Relation("catalog_policies", tuple(policies)),
        Relation("catalog_bands", tuple(bands)),
    )


def policy_values(catalogs: Registry, scheme: str) -> dict[str, object]:
    """The policy values the score of ``scheme`` uses, for explanations."""
    p = catalogs.policy(scheme)
    return {
        "base_score": p.base_score,
        "floor": p.floor,
        "ceiling": p.ceiling,
        "grade_bands": [{"grade": b.grade, "min": b.min} for b in p.grade_bands],
        "rectification_period_days": p.rectification_period_days,
        "default_expiry_days": p.default_expiry_days,
        "positive_cap_per_year": p.positive_cap_per_year,
        "timezone": p.timezone,
    }
