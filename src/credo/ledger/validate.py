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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import orjson

from credo.catalog.registry import Registry
from credo.ids import IdentifierError, SubjectId, parse_subject, parse_subject_ref

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


@dataclass(frozen=True)
class Draft:
    """A record that passed every check that needs no database."""

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


def _text(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return str(value).strip()


def check_item(
    raw: Mapping[str, Any],
    agency: str,
    catalogs: Registry,
    today: Mapping[str, date],
) -> Draft | list[str]:
    """Every reason ``raw`` is refused, or the draft record.

    ``today`` maps a timezone name to the current date there: a date of an
    act is "in the future" by the clock of the jurisdiction it happened in.
    """
    if not isinstance(raw, Mapping):
        reason = getattr(raw, "reason", None)  # a line the file reader could not read
        return [reason if isinstance(reason, str) else "record: must be a JSON object"]
    reasons: list[str] = []
    unknown = sorted(set(raw) - set(RECORD_FIELDS))
    if unknown:
        reasons.append(f"{unknown[0]}: unknown field (known: {', '.join(RECORD_FIELDS)})")

    ref = _text(raw, "agency_ref")
    if not ref:
        reasons.append("agency_ref: required")
    elif len(ref) > MAX_REF:
        reasons.append(f"agency_ref: at most {MAX_REF} characters")

    kind_text = _text(raw, "kind") or "incident"
    kind: RecordKind = "incident"
    if kind_text not in RECORD_KINDS:
        reasons.append(f"kind: must be one of {', '.join(RECORD_KINDS)}, got {kind_text!r}")
    else:
        kind = kind_text

    subject: SubjectId | None = None
    subject_text = _text(raw, "subject")
    subject_kind = _text(raw, "subject_kind")
    if subject_text:
        try:
            subject = (
                parse_subject(subject_kind, subject_text) if subject_kind else parse_subject_ref(subject_text)
            )
        except IdentifierError as exc:
            reasons.append(f"subject: {exc}")
    elif kind == "incident":
        reasons.append("subject: required")

    agency_def = catalogs.agency(agency)
    if agency_def is None:
        return [*reasons, f"agency: unknown agency {agency!r}"]
    agency_home = catalogs.agency_jurisdiction(agency)
    jurisdiction = _text(raw, "jurisdiction") or agency_home
    if catalogs.jurisdiction(jurisdiction) is None:
        reasons.append(f"jurisdiction: unknown jurisdiction {jurisdiction!r}")
        jurisdiction = agency_home
    elif not catalogs.is_within(jurisdiction, agency_home):
        reasons.append(
            f"jurisdiction: agency {agency} reports in {agency_home} and below, not in {jurisdiction}"
        )

    occurred: date | None = None
    occurred_text = _text(raw, "occurred_on")
    if not occurred_text:
        reasons.append("occurred_on: required (YYYY-MM-DD)")
    else:
        try:
            occurred = date.fromisoformat(occurred_text)
        except ValueError:
            reasons.append(f"occurred_on: not a date (YYYY-MM-DD): {occurred_text!r}")
    if occurred is not None:
        tz = catalogs.policy(jurisdiction).timezone
        if occurred > today[tz]:
            reasons.append(f"occurred_on: {occurred} is in the future (today is {today[tz]} in {tz})")

    evidence = _text(raw, "evidence")
    if len(evidence) > MAX_EVIDENCE:
        reasons.append(f"evidence: at most {MAX_EVIDENCE} characters")

    target_ref = _text(raw, "target_ref") or None
    target_seq: int | None = None
    target_seq_text = _text(raw, "target_seq")
    if target_seq_text:
        try:
            target_seq = int(target_seq_text)
            if target_seq < 1:
                raise ValueError
        except ValueError:
            reasons.append(f"target_seq: must be a positive whole number, got {target_seq_text!r}")
    if kind == "incident" and (target_ref or target_seq is not None):
        reasons.append("target_ref/target_seq: only a retraction or restoration names a target")
    if kind != "incident" and not target_ref and target_seq is None and not reasons:
        reasons.append(f"target_ref: a {kind} must name the record it touches (target_ref or target_seq)")

    rule_code = _text(raw, "rule") or None
    rule_version: int | None = None
    if rule_code is None and kind == "incident":
        reasons.append("rule: required")
    elif rule_code is not None and occurred is None:
        if not catalogs.rule_versions(rule_code):  # the version needs a date; existence does not
            reasons.append(f"rule: unknown rule {rule_code!r}")
    elif rule_code is not None and occurred is not None:
        rule_version = _check_rule(rule_code, agency, jurisdiction, occurred, catalogs, reasons)

    if reasons or occurred is None:
        return reasons
    content = {
        "agency": agency,
        "agency_ref": ref,
        "kind": kind,
        "subject": str(subject) if subject else None,
        "rule": rule_code,
        "jurisdiction": jurisdiction,
        "occurred_on": occurred.isoformat(),
        "evidence": evidence,
        "target_ref": target_ref,
        "target_seq": target_seq,
    }
    return Draft(
        agency_ref=ref,
        kind=kind,
        subject=subject,
        rule=rule_code,
        rule_version=rule_version,
        jurisdiction=jurisdiction,
        occurred_on=occurred,
        evidence=evidence,
        target_ref=target_ref,
        target_seq=target_seq,
        content_hash=hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).digest(),
    )


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
