"""The catalog schema: what one jurisdiction's TOML file may say.

Every model is frozen and refuses unknown keys, so a typo such as
``legal_bassis`` is an error instead of a silently missing field. Scalars are
strict: TOML already gives native integers, booleans and dates, so a quoted
``points = "-20"`` or ``rectifiable = 1`` is a mistake in the file, not
something to coerce.

A file's ``[policy]`` table is a :class:`PolicyOverride` (every field
optional: a jurisdiction says only what it changes); the registry resolves the
overrides down the jurisdiction tree into a complete :class:`Policy`:

>>> PolicyOverride(appeal_window_days=15).appeal_window_days
15
>>> Rule.model_validate({
...     "code": "CN-ZJ-HZ.TRAFFIC-RED-LIGHT", "version": 1,
...     "title_en": "Running a red light", "title_zh": "闯红灯",
...     "category": "traffic", "points": -5,
...     "legal_basis": "Road Traffic Safety Law of the PRC, Art. 38",
...     "agencies": ["CN-ZJ-HZ-TPD"], "severity": "minor",
...     "rectifiable": True, "effective_from": date(2019, 1, 1),
... }).is_reward
False
"""

from __future__ import annotations

import re
from datetime import date
from itertools import pairwise
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    model_validator,
)

# ---------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------

#: The closed set of rule categories. It is closed on purpose: a category is
#: how a policy maker reads a catalog at a glance, and an open set would let
#: "religion" or "speech" in as a category name. None of these names a
#: protected ground; docs/catalogs.md says what belongs in each.
Category = Literal[
    "traffic",
    "contract",
    "finance",
    "tax",
    "court",
    "public-order",
    "environment",
    "civic",
    "commerce",
    "utilities",
    "labour",
    "food-safety",
    "market-regulation",
]
CATEGORIES: tuple[str, ...] = get_args(Category)

Severity = Literal["minor", "moderate", "serious"]
ListKind = Literal["black", "red", "watch"]
ListEntry = Literal["rule", "grade"]
Effect = Literal["deny", "grant"]

#: Kinds of registered reporter. ``utility`` covers water/power suppliers that
#: report arrears and theft (Rongcheng's deductions); ``financial-institution``
#: a bank reporting loan arrears.
AgencyKind = Literal[
    "court",
    "prosecutor",
    "police",
    "tax",
    "customs",
    "bureau",
    "market-regulator",
    "bank-regulator",
    "financial-institution",
    "utility",
    "government",
]
AGENCY_KINDS: tuple[str, ...] = get_args(AgencyKind)

# ---------------------------------------------------------------------------
# Field types
# ---------------------------------------------------------------------------

_JURISDICTION_CODE = re.compile(r"^[A-Z]{2}(?:-[A-Z0-9]+)*$")
_AGENCY_CODE = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)+$")
# `CN-ZJ-HZ.TRAFFIC-RED-LIGHT`: a jurisdiction code, a dot, then one or more
# dot-separated uppercase segments. Rules and lists share the shape.
_DOTTED_CODE = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)*(?:\.[A-Z0-9]+(?:-[A-Z0-9]+)*)+$")
_MEASURE_CODE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_REGION_CODE = re.compile(r"^[1-9][0-9]{5}$")
_GRADE = re.compile(r"^[A-Z][A-Z+\-]{0,4}$")


def _non_empty(value: str) -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError("must not be empty")
    return stripped


def _matching(pattern: re.Pattern[str], example: str, what: str = "code") -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what} (expected one like {example!r})")
        return value

    return AfterValidator(check)


def _some_agency(value: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        raise ValueError("must name at least one agency")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Asia/Shanghai')") from None
    return value


StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]
StrictDate = Annotated[date, Strict()]
Text = Annotated[str, Strict(), AfterValidator(_non_empty)]
Days = Annotated[int, Strict(), Field(ge=0)]
PositiveDays = Annotated[int, Strict(), Field(ge=1)]
JurisdictionCode = Annotated[str, Strict(), _matching(_JURISDICTION_CODE, "CN-ZJ-HZ")]
AgencyCode = Annotated[str, Strict(), _matching(_AGENCY_CODE, "CN-SPC")]
RuleCode = Annotated[str, Strict(), _matching(_DOTTED_CODE, "CN-ZJ-HZ.TRAFFIC-RED-LIGHT")]
ListCode = Annotated[str, Strict(), _matching(_DOTTED_CODE, "CN.DEFAULTER")]
MeasureCode = Annotated[str, Strict(), _matching(_MEASURE_CODE, "air-travel")]
RegionCode = Annotated[str, Strict(), _matching(_REGION_CODE, "330100", "GB/T 2260 region code")]
Grade = Annotated[str, Strict(), _matching(_GRADE, "AAA", "grade")]
TimeZoneName = Annotated[str, Strict(), AfterValidator(_timezone)]


def _unique(values: tuple[str, ...], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------


class GradeBand(_Model):
    """A grade and its inclusive lower bound: ``score >= min`` earns ``grade``."""

    grade: Grade
    min: StrictInt


def _check_bands(bands: tuple[GradeBand, ...]) -> None:
    if not bands:
        raise ValueError("grade_bands: must list at least one band")
    _unique(tuple(b.grade for b in bands), "grade_bands: grade")
    for higher, lower in pairwise(bands):
        if lower.min >= higher.min:
            raise ValueError(
                "grade_bands: must be sorted by min, highest first "
                f"({higher.grade} >= {higher.min} comes before {lower.grade} >= {lower.min})"
            )


class PolicyOverride(_Model):
    """A ``[policy]`` table as written: only the fields this jurisdiction changes.

    Cross-field checks run on whatever pairs are present here; the registry
    checks the resolved :class:`Policy` again after inheritance, because a
    child's ``floor`` can clash with a parent's ``base_score``.
    """

    base_score: StrictInt | None = None
    floor: StrictInt | None = None
    ceiling: StrictInt | None = None
    grade_bands: tuple[GradeBand, ...] | None = None
    appeal_window_days: PositiveDays | None = None
    decision_deadline_days: PositiveDays | None = None
    rectification_period_days: Days | None = None
    default_expiry_days: PositiveDays | None = None
    enforcement_grace_days: Days | None = None
    positive_cap_per_year: Days | None = None
    warning_period_days: Days | None = None
    timezone: TimeZoneName | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PolicyOverride:
        if self.floor is not None and self.ceiling is not None and self.floor > self.ceiling:
            raise ValueError(f"floor ({self.floor}) must be <= ceiling ({self.ceiling})")
        if self.base_score is not None:
            if self.floor is not None and self.base_score < self.floor:
                raise ValueError(f"base_score ({self.base_score}) must be >= floor ({self.floor})")
            if self.ceiling is not None and self.base_score > self.ceiling:
                raise ValueError(f"base_score ({self.base_score}) must be <= ceiling ({self.ceiling})")
        if self.grade_bands is not None:
            _check_bands(self.grade_bands)
        return self


POLICY_FIELDS: tuple[str, ...] = tuple(PolicyOverride.model_fields)


class Policy(_Model):
    """A jurisdiction's effective policy, every field resolved.

    >>> p = Policy(base_score=1000, floor=0, ceiling=1500,
    ...     grade_bands=(GradeBand(grade="A", min=960), GradeBand(grade="D", min=0)),
    ...     appeal_window_days=15, decision_deadline_days=30,
    ...     rectification_period_days=365, default_expiry_days=1825,
    ...     enforcement_grace_days=10, positive_cap_per_year=100,
    ...     warning_period_days=30, timezone="Asia/Shanghai")
    >>> p.clamp(1700), p.grades
    (1500, ('A', 'D'))
    """

    base_score: StrictInt
    floor: StrictInt
    ceiling: StrictInt
    grade_bands: tuple[GradeBand, ...]
    #: days from the notice within which the subject may file an appeal
    appeal_window_days: PositiveDays
    #: days from filing within which a reviewer must decide
    decision_deadline_days: PositiveDays
    #: clean days after which a rectifiable adverse record stops counting
    rectification_period_days: Days
    #: days after the act a record stops counting when its rule sets no expiry
    default_expiry_days: PositiveDays
    #: days between a listing's notice and the first day it may be enforced
    enforcement_grace_days: Days
    #: most points that reward rules may add for one subject in a calendar year
    positive_cap_per_year: Days
    #: grade-entered black lists warn first; list only if still in the grade after this
    warning_period_days: Days
    timezone: TimeZoneName

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        if not self.floor <= self.base_score <= self.ceiling:
            raise ValueError(
                f"must have floor <= base_score <= ceiling "
                f"(got {self.floor} <= {self.base_score} <= {self.ceiling})"
            )
        _check_bands(self.grade_bands)
        lowest = self.grade_bands[-1]
        if lowest.min > self.floor:
            raise ValueError(
                f"grade_bands: the lowest band ({lowest.grade} >= {lowest.min}) must start "
                f"at or below floor ({self.floor}) so that every score has a grade"
            )
        return self

    @property
    def grades(self) -> tuple[str, ...]:
        """Grade names, best first."""
        return tuple(b.grade for b in self.grade_bands)

    def clamp(self, score: int) -> int:
        """The score bounded to ``[floor, ceiling]``."""
        return max(self.floor, min(self.ceiling, score))


def grade_for(policy: Policy, score: int) -> str:
    """The grade of ``score`` under ``policy``: the first band whose ``min`` it reaches.

    >>> bands = tuple(GradeBand(grade=g, min=m) for g, m in
    ...     [("AAA", 1050), ("AA", 1030), ("A", 960), ("B", 850), ("C", 600), ("D", 0)])
    >>> p = Policy(base_score=1000, floor=0, ceiling=1500, grade_bands=bands,
    ...     appeal_window_days=30, decision_deadline_days=30,
    ...     rectification_period_days=730, default_expiry_days=1825,
    ...     enforcement_grace_days=10, positive_cap_per_year=100,
    ...     warning_period_days=30, timezone="Asia/Shanghai")
    >>> [grade_for(p, s) for s in (1050, 1049, 1000, 959, 599, 0)]
    ['AAA', 'AA', 'A', 'B', 'D', 'D']
    """
    for band in policy.grade_bands:
        if score >= band.min:
            return band.grade
    # Only reachable for an unclamped score below the floor.
    return policy.grade_bands[-1].grade


# ---------------------------------------------------------------------------
# Jurisdiction, agencies, measures, lists, rules
# ---------------------------------------------------------------------------


class Jurisdiction(_Model):
    """The ``[jurisdiction]`` table: which place this file speaks for."""

    code: JurisdictionCode
    name_en: Text
    name_zh: Text
    #: omitted only by the root (``CN``)
    parent: JurisdictionCode | None = None
    #: GB/T 2260 six-digit codes of the place (Hangzhou ``330100``)
    region_codes: tuple[RegionCode, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Jurisdiction:
        if self.parent == self.code:
            raise ValueError(f"parent: {self.code} cannot be its own parent")
        _unique(self.region_codes, "region_codes: region")
        return self


class Agency(_Model):
    """A registered reporter. It belongs to the jurisdiction of its file."""

    code: AgencyCode
    name_en: Text
    name_zh: Text
    kind: AgencyKind


class Measure(_Model):
    """What a list does in another sector, e.g. deny ``air-travel``.

    ``applies_to`` exists so that a catalog has to *say* whom a measure
    reaches; the guard refuses anything but ``"subject"``.
    """

    code: MeasureCode
    name_en: Text
    name_zh: Text
    sector: Text
    effect: Effect
    applies_to: Text = "subject"


class ListMeasure(_Model):
    """One measure a list triggers, with the instrument that authorises it."""

    measure: MeasureCode
    #: the memorandum or regulation (GuoBanFa [2020] No. 49: every measure needs one)
    legal_basis: Text


class ListDef(_Model):
    """A black, red or watch list, entered by a rule trigger or by grade."""

    code: ListCode
    name_en: Text
    name_zh: Text
    kind: ListKind
    entry: ListEntry
    #: for ``entry = "grade"``: the grades that place a subject on the list
    grades: tuple[Grade, ...] = ()
    max_duration_days: PositiveDays
    public: StrictBool
    measures: tuple[ListMeasure, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> ListDef:
        if self.entry == "grade" and not self.grades:
            raise ValueError('grades: a list with entry = "grade" must name at least one grade')
        if self.entry == "rule" and self.grades:
            raise ValueError('grades: only a list with entry = "grade" may name grades')
        _unique(self.grades, "grades: grade")
        _unique(tuple(m.measure for m in self.measures), "measures: measure")
        # A watch list is the "warn before punishing" step: it must not sanction.
        if self.kind == "watch" and self.measures:
            raise ValueError("measures: a watch list warns; it may not trigger measures")
        return self


class Rule(_Model):
    """One version of a rule: what act, how many points, on what legal basis.

    Versions of one code are half-open intervals ``[effective_from,
    effective_to)``; a record is judged by the version in force on the day the
    act occurred.
    """

    code: RuleCode
    version: Annotated[int, Strict(), Field(ge=1)]
    title_en: Text
    title_zh: Text
    category: Category
    #: negative: an adverse rule; positive: a reward rule
    points: StrictInt
    legal_basis: Text
    #: agency codes allowed to report it
    agencies: Annotated[tuple[AgencyCode, ...], AfterValidator(_some_agency)]
    #: None: the policy's default_expiry_days
    expiry_days: PositiveDays | None = None
    severity: Severity
    rectifiable: StrictBool
    #: a list the rule places the subject on directly (a defaulter judgment)
    places_on: ListCode | None = None
    effective_from: StrictDate
    #: exclusive end; None: open-ended
    effective_to: StrictDate | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.points == 0:
            raise ValueError("points: must not be zero (negative: adverse, positive: reward)")
        _unique(self.agencies, "agencies: agency")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError(
                f"effective_to: must be after effective_from ({self.effective_from}), "
                f"got {self.effective_to}; the end is exclusive"
            )
        if self.is_reward and self.rectifiable:
            raise ValueError("rectifiable: only adverse rules can be rectified")
        return self

    @property
    def is_reward(self) -> bool:
        return self.points > 0

    def in_force(self, on: date) -> bool:
        """Whether this version applies to an act on ``on`` (end exclusive)."""
        return self.effective_from <= on and (self.effective_to is None or on < self.effective_to)


class CatalogFile(_Model):
    """One TOML file: one jurisdiction's policy overrides and declarations."""

    jurisdiction: Jurisdiction
    policy: PolicyOverride = PolicyOverride()
    agencies: tuple[Agency, ...] = ()
    measures: tuple[Measure, ...] = ()
    lists: tuple[ListDef, ...] = ()
    rules: tuple[Rule, ...] = ()


#: The top-level tables a catalog file may have, in the order they are checked.
SECTIONS: tuple[str, ...] = tuple(CatalogFile.model_fields)
