"""Notices: no secret files. Every adverse record, retraction, warning,
listing, delisting, appeal receipt and appeal decision tells its subject.

A notice is a row written in the same transaction as the event it reports
(``kind`` + a structured ``body``); its text is rendered from the body in
Simplified Chinese or English when shown or sent, so the facts are stored
once and the wording can improve without rewriting history.

>>> render({"kind": "record", "rule": "R", "title_en": "Running a red light", "title_zh": "闯红灯",
...         "legal_basis": "Road Traffic Safety Law art. 90", "points": -5,
...         "appeal_by": "2024-03-16", "seq": 12}, "en").splitlines()[0]
'A record was added to your credit file: Running a red light (rule R, record 12).'
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, insert, select

from credo.catalog.registry import Registry
from credo.store.db import insert_many, one_of
from credo.store.tables import notice_deliveries, notices, subject_channels

HOW_TO_APPEAL = {
    "en": "To appeal, sign in to the credo portal (Appeals) or POST /api/v1/me/appeals with your grounds.",
    "zh": "如需申诉，请登录 credo 门户（申诉）或通过 POST /api/v1/me/appeals 提交理由。",
}


def appeal_deadline(catalogs: Registry, jurisdiction: str, issued_at: datetime) -> date:
    """Last local day on which an appeal against this notice is accepted (inclusive)."""
    policy = catalogs.policy(jurisdiction)
    issued_day = _aware(issued_at).astimezone(ZoneInfo(policy.timezone)).date()
    return issued_day + timedelta(days=policy.appeal_window_days)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def create(
    conn: Connection, subject_id: int, kind: str, body: Mapping[str, Any], now: datetime, **links: int | None
) -> int:
    """Write one notice and queue it for every channel of its subject."""
    return _create(conn, subject_id, kind, _body_text({"kind": kind, **body}), now, **links)


def _create(
    conn: Connection, subject_id: int, kind: str, text: str, now: datetime, **links: int | None
) -> int:
    """:func:`create` of a body already written as stored."""
    notice_id = int(
        conn.execute(
            insert(notices)
            .values(subject_id=subject_id, kind=kind, issued_at=now, body=text, **links)
            .returning(notices.c.id)
        ).scalar_one()
    )
    channels = conn.execute(
        select(subject_channels.c.channel, subject_channels.c.address).where(
            subject_channels.c.subject_id == subject_id
        )
    ).all()
    if channels:
        conn.execute(
            insert(notice_deliveries),
            [
                {
                    "notice_id": notice_id,
                    "channel": c.channel,
                    "address": c.address,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for c in channels
            ],
        )
    return notice_id


def _body_text(body: Mapping[str, Any]) -> str:
    """A notice body as stored: JSON, dates as ISO text (orjson: a tenth of json's time per notice)."""
    return orjson.dumps(body, default=str).decode()


def for_records(
    conn: Connection, catalogs: Registry, rows: Iterable[Mapping[str, Any]], now: datetime
) -> int:
    """Notices for newly accepted records: adverse incidents, retractions and restorations.

    ``rows`` are ledger rows (seq, kind, subject_id, rule, rule_version,
    jurisdiction, occurred_on, target_seq). Rewards need no notice to be
    contestable, but their subject still sees them in the file. Written in
    bulk: one insert for the notices, one look-up of their subjects' channels.
    """
    made: list[tuple[int, str, str, int]] = []
    # What a notice says about its rule (and, for an incident, the appeal
    # deadline in its jurisdiction) is the same for every record of that rule
    # version: worked out once per batch, not per record, and written as the
    # JSON around the record's own members (seq, occurred_on, target_seq).
    said: dict[tuple[Any, ...], tuple[str, bytes, bytes, bytes] | None] = {}
    for row in rows:
        key = (row["rule"], row["rule_version"], row["kind"], row["jurisdiction"])
        if key in said:
            found = said[key]
        else:
            found = said[key] = _body_parts(_what_is_said(catalogs, *key, now))
        if found is None:
            continue
        kind, head, middle, tail = found
        seq = int(row["seq"])
        body = (
            head
            + str(seq).encode()
            + middle
            + _json(row["occurred_on"], default=str)
            + b',"target_seq":'
            + _json(row.get("target_seq"), default=str)
            + tail
        )
        made.append((int(row["subject_id"]), kind, body.decode(), seq))
    if not made:
        return 0
    reached = {
        int(r.subject_id)
        for r in conn.execute(
            select(subject_channels.c.subject_id).where(
                one_of(conn, subject_channels.c.subject_id, sorted({m[0] for m in made}))
            )
        )
    }
    insert_many(
        conn,
        notices,
        ("subject_id", "kind", "issued_at", "body", "record_seq"),
        [(sid, kind, now, text, seq) for sid, kind, text, seq in made if sid not in reached],
    )
    for sid, kind, text, seq in made:  # subjects with a channel: each notice queued for delivery
        if sid in reached:
            _create(conn, sid, kind, text, now, record_seq=seq)
    return len(made)


_json = orjson.dumps


def _body_parts(
    said: tuple[str, dict[str, Any], dict[str, Any]] | None,
) -> tuple[str, bytes, bytes, bytes] | None:
    """(kind, and the stored body's JSON before ``seq``, between ``seq`` and ``occurred_on``'s
    value, and after ``target_seq``'s value): :func:`_body_text` of
    ``{kind, seq, **about, occurred_on, target_seq, **deadline}`` is ``head + seq + middle +
    occurred_on + ',"target_seq":' + target_seq + tail``, each value as orjson writes it."""
    if said is None:
        return None
    kind, about, deadline = said
    if "kind" in about or "seq" in about or {"occurred_on", "target_seq"} & (about.keys() | deadline.keys()):
        raise ValueError("a notice body's rule members must not repeat its record's own")
    head = b'{"kind":' + _json(kind) + b',"seq":'
    middle = (b"," + _json(about, default=str)[1:-1] if about else b"") + b',"occurred_on":'
    tail = (b"," + _json(deadline, default=str)[1:-1] if deadline else b"") + b"}"
    return kind, head, middle, tail


_NOTICE_KINDS = {"incident": "record", "retraction": "retraction", "restoration": "restoration"}


def _what_is_said(
    catalogs: Registry, code: str, version: Any, record_kind: str, jurisdiction: str, now: datetime
) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
    """(notice kind, the rule's members, the appeal members) of the notice of records of one
    rule version, kind and jurisdiction; None when such a record needs no notice.

    A body is ``{kind, seq, rule, title_en, title_zh, legal_basis, points,
    jurisdiction, occurred_on, target_seq}`` and, for an incident,
    ``appeal_by`` and ``places_on``.
    """
    rule = next((v for v in catalogs.rule_versions(code) if v.version == int(version)), None)
    if rule is None or (record_kind == "incident" and rule.points >= 0):
        return None
    kind = _NOTICE_KINDS[record_kind]
    about = {
        "rule": rule.code,
        "title_en": rule.title_en,
        "title_zh": rule.title_zh,
        "legal_basis": rule.legal_basis,
        "points": rule.points,
        "jurisdiction": jurisdiction,
    }
    deadline: dict[str, Any] = {}
    if kind == "record":
        deadline = {"appeal_by": appeal_deadline(catalogs, jurisdiction, now), "places_on": rule.places_on}
    return kind, about, deadline


# One template per kind and language; fields come from the notice body.
TEXTS: dict[str, dict[str, str]] = {
    "record": {
        "en": "A record was added to your credit file: {title} (rule {rule}, record {seq}).\n"
        "Legal basis: {legal_basis}.\nEffect on your score: {points} points.{listing}\n"
        "You may appeal until {appeal_by} (inclusive).\n{how}",
        "zh": "您的信用档案新增一条记录：{title}（规则 {rule}，记录 {seq}）。\n法律依据：{legal_basis}。\n"
        "对评分的影响：{points} 分。{listing}\n申诉截止日期：{appeal_by}（含当日）。\n{how}",
    },
    "retraction": {
        "en": "Record {target_seq} ({title}) was withdrawn by the agency and no longer counts.",
        "zh": "记录 {target_seq}（{title}）已被报送机关撤回，不再计入评分。",
    },
    "restoration": {
        "en": "Record {target_seq} ({title}) was cleared by a restorative act.",
        "zh": "记录 {target_seq}（{title}）已因修复行为而清除。",
    },
    "listing": {
        "en": "You were placed on {list_name} ({list}) from {started_on} until {planned_end_on} "
        "at the latest; enforced from {enforceable_from}. Measures: {measure_list}.\n{how}",
        "zh": "您已被列入 {list_name}（{list}），自 {started_on} 起，最迟至 {planned_end_on} 止；"
        "自 {enforceable_from} 起执行。措施：{measure_list}。\n{how}",
    },
    "delisting": {
        "en": "Listing {listing} ended on {ended_on}: {reason}.",
        "zh": "名单记录 {listing} 已于 {ended_on} 结束：{reason}。",
    },
    "warning": {
        "en": "Warning: your grade in {scheme} is in the grades of list {list}. If it is still there after "
        "{warning_period_days} days you will be placed on that list.",
        "zh": "警告：您在 {scheme} 的等级已进入名单 {list} 的等级。若 {warning_period_days} 天后仍未改善，"
        "将被列入该名单。",
    },
    "appeal-received": {
        "en": "Your appeal {appeal} against record {record_seq} was received. A decision is due by "
        "{decide_by}; meanwhile the record is marked as contested.",
        "zh": "已收到您对记录 {record_seq} 的申诉（编号 {appeal}），将于 {decide_by} 前作出决定。"
        "申诉期间该记录标记为有争议。",
    },
    "appeal-decision": {
        "en": "Decision on appeal {appeal} (record {record_seq}): {outcome}. Reasons: {reasons}",
        "zh": "申诉 {appeal}（记录 {record_seq}）的决定：{outcome}。理由：{reasons}",
    },
    "appeal-overdue": {
        "en": "Appeal {appeal} was not decided by its deadline: record {record_seq} is suspended (it does "
        "not count) until it is decided.",
        "zh": "申诉 {appeal} 未在期限内作出决定：记录 {record_seq} 暂停计入，直至作出决定。",
    },
    "rectification-received": {
        "en": "Your request {request} to clear record {record_seq} was received; "
        "a decision is due by {decide_by}.",
        "zh": "已收到您清除记录 {record_seq} 的修复申请（编号 {request}），将于 {decide_by} 前作出决定。",
    },
    "rectification-decision": {
        "en": "Decision on your rectification request {request} (record {record_seq}): {outcome}. {reasons}",
        "zh": "修复申请 {request}（记录 {record_seq}）的决定：{outcome}。{reasons}",
    },
}


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def render(body: Mapping[str, Any], lang: str = "en") -> str:
    """The notice as a person reads it (``zh`` or ``en``; English is the fallback)."""
    lang = "zh" if lang == "zh" else "en"
    templates = TEXTS.get(str(body.get("kind")))
    if templates is None:
        return json.dumps(dict(body), ensure_ascii=False, default=str)
    fields = _Blank(body)
    fields["title"] = body.get(f"title_{lang}") or body.get("title_en", "")
    fields["list_name"] = body.get(f"list_name_{lang}") or body.get("list", "")
    fields["measure_list"] = ", ".join(m["measure"] for m in body.get("measures", []))
    fields["how"] = HOW_TO_APPEAL[lang]
    fields["listing"] = ""
    if body.get("kind") == "record" and body.get("places_on"):
        fields["listing"] = (
            f" 该记录将您列入名单 {body['places_on']}。"
            if lang == "zh"
            else f" This record places you on the list {body['places_on']}."
        )
    return templates[lang].format_map(fields)
