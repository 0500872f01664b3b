"""The checks a record passes on its way in, as a plain function.

``check_item`` looks only at the item and the catalogs (no database): it
returns a :class:`Draft` or the list of every reason the item is refused,
each naming the field and the rule it breaks. Checks that need the ledger
(idempotency, the record a retraction names) live in ``services``.

>>> from credo.ledger.validate import RECORD_FIELDS
>>> "agency_ref" in RECORD_FIELDS
True
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal, NamedTuple

import orjson

from credo.catalog.registry import Registry
from credo.ids import AT_ONCE, IdentifierError, SubjectId, canonical_persons, parse_subject, parse_subject_ref

RecordKind = Literal["incident", "retraction", "restoration"]
RECORD_KINDS: tuple[RecordKind, ...] = ("incident", "retraction", "restoration")

#: Columns an agency sends (API JSON keys, CSV / JSON Lines / Parquet columns).
RECORD_FIELDS: dict[str, str] = {
    "agency_ref": "the agency's own reference, unique per agency (idempotency key); required",
    "kind": "incident (default), retraction or restoration",
    "subject_kind": "person, organisation or foreign; guessed from the identifier when empty",
    "subject": "the subject's identifier (resident identity number, USCC, or CC:DOCUMENT)",
    "rule": "rule code from the catalogs; required for incidents, defaults to the target's rule",
    "jurisdiction": "where the act was recorded; defaults to the agency's jurisdiction",
    "occurred_on": "date of the act, YYYY-MM-DD, in the jurisdiction's timezone; required",
    "evidence": "evidence reference: a URI or a short text",
    "target_ref": "retraction/restoration: agency_ref of the record it withdraws or clears",
    "target_seq": "retraction/restoration: ledger sequence number of that record",
}

MAX_REF = 128
MAX_EVIDENCE = 2000
MAX_SEQ = 2**63 - 1  # a ledger sequence number is a signed 64-bit column


class Draft(NamedTuple):
    """A record that passed every check that needs no database.

    (A named tuple rather than a frozen dataclass: ingest makes one per
    record, and this is three times cheaper to build.)
    """

    agency_ref: str
    kind: RecordKind
    subject: SubjectId | None
    rule: str | None
    rule_version: int | None
    jurisdiction: str
    occurred_on: date
    evidence: str
    target_ref: str | None
    target_seq: int | None
    content_hash: bytes


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a field name a reason gives as it is


def _text(raw: Mapping[str, Any], name: str) -> str:
    return _as_text(raw.get(name))


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return str(value).strip()


_KNOWN_FIELDS = frozenset(RECORD_FIELDS)
_SORT_KEYS = orjson.OPT_SORT_KEYS
_sha256 = hashlib.sha256


class Checker:
    """``check_item`` for one agency and one day, remembering what repeats.

    Within a batch the same rules, jurisdictions, dates and subjects come
    back again and again; each answer that depends only on the catalogs,
    the agency and ``today`` is worked out once. A checker lives for one
    batch (the catalogs and the clock may change between batches).
    """

    def __init__(self, catalogs: Registry, agency: str, today: Mapping[str, date]) -> None:
        self.catalogs = catalogs
        self.agency = agency
        self.today = today
        self.known_agency = catalogs.agency(agency) is not None
        self.home = catalogs.agency_jurisdiction(agency) if self.known_agency else ""
        self._jurisdictions: dict[str, tuple[str, tuple[str, ...], str]] = {}
        self._dates: dict[str, tuple[date, str] | None] = {}
        self._rules: dict[
            tuple[str, str], tuple[tuple[date, date | None, int | None, tuple[str, ...]], ...]
        ] = {}
        self._subjects: dict[tuple[str, str], SubjectId | str] = {}

    def _jurisdiction(self, text: str) -> tuple[str, tuple[str, ...], str]:
        """(the jurisdiction used, reasons, its timezone) for a jurisdiction field."""
        found = self._jurisdictions.get(text)
        if found is None:
            catalogs, home = self.catalogs, self.home
            jurisdiction = text or home
            reasons: tuple[str, ...] = ()
            if catalogs.jurisdiction(jurisdiction) is None:
                reasons = (f"jurisdiction: unknown jurisdiction {jurisdiction!r}",)
                jurisdiction = home
            elif not catalogs.is_within(jurisdiction, home):
                reasons = (
                    f"jurisdiction: agency {self.agency} reports in {home} and below, not in {jurisdiction}",
                )
            found = (jurisdiction, reasons, catalogs.policy(jurisdiction).timezone)
            self._jurisdictions[text] = found
        return found

    def _date(self, text: str) -> tuple[date, str] | None:
        """The date and its ISO form (``fromisoformat`` also reads ``20240301``)."""
        try:
            return self._dates[text]
        except KeyError:
            pass
        try:
            day = date.fromisoformat(text)
            found: tuple[date, str] | None = (day, day.isoformat())
        except ValueError:
            found = None
        self._dates[text] = found
        return found

    def know_people(self, items: Sequence[Any]) -> None:
        """Validate the people among ``items``' subjects together (``canonical_persons``):
        a batch of 1,000 records meets hundreds of subjects first seen, ~11 us each one at a
        time. What it does not accept (another kind, another spelling, a refusal) ``check``
        parses as before, with its reason."""
        wanted: dict[tuple[str, str], str] = {}
        for raw in items:
            if type(raw) is dict and type(subject := raw.get("subject")) is str:
                kind, text = raw.get("subject_kind") or "", subject.strip()
                if type(kind) is not str:
                    continue
                kind = kind.strip()
                # "person" takes the 18 characters alone; no kind also "person:" and them
                fits = kind == "" or (kind == "person" and len(text) == 18)
                if fits and (kind, text) not in self._subjects:
                    wanted[kind, text] = text
        if len(wanted) >= AT_ONCE:
            for key, found in zip(wanted, canonical_persons(list(wanted.values())), strict=True):
                if found is not None:
                    self._subjects[key] = SubjectId("person", found[7:])

    def _subject(self, kind: str, text: str) -> SubjectId | str:
        key = (kind, text)
        found = self._subjects.get(key)
        if found is None:
            try:
                found = parse_subject(kind, text) if kind else parse_subject_ref(text)
            except IdentifierError as exc:
                found = f"subject: {exc}"
            self._subjects[key] = found
        return found

    def _rule(self, code: str, jurisdiction: str, occurred: date) -> tuple[int | None, tuple[str, ...]]:
        """(version, reasons) of rule ``code`` for an act on ``occurred`` in ``jurisdiction``."""
        spans = self._rules.get((code, jurisdiction))
        if spans is None:
            spans = self._rule_spans(code, jurisdiction)
            self._rules[code, jurisdiction] = spans
        for start, end, version, reasons in spans:
            if start <= occurred and (end is None or occurred < end):
                return version, reasons
        # No version in force that day (or no rule): the reasons name the dates.
        reasons_list: list[str] = []
        version_found = _check_rule(code, self.agency, jurisdiction, occurred, self.catalogs, reasons_list)
        return version_found, tuple(reasons_list)

    def _rule_spans(
        self, code: str, jurisdiction: str
    ) -> tuple[tuple[date, date | None, int | None, tuple[str, ...]], ...]:
        """Each version's days in force, with the reasons a record of it on such a day gets."""
        spans = []
        for rule in self.catalogs.rule_versions(code):
            reasons: list[str] = []
            version = _check_rule(
                code, self.agency, jurisdiction, rule.effective_from, self.catalogs, reasons
            )
            spans.append((rule.effective_from, rule.effective_to, version, tuple(reasons)))
        return tuple(spans)

    def check(self, raw: Mapping[str, Any]) -> Draft | list[str]:
        """Every reason ``raw`` is refused, or the draft record (see :func:`check_item`)."""
        if type(raw) is not dict and not isinstance(raw, Mapping):
            reason = getattr(raw, "reason", None)  # a line the file reader could not read
            return [reason if isinstance(reason, str) else "record: must be a JSON object"]
        reasons: list[str] = []
        # Every field as stripped text, in one pass; an absent one is "".
        fields = {
            name: value.strip() if type(value) is str else _as_text(value) for name, value in raw.items()
        }
        text = fields.get
        # PostgreSQL text cannot hold NUL: refused here with its field, not by the database.
        if "\x00" in "".join(fields.values()):  # one scan of every field; which one only when found
            nul = [name for name, value in fields.items() if "\x00" in value]
            reasons.append(f"{_label(nul[0])}: contains a NUL character, which no field may hold")
        if not fields.keys() <= _KNOWN_FIELDS:
            unknown = sorted(set(raw) - _KNOWN_FIELDS, key=str)
            reasons.append(f"{_label(unknown[0])}: unknown field (known: {', '.join(RECORD_FIELDS)})")

        ref = text("agency_ref", "")
        if not ref:
            reasons.append("agency_ref: required")
        elif len(ref) > MAX_REF:
            reasons.append(f"agency_ref: at most {MAX_REF} characters")

        kind_text = text("kind", "") or "incident"
        kind: RecordKind = "incident"
        if kind_text not in RECORD_KINDS:
            reasons.append(f"kind: must be one of {', '.join(RECORD_KINDS)}, got {kind_text!r}")
        else:
            kind = kind_text

        subject: SubjectId | None = None
        subject_text = text("subject", "")
        if subject_text:
            parsed = self._subject(text("subject_kind", ""), subject_text)
            if isinstance(parsed, str):
                reasons.append(parsed)
            else:
                subject = parsed
        elif kind == "incident":
            reasons.append("subject: required")

        if not self.known_agency:
            return [*reasons, f"agency: unknown agency {self.agency!r}"]
        jurisdiction, where_reasons, tz = self._jurisdiction(text("jurisdiction", ""))
        reasons.extend(where_reasons)

        occurred: date | None = None
        occurred_iso = ""
        occurred_text = text("occurred_on", "")
        if not occurred_text:
            reasons.append("occurred_on: required (YYYY-MM-DD)")
        else:
            parsed_date = self._date(occurred_text)
            if parsed_date is None:
                reasons.append(f"occurred_on: not a date (YYYY-MM-DD): {occurred_text!r}")
            elif (occurred := parsed_date[0]) > self.today[tz]:
                reasons.append(
                    f"occurred_on: {occurred} is in the future (today is {self.today[tz]} in {tz})"
                )
            else:
                occurred_iso = parsed_date[1]

        evidence = text("evidence", "")
        if len(evidence) > MAX_EVIDENCE:
            reasons.append(f"evidence: at most {MAX_EVIDENCE} characters")

        target_ref = text("target_ref", "") or None
        target_seq: int | None = None
        target_seq_text = text("target_seq", "")
        if target_seq_text:
            try:
                target_seq = int(target_seq_text)
                if not 1 <= target_seq <= MAX_SEQ:
                    raise ValueError
            except ValueError:
                reasons.append(f"target_seq: must be a positive whole number, got {target_seq_text!r}")
        if kind == "incident" and (target_ref or target_seq is not None):
            reasons.append("target_ref/target_seq: only a retraction or restoration names a target")
        if kind != "incident" and not target_ref and target_seq is None and not reasons:
            reasons.append(f"target_ref: a {kind} must name the record it touches (target_ref or target_seq)")

        rule_code = text("rule", "") or None
        rule_version: int | None = None
        if rule_code is None and kind == "incident":
            reasons.append("rule: required")
        elif rule_code is not None and occurred is None:
            if not self.catalogs.rule_versions(rule_code):  # the version needs a date; existence does not
                reasons.append(f"rule: unknown rule {rule_code!r}")
        elif rule_code is not None and occurred is not None:
            rule_version, rule_reasons = self._rule(rule_code, jurisdiction, occurred)
            reasons.extend(rule_reasons)

        if reasons or occurred is None:
            return reasons
        content = {
            "agency": self.agency,
            "agency_ref": ref,
            "kind": kind,
            "subject": str(subject) if subject else None,
            "rule": rule_code,
            "jurisdiction": jurisdiction,
            "occurred_on": occurred_iso,
            "evidence": evidence,
            "target_ref": target_ref,
            "target_seq": target_seq,
        }
        return Draft(  # by position: a third cheaper than by keyword, once per record
            ref,
            kind,
            subject,
            rule_code,
            rule_version,
            jurisdiction,
            occurred,
            evidence,
            target_ref,
            target_seq,
            _sha256(orjson.dumps(content, option=_SORT_KEYS)).digest(),
        )


def check_item(
    raw: Mapping[str, Any],
    agency: str,
    catalogs: Registry,
    today: Mapping[str, date],
) -> Draft | list[str]:
    """Every reason ``raw`` is refused, or the draft record.

    ``today`` maps a timezone name to the current date there: a date of an
    act is "in the future" by the clock of the jurisdiction it happened in.
    To check many items, make one :class:`Checker` and call its ``check``.
    """
    return Checker(catalogs, agency, today).check(raw)


def _check_rule(
    code: str, agency: str, jurisdiction: str, occurred: date, catalogs: Registry, reasons: list[str]
) -> int | None:
    versions = catalogs.rule_versions(code)
    if not versions:
        reasons.append(f"rule: unknown rule {code!r}")
        return None
    home = catalogs.rule_jurisdiction(code)
    if not catalogs.is_within(jurisdiction, home):
        reasons.append(f"rule: {code} is a rule of {home}; it does not apply in {jurisdiction}")
    rule = catalogs.rule(code, occurred)
    if rule is None:
        first = min(v.effective_from for v in versions)
        if occurred < first:
            reasons.append(f"occurred_on: {occurred} is before rule {code} existed (from {first})")
        else:
            spans = ", ".join(f"{v.effective_from}..{v.effective_to or ''}" for v in versions)
            reasons.append(f"rule: {code} has no version in force on {occurred} (versions: {spans})")
        return None
    if agency not in rule.agencies:
        reasons.append(f"rule: agency {agency} may not report {code} (allowed: {', '.join(rule.agencies)})")
    return rule.version


def _label(name: Any) -> str:
    """A field's name as a reason starts with it: JSON-quoted unless it is a plain name, so that
    a key such as ":" (found by ``make fuzz``: the reason read ":: unknown field") cannot blur
    where the name ends.

    >>> _label("colour"), _label(":"), _label("a b")
    ('colour', '":"', '"a b"')
    """
    text = str(name)
    return text if _PLAIN.fullmatch(text) else orjson.dumps(text).decode()
