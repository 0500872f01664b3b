"""A synthetic population and its records, generated from the catalogs (issue 7).

Pure: catalogs and :class:`Params` in, three Arrow tables out, no database.
Everything is drawn with numpy's ``Generator`` in whole arrays (no Python
loop per subject or per record; ten million records take seconds), and the
same seed with the same parameters and catalogs gives the same tables, row
for row, and the same Parquet bytes (:mod:`credo.simulate.load`). Every
part of the draw has its own seeded stream (subjects; each rule version,
place and kind; follow-ups), so adding a rule to a catalog changes that
rule's records and not the others'.

>>> from pathlib import Path
>>> from credo.catalog.registry import load_catalogs
>>> registry, _ = load_catalogs([Path("catalogs")])  # doctest: +SKIP
>>> pop = generate(registry, Params(subjects=1000, years=3, seed=7, end=date(2025, 6, 30)))  # doctest: +SKIP
>>> pop.records.column_names[:3]  # doctest: +SKIP
['agency_ref', 'kind', 'subject_kind']

Subjects
--------
* ``org_share`` (default 15 %) of subjects are **organisations**, the rest
  **persons**. Each lives in one jurisdiction that has region codes; by
  default a city pilot (a leaf of the tree) weighs 3 and a province or the
  national level 1, so with the shipped catalogs 20 % live in each of
  Hangzhou, Yiwu, Zhoushan and Rongcheng and about 6.7 % each in the rest of
  Zhejiang, the rest of Shandong and Beijing (``CN``).
* A person is an adult of 18 to 95 at ``end`` (flat to 60, then thinning
  out) with a valid resident identity number (GB 11643). Its first six
  digits are the **birthplace**: a county-level GB/T 2260 code in use in the
  birth year, which python-stdnum checks (Yiwu's 330782 exists only from
  1989, Zhoushan's 3309xx from 1987). 85 % were born in a county of the
  jurisdiction they live in, 15 % anywhere in the shipped regions; when no
  county of the place was in use in the birth year (a Yiwu resident born in
  1970) the birthplace comes from the parent jurisdiction (Zhejiang, e.g.
  330725, Yiwu county until 1988), and so on up. The birthplace never
  places a subject or chooses a record; it only makes the numbers real.
  45 % of persons drive (China: ~500 million licences for ~1.1 billion
  adults); traffic rules reach drivers only.
* An organisation has a valid Unified Social Credit Code (GB 32100):
  authority and type ``91`` enterprise (75 %), ``92`` individual business
  (20 %), ``93`` farmers' co-operative (3 %), ``52`` private non-enterprise
  unit (2 %); its registration region is a county-level code of its
  jurisdiction in use at ``end`` (``Registry.jurisdiction_for_region`` of it
  gives the jurisdiction back); its organisation code is eight digits and
  the GB 11714 check character. Founded on average 12 years before ``end``
  (exponential); an organisation's records start at its founding, a
  person's at 18.
* Each subject has a latent **adverse propensity** ~ Gamma(shape 0.5, mean 1)
  and a **civic propensity** ~ Gamma(shape 0.25, mean 1), both in
  ``subjects.parquet``. Expected records are ``rate x propensity x years
  exposed``, so counts are negative-binomial: most subjects have none, a few
  have many.

Records (incidents)
-------------------
Each rule version in force during the window ``(end - years, end]`` is
drawn for the subjects it can reach: their jurisdiction is the rule's or
below it, and an agency the version allows sits at or above it (one is
picked at random when several may). A record's jurisdiction is the
subject's; its date is uniform over the days the version is in force and
the subject exposed, so it is judged by that version. Rates per
subject-year at propensity 1 (``PROFILES``; a rule not listed there gets one
from its category and severity, :func:`profile_for`):

============================================  =================  ====================
rule                                          person             organisation
============================================  =================  ====================
Hangzhou red light / not yielding             .12 / .10 drivers  --
Hangzhou drunk driving                        .004 drivers       --
Zhoushan phone while driving                  .08 drivers        --
Rongcheng traffic ticket                      .25 drivers        --
Zhoushan smoking / dog / loud music           .03 / .02 / .01    -- / -- / .02
Rongcheng utility late fees                   .03                .03
Rongcheng bank arrears (episodes, ~3 months)  .02                .03
Rongcheng contract breach / sued in breach    .01 / .004         .04 / .02
Yiwu counterfeit trademark / supply default   .002 / .001        .03 / .02
national court defaulter judgment             .006               .02
national tax evasion / loan fraud             .0003 / .0003      .003 / .001
food safety / emissions / wage arrears        --                 .006 / .008 / .006
Hangzhou volunteering, per 50 hours (civic)   .10                --
Hangzhou blood donation (civic)               .02                --
Rongcheng heroic act (civic)                  .0005              --
national tax credit grade A (civic)           --                 12 % a year, in April
============================================  =================  ====================

Bank arrears are reported once per month in arrears: an *episode* lasts a
geometric number of months (mean 3), one record a month.

What that gives with the shipped catalogs (300,000 subjects, 3 years):
0.12 records per subject-year, 71 % of them adverse; persons in Hangzhou
and Rongcheng 0.21-0.22, in Zhoushan 0.10, elsewhere about 0.01 (few rules
reach a person there); organisations 0.14-0.30. 80 % of subjects have no
record in three years and 96 % at most two; the top 5 % hold 63 % of the
adverse records (the top 1 %: 25 %), up to about 30 for one subject.

Follow-ups
----------
* **Retractions**: 1.5 % of adverse incidents are retracted by the agency
  that reported them, 1 + Exp(mean 40) days later (none after ``end``).
* **Restorations**: 40 % of the records of a rule that places a subject on a
  list directly (the court's defaulter judgment; Shandong's spending-order
  defiance) are later "performed": the same agency sends a restoration
  naming ``target_ref`` 1 + LogNormal(median 150 days, sigma 0.7) days later
  (none after ``end``; never for a retracted record).
* **Appeal intents** (the ``appeals`` table; there is no appeals workflow
  yet): 2 % of minor, 3 % of moderate and 5 % of serious adverse incidents
  not retracted, filed 1-7 days (the notice) plus a uniform part of the
  jurisdiction's appeal window after the act; 85 % decided within the
  decision deadline, 10 % late (up to 60 days past it), 5 % never. A
  decided appeal is ``overturned`` 25 % of the time, else ``upheld``; one not
  decided by ``end`` is ``pending``, without ``decided_on``.

References: ``agency_ref`` is ``SIM<seed>-<tag>-<letter><number>``. The
tag hashes the parameters and the catalogs, so two different populations
never reuse a reference for other content, and loading the same one twice
only finds duplicates; the letter is ``I`` for an incident, ``R`` for its
retraction, ``P`` for its restoration ("performed"), which name the
incident's reference as ``target_ref``. Evidence is the word ``simulated``.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from credo.catalog.models import Jurisdiction, Rule
from credo.catalog.registry import Registry
from credo.ledger.validate import RECORD_FIELDS

__all__ = [
    "APPEAL_COLUMNS",
    "APPEAL_SCHEMA",
    "PROFILES",
    "RECORD_COLUMNS",
    "RECORD_SCHEMA",
    "SUBJECT_COLUMNS",
    "SUBJECT_SCHEMA",
    "Params",
    "Population",
    "Profile",
    "gb11714_check",
    "generate",
    "profile_for",
    "ric_check",
    "uscc_check",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
Bool = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]

#: bumped whenever the same seed would give other records
GENERATOR_VERSION = 1

YEAR = 365.2425
_EPOCH = date(1970, 1, 1).toordinal()

# -- rates (see the module docstring) -------------------------------------------

ORG_SHARE = 0.15
LEAF_WEIGHT, INNER_WEIGHT = 3.0, 1.0
BORN_AT_HOME = 0.85
DRIVER_SHARE = 0.45
ADULT_AGE, MAX_AGE = 18, 95
ADVERSE_SHAPE, CIVIC_SHAPE = 0.5, 0.25
ORG_MEAN_AGE_YEARS, ORG_MAX_AGE_YEARS = 12.0, 60.0
#: (authority, entity type, share) of Unified Social Credit Codes
ORG_TYPES: tuple[tuple[str, str, float], ...] = (
    ("9", "1", 0.75),
    ("9", "2", 0.20),
    ("9", "3", 0.03),
    ("5", "2", 0.02),
)

RETRACT_SHARE = 0.015
RETRACT_MEAN_DAYS = 40.0
RESTORE_SHARE = 0.40
RESTORE_MEDIAN_DAYS, RESTORE_SIGMA = 150.0, 0.7
APPEAL_SHARE: Mapping[str, float] = {"minor": 0.02, "moderate": 0.03, "serious": 0.05}
APPEAL_NOTICE_DAYS = 7
APPEAL_ON_TIME, APPEAL_LATE = 0.85, 0.10  # the rest: never decided
APPEAL_LATE_DAYS = 60
OVERTURNED_SHARE = 0.25
ANNUAL_CAP = 0.95
MONTH_DAYS = 30


@dataclass(frozen=True)
class Profile:
    """How often a rule is reported, per subject-year at propensity 1.

    ``mode``: ``events`` (Poisson), ``monthly`` (episodes of ``months`` mean
    length, one record a month; the rate counts episodes) or ``annual`` (at
    most once a calendar year, in ``month``; the rate is the probability).
    """

    person: float = 0.0
    organisation: float = 0.0
    mode: Literal["events", "monthly", "annual"] = "events"
    drivers_only: bool = False
    months: float = 3.0
    month: int = 4


PROFILES: Mapping[str, Profile] = {
    # national
    "CN.COURT-DEFAULTER": Profile(0.006, 0.02),  # 14.2 million incidents in 2018
    "CN.TAX-EVASION": Profile(0.0003, 0.003),
    "CN.FOOD-SAFETY-VIOLATION": Profile(0.0, 0.006),
    "CN.EMISSIONS-OVER-LIMIT": Profile(0.0, 0.008),
    "CN.WAGE-ARREARS": Profile(0.0, 0.006),
    "CN.TAX-CREDIT-A": Profile(0.0, 0.12, mode="annual", month=4),
    "CN.LOAN-FRAUD": Profile(0.0003, 0.001),
    # Zhejiang
    "CN-ZJ.FALSE-LICENSING-MATERIALS": Profile(0.0, 0.004),
    "CN-ZJ.SETTLEMENT-RENEGED": Profile(0.001, 0.003),
    # Shandong
    "CN-SD.BID-RIGGING": Profile(0.0, 0.004),
    "CN-SD.COURT-ORDER-DEFIANCE": Profile(0.001, 0.002),
    # Hangzhou
    "CN-ZJ-HZ.BLOOD-DONATION": Profile(0.02),
    "CN-ZJ-HZ.VOLUNTEER-SERVICE": Profile(0.10),
    "CN-ZJ-HZ.TRAFFIC-RED-LIGHT": Profile(0.12, drivers_only=True),
    "CN-ZJ-HZ.TRAFFIC-NOT-YIELDING": Profile(0.10, drivers_only=True),
    "CN-ZJ-HZ.TRAFFIC-DRUNK-DRIVING": Profile(0.004, drivers_only=True),
    # Yiwu
    "CN-ZJ-YW.COUNTERFEIT-TRADEMARK": Profile(0.002, 0.03),
    "CN-ZJ-YW.SUPPLY-CONTRACT-DEFAULT": Profile(0.001, 0.02),
    # Zhoushan
    "CN-ZJ-ZS.SMOKING-BANNED-PLACE": Profile(0.03),
    "CN-ZJ-ZS.PHONE-WHILE-DRIVING": Profile(0.08, drivers_only=True),
    "CN-ZJ-ZS.VANDALISM": Profile(0.002),
    "CN-ZJ-ZS.DOG-OFF-LEASH": Profile(0.02),
    "CN-ZJ-ZS.LOUD-MUSIC-PUBLIC": Profile(0.01, 0.02),
    # Rongcheng
    "CN-SD-RC.CONTRACT-BREACH": Profile(0.01, 0.04),
    "CN-SD-RC.SUED-IN-BREACH": Profile(0.004, 0.02),
    "CN-SD-RC.BANK-ARREARS": Profile(0.02, 0.03, mode="monthly", months=3.0),
    "CN-SD-RC.ILLEGAL-FUNDRAISING": Profile(0.0002, 0.001),
    "CN-SD-RC.FRAUD-COUNTERFEIT": Profile(0.0008, 0.006),
    "CN-SD-RC.UTILITY-LATE-FEES": Profile(0.03, 0.03),
    "CN-SD-RC.UTILITY-ARREARS-COURT": Profile(0.001, 0.002),
    "CN-SD-RC.UTILITY-THEFT": Profile(0.0005, 0.001),
    "CN-SD-RC.UTILITY-EQUIPMENT-DESTRUCTION": Profile(0.0003),
    "CN-SD-RC.TRAFFIC-TICKET": Profile(0.25, drivers_only=True),
    "CN-SD-RC.HEROIC-ACT": Profile(0.0005),
}

_SEVERITY_RATE = {"minor": 0.02, "moderate": 0.005, "serious": 0.002}
_ORG_CATEGORIES = {"market-regulation", "food-safety", "environment", "labour"}
_ORG_FIRST = {"commerce", "contract", "tax", "finance", "court"}


def profile_for(rule: Rule) -> Profile:
    """``PROFILES[rule.code]``, or a default from the rule's category and severity.

    The default keeps a catalog that gains a rule simulable: a minor rule
    2 %, a moderate one 0.5 %, a serious one 0.2 % a year; traffic reaches
    drivers only; market, food, environment and labour rules organisations
    only; commerce, contract, tax, finance and court rules organisations
    three times as often as persons; a reward rule 1 % (civic).
    """
    if rule.code in PROFILES:
        return PROFILES[rule.code]
    rate = 0.01 if rule.is_reward else _SEVERITY_RATE[rule.severity]
    if rule.category == "traffic":
        return Profile(rate, 0.0, drivers_only=True)
    if rule.category in _ORG_CATEGORIES:
        return Profile(0.0, rate)
    if rule.category in _ORG_FIRST:
        return Profile(rate / 3, rate)
    return Profile(rate, rate / 2)


# -- columns ------------------------------------------------------------------


def _field_type(name: str) -> pa.DataType:
    if name == "occurred_on":
        return pa.date32()
    if name == "target_seq":
        return pa.int64()
    return pa.string()


#: The records' columns: every ingest column (``RECORD_FIELDS``), then ``agency``.
RECORD_COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, "agency")
#: The schemas as Parquet stores them. In memory, the few-valued text columns
#: (kinds, codes) are dictionary-encoded; their values are the same strings.
RECORD_SCHEMA = pa.schema([(name, _field_type(name)) for name in RECORD_COLUMNS])
SUBJECT_SCHEMA = pa.schema(
    [
        ("subject_kind", pa.string()),
        ("subject", pa.string()),
        ("jurisdiction", pa.string()),
        ("since", pa.date32()),
        ("driver", pa.bool_()),
        ("adverse_propensity", pa.float32()),
        ("civic_propensity", pa.float32()),
    ]
)
SUBJECT_COLUMNS: tuple[str, ...] = tuple(SUBJECT_SCHEMA.names)
APPEAL_SCHEMA = pa.schema(
    [
        ("agency", pa.string()),
        ("agency_ref", pa.string()),
        ("filed_on", pa.date32()),
        ("outcome", pa.string()),
        ("decided_on", pa.date32()),
    ]
)
APPEAL_COLUMNS: tuple[str, ...] = tuple(APPEAL_SCHEMA.names)
OUTCOMES = ("upheld", "overturned", "pending")
KINDS = ("incident", "retraction", "restoration")
#: the evidence reference of every simulated incident: there is nothing to point to
EVIDENCE = "simulated"
SUBJECT_KINDS = ("person", "organisation")
_SEVERITIES = ("minor", "moderate", "serious")


# -- parameters and result ------------------------------------------------------


@dataclass(frozen=True)
class Params:
    subjects: int
    years: int
    seed: int
    end: date
    org_share: float = ORG_SHARE
    #: jurisdiction code -> relative weight; default: leaves 3, others 1
    jurisdiction_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.subjects < 1:
            raise ValueError("subjects: must be at least 1")
        if not 1 <= self.years <= 60:
            raise ValueError("years: must be between 1 and 60")
        if self.seed < 0:
            raise ValueError("seed: must not be negative")
        if not 0.0 <= self.org_share <= 1.0:
            raise ValueError("org_share: must be between 0 and 1")

    @property
    def start(self) -> date:
        """First day of the window: the day after ``end`` minus ``years`` years."""
        return _shift_years(self.end, -self.years) + timedelta(days=1)


@dataclass(frozen=True)
class Population:
    params: Params
    #: ``agency_ref`` prefix of this population (``SIM<seed>-<tag>-``)
    prefix: str
    #: one row per subject (``SUBJECT_COLUMNS``), by kind and jurisdiction
    subjects: pa.Table
    #: ``RECORD_COLUMNS``, sorted by agency, then date, incidents before the
    #: retractions and restorations of the same day
    records: pa.Table
    #: ``APPEAL_COLUMNS``, sorted by filing date
    appeals: pa.Table
    counts: Mapping[str, int] = field(default_factory=dict)


# -- dates --------------------------------------------------------------------------


def _shift_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _day(d: date) -> int:
    return d.toordinal() - _EPOCH


def _date(day: int) -> date:
    return date.fromordinal(day + _EPOCH)


def _rng(seed: int, *path: int) -> np.random.Generator:
    return np.random.default_rng([seed, *path])


def _uniform(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    """Uniforms in [0, 1) in single precision: fine (and 4x faster) for picks among a few
    thousand choices and days; the draws that need more use double precision."""
    return rng.random(n, dtype=np.float32)


def _propensity(rng: np.random.Generator, shape: float, n: int) -> npt.NDArray[np.float32]:
    """Gamma(shape) with mean 1."""
    return rng.standard_gamma(shape, n, dtype=np.float32) / np.float32(shape)


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


# -- check characters ---------------------------------------------------------------

_RIC_WEIGHTS = np.array([pow(2, 17 - i, 11) for i in range(17)], dtype=np.int64)
_RIC_CHECK = np.frombuffer(b"10X98765432", dtype=np.uint8)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = np.array([pow(3, i, 31) for i in range(17)], dtype=np.int64)
_USCC_CHARS = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
_USCC_VALUE = np.full(256, -1, dtype=np.int64)
_USCC_VALUE[_USCC_CHARS] = np.arange(len(USCC_ALPHABET))
_GB11714_WEIGHTS = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)


def _weighted(body: U8, weights: I64, values: I64 | None = None) -> I64:
    total = np.zeros(body.shape[0], dtype=np.int64)
    for i, weight in enumerate(weights):
        column = body[:, i].astype(np.int64)
        total += (column - 48 if values is None else values[column]) * weight
    return total


def ric_check(body: U8) -> U8:
    """ISO 7064 MOD 11-2 check characters of ``(n, 17)`` ASCII digits (GB 11643)."""
    return _RIC_CHECK[_weighted(body, _RIC_WEIGHTS) % 11]


def uscc_check(body: U8) -> U8:
    """GB 32100 mod-31 check characters of ``(n, 17)`` ASCII characters."""
    return _USCC_CHARS[(31 - _weighted(body, _USCC_WEIGHTS, _USCC_VALUE) % 31) % 31]


def gb11714_check(body: U8) -> U8:
    """GB 11714 organisation code check characters of ``(n, 8)`` ASCII digits."""
    c = 11 - _weighted(body, _GB11714_WEIGHTS) % 11
    out = (48 + c % 11).astype(np.uint8)  # 11 -> '0'
    out[c == 10] = ord("X")
    return out


# -- text in whole arrays ----------------------------------------------------------

#: the four ASCII digits of 0..9999 as one uint32 each: a word gather is fast
_DIGITS4_WORDS = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), dtype=np.uint32).copy()
_CHUNK_ROWS = 1 << 22


def _fill_digits(words: npt.NDArray[np.uint32], column: int, groups: int, values: I64) -> None:
    """Write the decimal digits of ``values``, four to a word, into ``groups`` word columns."""
    v = values.astype(np.int64, copy=True)
    for g in range(groups - 1, -1, -1):
        words[:, column + g] = _DIGITS4_WORDS[v % 10_000]
        v //= 10_000


def _digits(values: I64, width: int) -> U8:
    """Zero-padded decimal digits of non-negative integers, as an ``(n, width)`` ASCII matrix."""
    groups = -(-width // 4)
    words = np.empty((values.size, groups), dtype=np.uint32)
    _fill_digits(words, 0, groups, values)
    return words.view(np.uint8)[:, groups * 4 - width :]


def _text(prefix: str, width: int, number: I64) -> U8:
    """Rows ``prefix`` + ``number`` zero-padded to ``width``, as an ASCII matrix.

    Built a 4-byte word at a time: ``len(prefix)`` and ``width`` must be
    multiples of 4.
    """
    head = prefix.encode("ascii")
    if len(head) % 4 or width % 4:
        raise ValueError("prefix and width must be multiples of 4 characters")
    words = np.empty((number.size, (len(head) + width) // 4), dtype=np.uint32)
    for k, word in enumerate(np.frombuffer(head, dtype=np.uint32)):
        words[:, k] = word
    _fill_digits(words, len(head) // 4, width // 4, number)
    return words.view(np.uint8)


def _strings(chars: U8, valid: Bool | None = None) -> pa.ChunkedArray:
    """Arrow strings from the rows of an ASCII matrix.

    With ``valid``, ``chars`` holds only the rows where it is true, in order;
    the others are null.
    """
    width = chars.shape[1]
    n = chars.shape[0] if valid is None else valid.size
    chunks = []
    done = 0
    for lo in range(0, max(n, 1), _CHUNK_ROWS):
        hi = min(n, lo + _CHUNK_ROWS)
        if valid is None:
            data = chars[lo:hi]
            offsets = np.arange(0, (hi - lo + 1) * width, width, dtype=np.int32)
            bitmap = None
        else:
            ok = valid[lo:hi]
            count = int(ok.sum())
            data = chars[done : done + count]
            done += count
            offsets = np.zeros(hi - lo + 1, dtype=np.int32)
            np.cumsum(ok * np.int32(width), out=offsets[1:])
            bitmap = pa.py_buffer(np.packbits(ok, bitorder="little"))
        buffers = [bitmap, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))]
        chunks.append(pa.Array.from_buffers(pa.string(), hi - lo, buffers))
    return pa.chunked_array(chunks, type=pa.string())


def _take(values: Sequence[str], index: I64, valid: Bool | None = None) -> pa.Array:
    """``values[index]`` as a dictionary-encoded string array (null where not ``valid``)."""
    indices = pa.array(index.astype(np.int32), mask=None if valid is None else ~valid, type=pa.int32())
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(values), type=pa.string()))


def _dates(days: I64, valid: Bool | None = None) -> pa.Array:
    return pa.array(days.astype(np.int32), mask=None if valid is None else ~valid).cast(pa.date32())


def _order(keys: Sequence[tuple[I64, int]]) -> tuple[I64, I64]:
    """A stable order by several small non-negative integer keys ``(values, bound)``.

    Returns the order and the combined key in that order. The keys and the
    position are packed into one int64 and sorted, so ties keep their
    position (the order they were generated in, itself seeded).
    """
    n = keys[0][0].size
    bits = max(1, n.bit_length())
    packed = np.zeros(n, dtype=np.int64)
    total = 1
    for values, bound in keys:
        total *= max(1, bound)
        packed = packed * max(1, bound) + values
    if total.bit_length() + bits > 62:
        order = np.lexsort(tuple(v for v, _ in reversed(keys))).astype(np.int64)
        return order, packed[order]
    packed <<= bits
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    return packed & ((1 << bits) - 1), packed >> bits


# -- the places ---------------------------------------------------------------------

_AGGREGATES = {"市辖区", "市区", "县", "郊区", "矿区"}


def _county_years(text: str, first: int, last: int) -> Bool:
    """Years ``first..last`` in which a stdnum ``county`` entry is in use (stdnum's rule)."""
    out = np.zeros(last - first + 1, dtype=np.bool_)
    for part in text.split(","):
        if not part.startswith("["):
            if part not in _AGGREGATES:
                out[:] = True
            continue
        span, name = part[1:].split("]", 1)
        if name in _AGGREGATES:
            continue
        start, _, end = span.partition("-")
        lo = max(first, int(start)) if start else first
        hi = min(last, int(end)) if end else last
        if lo <= hi:
            out[lo - first : hi - first + 1] = True
    return out


def _jurisdiction(catalogs: Registry, code: str) -> Jurisdiction:
    found = catalogs.jurisdiction(code)
    if found is None:
        raise KeyError(f"unknown jurisdiction {code!r}")
    return found


@dataclass(frozen=True)
class _Places:
    jurisdictions: tuple[str, ...]
    parent: I64  # index of the parent; -1 at the root
    weights: F64  # where subjects live
    appeal_window: I64
    decision_deadline: I64
    codes: tuple[str, ...]  # county-level GB/T 2260 codes of the shipped regions
    code_digits: U8  # (codes, 6) ASCII
    owner: I64  # jurisdiction index of each code
    first_year: int
    valid: Bool  # (codes, years from first_year): in use that year
    org_regions: tuple[U8, ...]  # per jurisdiction: (k, 6) registration regions


def _places(catalogs: Registry, params: Params) -> _Places:
    from stdnum import numdb

    juris = tuple(j.code for j in catalogs.jurisdictions())
    index = {code: i for i, code in enumerate(juris)}
    parents = [_jurisdiction(catalogs, c).parent for c in juris]
    parent = np.array([-1 if p is None else index[p] for p in parents], dtype=np.int64)
    first_year, last_year = params.end.year - MAX_AGE - 5, params.end.year
    provinces = {rc[:2] for j in catalogs.jurisdictions() for rc in j.region_codes}
    found: dict[str, str] = {}
    for _length, low, high, _props, children in numdb.get("cn/loc").prefixes:
        for prov in range(int(low), int(high) + 1):
            if f"{prov:02d}" not in provinces:
                continue
            for _l2, lo2, hi2, props2, _c2 in children:
                if "county" not in props2:
                    continue
                for county in range(int(lo2), int(hi2) + 1):
                    # the last entry for a code wins, as in stdnum's lookup
                    found[f"{prov:02d}{county:04d}"] = props2["county"]
    codes: list[str] = []
    owners: list[int] = []
    valid: list[Bool] = []
    for code in sorted(found):
        owner = catalogs.jurisdiction_for_region(code)
        years = _county_years(found[code], first_year, last_year)
        if owner is None or code.endswith("00") or not years.any():
            continue
        codes.append(code)
        owners.append(index[owner])
        valid.append(years)
    owner_arr = np.array(owners, dtype=np.int64)
    valid_arr = np.array(valid, dtype=np.bool_).reshape(len(codes), last_year - first_year + 1)
    code_digits = np.frombuffer("".join(codes).encode(), dtype=np.uint8).reshape(len(codes), 6).copy()

    org_regions: list[U8] = []
    for i, code in enumerate(juris):
        in_use = np.flatnonzero((owner_arr == i) & valid_arr[:, -1])
        own = _jurisdiction(catalogs, code).region_codes
        if in_use.size:
            org_regions.append(code_digits[in_use])
        else:  # no county of its own: register at the jurisdiction's own code
            org_regions.append(np.frombuffer("".join(own).encode(), dtype=np.uint8).reshape(len(own), 6))

    weights = np.zeros(len(juris), dtype=np.float64)
    given = params.jurisdiction_weights
    if given is not None:
        unknown = sorted(set(given) - set(juris))
        if unknown:
            raise ValueError(f"jurisdiction_weights: unknown jurisdiction {unknown[0]!r}")
    for i, code in enumerate(juris):
        if not _jurisdiction(catalogs, code).region_codes:
            continue  # nowhere to register an organisation: nobody lives there
        if given is not None:
            weights[i] = max(0.0, float(given.get(code, 0.0)))
        else:
            weights[i] = INNER_WEIGHT if catalogs.children(code) else LEAF_WEIGHT
    if weights.sum() <= 0:
        raise ValueError("no jurisdiction with region codes and a positive weight to place subjects in")
    return _Places(
        jurisdictions=juris,
        parent=parent,
        weights=weights / weights.sum(),
        appeal_window=np.array([catalogs.policy(c).appeal_window_days for c in juris], dtype=np.int64),
        decision_deadline=np.array(
            [catalogs.policy(c).decision_deadline_days for c in juris], dtype=np.int64
        ),
        codes=tuple(codes),
        code_digits=code_digits,
        owner=owner_arr,
        first_year=first_year,
        valid=valid_arr,
        org_regions=tuple(org_regions),
    )


# -- subjects -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Subjects:
    """Persons first, then organisations; each sorted by jurisdiction."""

    is_org: Bool
    juris: I64
    since: I64  # day number: 18th birthday, or founding
    driver: Bool
    adverse: F32
    civic: F32
    identifier: U8  # (n, 18) ASCII
    #: (kind, jurisdiction) -> (first, end) rows
    ranges: Mapping[tuple[int, int], tuple[int, int]]


def _unique_draws(base: I64, draw: Any, rng: np.random.Generator, size: int) -> I64:
    """``draw(rng, k)`` values such that ``base * size + value`` is unique; redraws collisions.

    A collision keeps its first holder (in subject order) and redraws the
    others, until none is left: one sort of everything, then only the few
    redrawn values are checked against the sorted keys.
    """
    values: I64 = draw(rng, base.size)
    n = base.size
    bits = max(1, n.bit_length())
    if (int(base.max(initial=0)) * size + size).bit_length() + bits > 62:
        raise ValueError("too many subjects to give each a unique identifier")
    packed = ((base * size + values) << bits) | np.arange(n, dtype=np.int64)
    packed.sort()
    keys = packed >> bits
    clash = np.zeros(n, dtype=np.bool_)
    clash[1:] = keys[1:] == keys[:-1]
    again = np.sort(packed[clash] & ((1 << bits) - 1))
    taken = keys[~clash]  # sorted, unique
    for _ in range(1000):
        if not again.size:
            return values
        values[again] = draw(rng, again.size)
        new = base[again] * size + values[again]
        at = np.searchsorted(taken, new)
        bad = (at < taken.size) & (taken[np.minimum(at, max(taken.size - 1, 0))] == new)
        _, first = np.unique(new, return_index=True)
        repeated = np.ones(new.size, dtype=np.bool_)
        repeated[first] = False
        bad |= repeated
        fresh = np.sort(new[~bad])
        taken = np.insert(taken, np.searchsorted(taken, fresh), fresh)
        again = again[bad]
    raise ValueError("cannot make identifiers unique: too many subjects for the regions and dates")


def _where(n: int, places: _Places, rng: np.random.Generator) -> I64:
    counts = rng.multinomial(n, places.weights)
    return np.repeat(np.arange(len(places.jurisdictions), dtype=np.int64), counts)


def _persons(n: int, places: _Places, params: Params, rng: np.random.Generator) -> _Subjects:
    end_day = _day(params.end)
    juris = _where(n, places, rng)
    ages = np.arange(ADULT_AGE, MAX_AGE + 1)
    age_weights = np.where(ages < 60, 1.0, np.maximum(0.05, 1.0 - (ages - 60) / (MAX_AGE - 55)))
    cdf = np.cumsum(age_weights) / age_weights.sum()
    age = ADULT_AGE + np.minimum(np.searchsorted(cdf, _uniform(rng, n), side="right"), ages.size - 1)
    born = end_day - np.floor((age + _uniform(rng, n)) * YEAR).astype(np.int64)
    born = np.minimum(born, _day(_shift_years(params.end, -ADULT_AGE)))

    # A calendar of every possible birthday: its YYYYMMDD digits and year.
    first_day = _day(date(places.first_year, 1, 1))
    calendar = [_date(d) for d in range(first_day, end_day + 1)]
    cal_digits = np.frombuffer("".join(f"{d:%Y%m%d}" for d in calendar).encode(), dtype=np.uint8)
    cal_digits = cal_digits.reshape(len(calendar), 8)
    cal_year = np.array([d.year for d in calendar], dtype=np.int64) - places.first_year
    when = born - first_day
    year = cal_year[when]

    # The birthplace: a county in use in the birth year; home first, then up the tree.
    n_j, n_years = len(places.jurisdictions), places.valid.shape[1]
    everywhere = n_j
    members_of = [np.flatnonzero(places.owner == p) for p in range(n_j)]
    members_of.append(np.arange(len(places.codes)))
    widest = max(1, max(m.size for m in members_of))
    table = np.full((n_j + 1, n_years, widest), -1, dtype=np.int64)  # pool, year -> codes in use
    counts = np.zeros((n_j + 1, n_years), dtype=np.int64)
    for p, members in enumerate(members_of):
        valid = places.valid[members].T  # (years, members)
        counts[p] = valid.sum(axis=1)
        for yr in np.flatnonzero(counts[p]):
            table[p, yr, : counts[p, yr]] = members[valid[yr]]
    up = np.append(np.where(places.parent >= 0, places.parent, everywhere), everywhere)
    pool = np.where(_uniform(rng, n) < BORN_AT_HOME, juris, everywhere)
    pick = _uniform(rng, n)
    code = np.full(n, -1, dtype=np.int64)
    todo = np.arange(n, dtype=np.int64)
    flat_counts, flat_table = counts.ravel(), table.ravel()
    for level in range(n_j + 2):
        cell = pool * n_years + year if level == 0 else pool[todo] * n_years + year[todo]
        c = flat_counts[cell]
        ok = c > 0
        got = todo[ok]
        code[got] = flat_table[cell[ok] * widest + (pick[got] * c[ok]).astype(np.int64)]
        todo = todo[~ok]
        pool[todo] = up[pool[todo]]
        if not todo.size:
            break
    if todo.size:
        raise ValueError("no region code of the shipped jurisdictions was in use in some birth year")

    def draw(r: np.random.Generator, k: int) -> I64:
        return r.integers(0, 1000, size=k, dtype=np.int64)

    seq = _unique_draws(code * (end_day - first_day + 1) + when, draw, rng, 1000)

    # The number, and its check character from the weighted sums of its parts.
    seq_digits = _digits(np.arange(1000, dtype=np.int64), 3)
    total = (
        ((places.code_digits.astype(np.int64) - 48) @ _RIC_WEIGHTS[:6])[code]
        + ((cal_digits.astype(np.int64) - 48) @ _RIC_WEIGHTS[6:14])[when]
        + ((seq_digits.astype(np.int64) - 48) @ _RIC_WEIGHTS[14:])[seq]
    )
    ident = np.empty((n, 18), dtype=np.uint8)
    ident[:, :6] = np.take(places.code_digits, code, axis=0)
    ident[:, 6:14] = np.take(cal_digits, when, axis=0)
    ident[:, 14:17] = np.take(seq_digits, seq, axis=0)
    ident[:, 17] = _RIC_CHECK[total % 11]
    return _Subjects(
        is_org=np.zeros(n, dtype=np.bool_),
        juris=juris,
        since=born + round(ADULT_AGE * YEAR),
        driver=_uniform(rng, n) < DRIVER_SHARE,
        adverse=_propensity(rng, ADVERSE_SHAPE, n),
        civic=_propensity(rng, CIVIC_SHAPE, n),
        identifier=ident,
        ranges={},
    )


def _organisations(n: int, places: _Places, params: Params, rng: np.random.Generator) -> _Subjects:
    end_day = _day(params.end)
    juris = _where(n, places, rng)
    region = np.empty((n, 6), dtype=np.uint8)
    pick = _uniform(rng, n)
    bounds = np.searchsorted(juris, np.arange(len(places.jurisdictions) + 1))
    for j, pool in enumerate(places.org_regions):
        lo, hi = int(bounds[j]), int(bounds[j + 1])
        region[lo:hi] = np.take(pool, (pick[lo:hi] * len(pool)).astype(np.int64), axis=0)
    shares = np.array([s for _, _, s in ORG_TYPES])
    kinds = rng.choice(len(ORG_TYPES), size=n, p=shares / shares.sum())
    heads = np.take(np.array([[ord(a), ord(t)] for a, t, _ in ORG_TYPES], dtype=np.uint8), kinds, axis=0)

    def draw(r: np.random.Generator, k: int) -> I64:
        return r.integers(0, 100_000_000, size=k, dtype=np.int64)

    org = _digits(_unique_draws(np.zeros(n, dtype=np.int64), draw, rng, 100_000_000), 8)
    body = np.concatenate([heads, region, org, gb11714_check(org)[:, None]], axis=1)
    ident = np.concatenate([body, uscc_check(body)[:, None]], axis=1)
    age = np.minimum(rng.exponential(ORG_MEAN_AGE_YEARS * YEAR, n), ORG_MAX_AGE_YEARS * YEAR)
    return _Subjects(
        is_org=np.ones(n, dtype=np.bool_),
        juris=juris,
        since=end_day - np.floor(age).astype(np.int64),
        driver=np.zeros(n, dtype=np.bool_),
        adverse=_propensity(rng, ADVERSE_SHAPE, n),
        civic=_propensity(rng, CIVIC_SHAPE, n),
        identifier=ident,
        ranges={},
    )


def _all_subjects(places: _Places, params: Params) -> _Subjects:
    n_org = round(params.subjects * params.org_share)
    with ThreadPoolExecutor(max_workers=1) as pool:  # side by side, each with its own stream
        future = pool.submit(_organisations, n_org, places, params, _rng(params.seed, 0, 2))
        persons = _persons(params.subjects - n_org, places, params, _rng(params.seed, 0, 1))
        orgs = future.result()
    ranges: dict[tuple[int, int], tuple[int, int]] = {}
    offset = 0
    for kind, group in enumerate((persons, orgs)):
        bounds = np.searchsorted(group.juris, np.arange(len(places.jurisdictions) + 1))
        for j in range(len(places.jurisdictions)):
            ranges[kind, j] = (offset + int(bounds[j]), offset + int(bounds[j + 1]))
        offset += group.juris.size
    return _Subjects(
        is_org=np.concatenate([persons.is_org, orgs.is_org]),
        juris=np.concatenate([persons.juris, orgs.juris]),
        since=np.concatenate([persons.since, orgs.since]),
        driver=np.concatenate([persons.driver, orgs.driver]),
        adverse=np.concatenate([persons.adverse, orgs.adverse]),
        civic=np.concatenate([persons.civic, orgs.civic]),
        identifier=np.concatenate([persons.identifier, orgs.identifier]),
        ranges=ranges,
    )


# -- incidents ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Version:
    """What the follow-ups need to know about the rule version of an incident."""

    rule: int  # index into the rule codes
    severity: int
    adverse: bool
    restorable: bool


@dataclass
class _Drawn:
    subject: list[I64] = field(default_factory=list)
    day: list[I64] = field(default_factory=list)
    version: list[I64] = field(default_factory=list)
    agency: list[I64] = field(default_factory=list)
    versions: list[_Version] = field(default_factory=list)


class _Intensity:
    """Cumulative propensity of one group of subjects, computed once per group.

    Events of a Poisson process with intensity ``rate x propensity`` per day
    over ``[lo, hi)`` are drawn as: their number ~ Poisson(total), each one's
    subject in proportion to propensity (a binary search in the cumulative
    sum), its day uniform; an event before the subject's ``since`` (not yet
    adult, not yet founded) is dropped, which is exactly the same process
    restricted to the days each subject is exposed.
    """

    def __init__(self, subjects: _Subjects) -> None:
        self.subjects = subjects
        self._cache: dict[tuple[int, int, bool, bool], tuple[int, F64]] = {}

    def group(self, kind: int, j: int, civic: bool, drivers: bool) -> tuple[int, F64]:
        key = (kind, j, civic, drivers)
        if key not in self._cache:
            first, end = self.subjects.ranges[kind, j]
            weight = (self.subjects.civic if civic else self.subjects.adverse)[first:end]
            if drivers:
                weight = weight * self.subjects.driver[first:end]
            self._cache[key] = (first, np.cumsum(weight, dtype=np.float64))
        return self._cache[key]

    def events(
        self,
        rng: np.random.Generator,
        kind: int,
        j: int,
        civic: bool,
        drivers: bool,
        rate: float,
        lo: int,
        hi: int,
    ) -> tuple[I64, I64]:
        """Subjects and days of the events in ``[lo, hi)`` at ``rate`` per year and unit propensity."""
        first, cum = self.group(kind, j, civic, drivers)
        if not cum.size or cum[-1] <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        count = rng.poisson(rate * float(cum[-1]) * (hi - lo) / YEAR)
        needles = np.sort(rng.random(count)) * cum[-1]  # sorted: a cache-friendly search
        who = first + np.searchsorted(cum, needles, side="right").astype(np.int64)
        who = np.minimum(who, first + cum.size - 1)
        day = lo + np.floor(rng.random(count) * (hi - lo)).astype(np.int64)
        keep = day >= self.subjects.since[who]
        return who[keep], day[keep]


def _draw_version(
    rule: Rule,
    rule_index: int,
    profile: Profile,
    catalogs: Registry,
    places: _Places,
    intensity: _Intensity,
    agencies: Mapping[str, int],
    params: Params,
    out: _Drawn,
) -> None:
    lo = max(_day(rule.effective_from), _day(params.start))
    hi = _day(params.end) + 1
    if rule.effective_to is not None:
        hi = min(hi, _day(rule.effective_to))
    if lo >= hi:
        return
    home = catalogs.rule_jurisdiction(rule.code)
    vid = len(out.versions)
    out.versions.append(
        _Version(rule_index, _SEVERITIES.index(rule.severity), not rule.is_reward, rule.places_on is not None)
    )
    subjects = intensity.subjects
    for j, code in enumerate(places.jurisdictions):
        if not catalogs.is_within(code, home):
            continue
        allowed = [
            agencies[a] for a in rule.agencies if catalogs.is_within(code, catalogs.agency_jurisdiction(a))
        ]
        if not allowed:
            continue
        for kind, rate in ((0, profile.person), (1, profile.organisation)):
            if rate <= 0:
                continue
            rng = _rng(params.seed, 1, _crc(rule.code), rule.version, kind, j)
            if profile.mode == "annual":
                who, day = _annual(rng, subjects, kind, j, rule.is_reward, rate, profile.month, lo, hi)
            else:
                who, day = intensity.events(rng, kind, j, rule.is_reward, profile.drivers_only, rate, lo, hi)
                if profile.mode == "monthly":
                    months = rng.geometric(1.0 / max(1.0, profile.months), who.size)
                    who = np.repeat(who, months)
                    step = np.arange(who.size) - np.repeat(np.cumsum(months) - months, months)
                    day = np.repeat(day, months) + step * MONTH_DAYS
                    keep = day < hi
                    who, day = who[keep], day[keep]
            choice = np.floor(_uniform(rng, who.size) * len(allowed)).astype(np.int64)
            out.subject.append(who)
            out.day.append(day)
            out.version.append(np.full(who.size, vid, dtype=np.int64))
            out.agency.append(np.array(allowed, dtype=np.int64)[choice])


def _annual(
    rng: np.random.Generator,
    subjects: _Subjects,
    kind: int,
    j: int,
    civic: bool,
    rate: float,
    month: int,
    lo: int,
    hi: int,
) -> tuple[I64, I64]:
    """At most one event a calendar year, in ``month``, with probability ``rate x propensity``."""
    first, end = subjects.ranges[kind, j]
    chance = np.minimum(ANNUAL_CAP, rate * (subjects.civic if civic else subjects.adverse)[first:end])
    since = subjects.since[first:end]
    who: list[I64] = []
    days: list[I64] = []
    for year in range(_date(lo).year, _date(hi - 1).year + 1):
        start = date(year, month, 1)
        length = (date(year + month // 12, month % 12 + 1, 1) - start).days
        day = _day(start) + np.floor(rng.random(end - first) * length).astype(np.int64)
        hit = np.flatnonzero((rng.random(end - first) < chance) & (day >= since) & (day >= lo) & (day < hi))
        who.append(first + hit)
        days.append(day[hit])
    return _cat(who), _cat(days)


def _cat(parts: Sequence[I64]) -> I64:
    return np.concatenate(parts).astype(np.int64, copy=False) if parts else np.zeros(0, dtype=np.int64)


# -- assembly -------------------------------------------------------------------------


def _subject_table(subjects: _Subjects, places: _Places) -> pa.Table:
    return pa.table(
        {
            "subject_kind": _take(SUBJECT_KINDS, subjects.is_org.astype(np.int64)),
            "subject": _strings(subjects.identifier),
            "jurisdiction": _take(places.jurisdictions, subjects.juris),
            "since": _dates(subjects.since),
            "driver": pa.array(subjects.driver, mask=subjects.is_org),
            "adverse_propensity": pa.array(subjects.adverse.astype(np.float32)),
            "civic_propensity": pa.array(subjects.civic.astype(np.float32)),
        }
    )


def _references(prefix: str, width: int, number: I64, kind: I64) -> pa.ChunkedArray:
    """``<prefix><letter><number>``: the letter ``I``, ``R`` or ``P`` for the kind of record."""
    refs = _text(prefix + "I", width, number).view(np.uint32)
    letters = [np.frombuffer((prefix + c).encode()[-4:], dtype=np.uint32)[0] for c in "IRP"]
    refs[:, (len(prefix) + 1) // 4 - 1] = np.array(letters, dtype=np.uint32)[kind]
    return _strings(refs.view(np.uint8))


def _prefix(catalogs: Registry, params: Params) -> str:
    """``SIM<seed>-<tag>-``: the tag hashes the parameters and the catalogs.

    The tag is 6 to 9 hex digits, so that the prefix and the kind letter
    after it fill whole 4-byte words.
    """
    text = repr(
        (
            GENERATOR_VERSION,
            params.subjects,
            params.years,
            params.seed,
            params.end.isoformat(),
            params.org_share,
            sorted((params.jurisdiction_weights or {}).items()),
            catalogs.digest,
        )
    )
    digest = hashlib.sha256(text.encode()).hexdigest()
    head = f"SIM{params.seed}-"
    size = 6 + (-(len(head) + 6 + 2)) % 4
    return f"{head}{digest[:size]}-"


def generate(catalogs: Registry, params: Params) -> Population:
    """The subjects, records and appeal intents of one synthetic population."""
    places = _places(catalogs, params)
    subjects = _all_subjects(places, params)
    agency_codes = tuple(a.code for a in catalogs.agencies())
    agency_index = {code: i for i, code in enumerate(agency_codes)}
    rule_codes = tuple(sorted({r.code for j in places.jurisdictions for r in catalogs.rules_for_scheme(j)}))
    start_day, end_day = _day(params.start), _day(params.end)
    n_days = end_day - start_day + 1

    with ThreadPoolExecutor(max_workers=2) as pool:
        subjects_table = pool.submit(_subject_table, subjects, places)
        drawn = _Drawn()
        intensity = _Intensity(subjects)
        for i, code in enumerate(rule_codes):
            for version in catalogs.rule_versions(code):
                _draw_version(
                    version, i, profile_for(version), catalogs, places, intensity, agency_index, params, drawn
                )
        v_rule = np.array([v.rule for v in drawn.versions] or [0], dtype=np.int64)
        v_severity = np.array([v.severity for v in drawn.versions] or [0], dtype=np.int64)
        v_adverse = np.array([v.adverse for v in drawn.versions] or [False], dtype=np.bool_)
        v_restorable = np.array([v.restorable for v in drawn.versions] or [False], dtype=np.bool_)

        # Number the incidents as their agencies would: by date. Ties keep the
        # order of generation (rule, version, place, kind, then drawn order).
        subj, day, vid, agency = (
            _cat(drawn.subject),
            _cat(drawn.day),
            _cat(drawn.version),
            _cat(drawn.agency),
        )
        order, when = _order([(agency, len(agency_codes)), (day - start_day, n_days)])
        subj, vid = subj[order], vid[order]
        agency, day = when // n_days, when % n_days + start_day
        n = subj.size
        adverse = v_adverse[vid]
        shift = len(places.jurisdictions).bit_length()
        kind_place = (subjects.is_org.astype(np.int64) << shift) | subjects.juris  # one gather for both
        inc_kind_place = kind_place[subj]
        juris = inc_kind_place & ((1 << shift) - 1)

        # Retractions, restorations, appeal intents: each drawn only where it can happen.
        rng = _rng(params.seed, 2)
        r_idx = np.flatnonzero(adverse & (rng.random(n) < RETRACT_SHARE))
        r_day = day[r_idx] + 1 + np.floor(rng.exponential(RETRACT_MEAN_DAYS, r_idx.size)).astype(np.int64)
        keep = r_day <= end_day
        r_idx, r_day = r_idx[keep], r_day[keep]
        retracted = np.zeros(n, dtype=np.bool_)
        retracted[r_idx] = True

        p_idx = np.flatnonzero(v_restorable[vid] & ~retracted)
        p_idx = p_idx[rng.random(p_idx.size) < RESTORE_SHARE]
        delay = rng.lognormal(np.log(RESTORE_MEDIAN_DAYS), RESTORE_SIGMA, p_idx.size)
        p_day = day[p_idx] + 1 + np.floor(delay).astype(np.int64)
        keep = p_day <= end_day
        p_idx, p_day = p_idx[keep], p_day[keep]

        share = np.array([APPEAL_SHARE[s] for s in _SEVERITIES])[v_severity[vid]]
        a_idx = np.flatnonzero(adverse & ~retracted & (rng.random(n) < share))
        a_j = juris[a_idx]
        notice = 1 + np.floor(rng.random(a_idx.size) * APPEAL_NOTICE_DAYS).astype(np.int64)
        filed = (
            day[a_idx]
            + notice
            + np.floor(rng.random(a_idx.size) * places.appeal_window[a_j]).astype(np.int64)
        )
        keep = filed <= end_day
        a_idx, a_j, filed = a_idx[keep], a_j[keep], filed[keep]
        how = rng.random(a_idx.size)
        deadline = places.decision_deadline[a_j]
        decided = np.where(
            how < APPEAL_ON_TIME,
            filed + 1 + np.floor(rng.random(a_idx.size) * deadline).astype(np.int64),
            filed + deadline + 1 + np.floor(rng.random(a_idx.size) * APPEAL_LATE_DAYS).astype(np.int64),
        )
        is_decided = (how < APPEAL_ON_TIME + APPEAL_LATE) & (decided <= end_day)
        outcome = np.where(is_decided, (rng.random(a_idx.size) < OVERTURNED_SHARE).astype(np.int64), 2)

        # Every ledger row, per agency by date; on one day incidents come first.
        # The incidents are in that order already: merge the few follow-ups in.
        f_target = np.concatenate([r_idx, p_idx])
        f_kind = np.concatenate([np.ones(r_idx.size, np.int64), np.full(p_idx.size, 2, np.int64)])
        f_day = np.concatenate([r_day, p_day])
        f_order, f_key = _order(
            [(agency[f_target], len(agency_codes)), (f_day - start_day, n_days), (f_kind, 3)]
        )
        f_target, f_kind, f_day = f_target[f_order], f_kind[f_order], f_day[f_order]
        at = np.searchsorted(when * 3, f_key, side="right") + np.arange(f_key.size)
        total = n + f_key.size
        is_incident = np.ones(total, dtype=np.bool_)
        is_incident[at] = False
        target = np.empty(total, dtype=np.int64)
        target[is_incident] = np.arange(n)
        target[at] = f_target
        kind = np.zeros(total, dtype=np.int64)
        kind[at] = f_kind
        row_day = np.empty(total, dtype=np.int64)
        row_day[is_incident] = day
        row_day[at] = f_day
        row_kind_place = inc_kind_place[target]

        # References: SIM<seed>-<tag>-<letter><number>, the letter for the kind
        # (Incident, Retraction, restoration: Performed), every one the same width.
        # The two widest columns are built beside the rest (numpy and Arrow let
        # go of the GIL); each is a pure function of its inputs.
        prefix = _prefix(catalogs, params)
        width = max(8, -(-len(str(max(n - 1, 0))) // 4) * 4)
        agency_ref = pool.submit(_references, prefix, width, target, kind)
        subject = pool.submit(lambda: _strings(np.take(subjects.identifier, subj[target], axis=0)))
        columns: dict[str, Any] = {
            "kind": _take(KINDS, kind),
            "subject_kind": _take(SUBJECT_KINDS, row_kind_place >> shift),
            "rule": _take(rule_codes, v_rule[vid[target]], is_incident),
            "jurisdiction": _take(places.jurisdictions, row_kind_place & ((1 << shift) - 1)),
            "occurred_on": _dates(row_day),
            "evidence": _take((EVIDENCE,), np.zeros(total, dtype=np.int64), is_incident),
            "target_ref": _strings(_text(prefix + "I", width, f_target), ~is_incident),
            "agency": _take(agency_codes, agency[target]),
        }
        columns["agency_ref"] = agency_ref.result()
        columns["subject"] = subject.result()
        records = pa.table(
            {
                name: columns.get(name, pa.nulls(total, RECORD_SCHEMA.field(name).type))
                for name in RECORD_COLUMNS
            }
        )

        a_order, _ = _order([(filed - start_day, n_days + 400), (agency[a_idx], len(agency_codes))])
        a_idx, filed, decided = a_idx[a_order], filed[a_order], decided[a_order]
        is_decided, outcome = is_decided[a_order], outcome[a_order]
        appeals = pa.table(
            {
                "agency": _take(agency_codes, agency[a_idx]),
                "agency_ref": _strings(_text(prefix + "I", width, a_idx)),
                "filed_on": _dates(filed),
                "outcome": _take(OUTCOMES, outcome),
                "decided_on": _dates(decided, is_decided),
            }
        )

        counts = {
            "subjects": params.subjects,
            "persons": int((~subjects.is_org).sum()),
            "organisations": int(subjects.is_org.sum()),
            "records": total,
            "incidents": n,
            "adverse": int(adverse.sum()),
            "rewards": int(n - adverse.sum()),
            "retractions": int(r_idx.size),
            "restorations": int(p_idx.size),
            "appeals": int(a_idx.size),
            "overturned": int((outcome == 1).sum()),
            "pending": int((outcome == 2).sum()),
        }

    return Population(params, prefix, subjects_table.result(), records, appeals, counts)
