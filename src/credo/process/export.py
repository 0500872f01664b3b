"""The subject's whole file, as JSON and as a PDF a person can read (GDPR Art. 15).

Everything credo holds about one subject: every record with its status in
each scheme that judges it, every score with its explanation and forecast,
listings, notices (with their text), appeals, rectification requests, and
every check a relying party made (who, when, purpose, decision).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdf import FPDF
from sqlalchemy import Connection, select

from credo.catalog.registry import Registry
from credo.lists.checklog import checks_about, subject_checks
from credo.lists.services import listing_views
from credo.process.appeals import appeals_of
from credo.process.notices import render
from credo.process.rectification import requests_of
from credo.scoring.online import default_schemes, score_subject
from credo.store.db import Database
from credo.store.tables import notices, records, subjects

if TYPE_CHECKING:
    from credo.scoring.rank import RankCache

# Fonts that can write Chinese, in order of preference; without one the PDF
# is written in English only (the JSON always has both languages).
CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
LATIN_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def _iso(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def subject_file(
    conn: Connection,
    catalogs: Registry,
    subject_id: int,
    now: datetime | None = None,
    *,
    ranks: RankCache | None = None,
    check_log: Database | None = None,
) -> dict[str, Any]:
    """Everything credo holds about one subject; their checks are read from ``check_log``
    (the check log's own database, ``Runtime.check_log_db``) when it is given, else ``conn``."""
    now = now or datetime.now(UTC)
    who = conn.execute(select(subjects).where(subjects.c.id == subject_id)).one()
    subject = f"{who.kind}:{who.identifier}"
    open_appeals = {a["record_seq"] for a in appeals_of(conn, subject_id) if a["decided_at"] is None}
    ledger = [
        {k: _iso(v) for k, v in r._mapping.items() if k not in ("content_hash", "leaf_hash")}
        | {"contested": r.seq in open_appeals}
        for r in conn.execute(
            select(records).where(records.c.subject_id == subject_id).order_by(records.c.seq)
        )
    ]
    scores = [
        score_subject(conn, catalogs, subject_id, scheme, known_at=now, ranks=ranks).as_dict()
        for scheme in default_schemes(conn, catalogs, subject_id)
    ]
    notice_rows = [
        {
            "id": n.id,
            "kind": n.kind,
            "issued_at": _iso(n.issued_at),
            "body": json.loads(n.body),
            "text_en": render(json.loads(n.body), "en"),
            "text_zh": render(json.loads(n.body), "zh"),
        }
        for n in conn.execute(
            select(notices).where(notices.c.subject_id == subject_id).order_by(notices.c.id)
        )
    ]
    if check_log is None:
        checks = checks_about(conn, subject, newest_first=False)
    else:
        checks = subject_checks(check_log, subject, newest_first=False)
    check_rows = [{k: _iso(v) for k, v in c.items()} for c in checks]
    return {
        "subject": subject,
        "generated_at": now.isoformat(),
        "catalog_digest": catalogs.digest,
        "records": ledger,
        "scores": scores,
        "listings": [v.as_dict() for v in listing_views(conn, catalogs, subject_ids=[subject_id])],
        "notices": notice_rows,
        "appeals": appeals_of(conn, subject_id),
        "rectification_requests": requests_of(conn, subject_id),
        "checks": check_rows,
    }


def _font(pdf: FPDF) -> str:
    for path in CJK_FONTS:
        if path.exists():
            pdf.add_font("cjk", "", str(path))
            return "zh"
    if LATIN_FONT.exists():
        pdf.add_font("cjk", "", str(LATIN_FONT))
    return "en"


def subject_file_pdf(data: dict[str, Any]) -> bytes:
    """A readable PDF of :func:`subject_file` (Chinese and English when a CJK font is installed)."""
    pdf = FPDF()
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    lang = _font(pdf)
    family = "cjk" if "cjk" in pdf.fonts else "helvetica"

    def heading(text: str) -> None:
        pdf.set_font(family, size=14)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, size=9)

    def line(text: str) -> None:
        safe = text if family == "cjk" else text.encode("latin-1", "replace").decode("latin-1")
        pdf.multi_cell(0, 5, safe, new_x="LMARGIN", new_y="NEXT")

    heading(f"Credit file of {data['subject']}" + (" / 信用档案" if lang == "zh" else ""))
    line(f"Generated {data['generated_at']} - catalogs {data['catalog_digest'][:16]}")
    for score in data["scores"]:
        heading(f"Score in {score['scheme']}: {score['score']} (grade {score['grade']})")
        for r in score["records"]:
            line(f"record {r['seq']} {r['rule']} on {r['occurred_on']}: {r['points']:+d} -> {r['reason']}")
        for change in score.get("forecast", []):
            line(f"forecast: {change.get('sentence', change)}")
    heading("Records" + (" / 记录" if lang == "zh" else ""))
    for r in data["records"]:
        mark = " [contested]" if r["contested"] else ""
        line(f"{r['seq']} {r['kind']} {r['rule']} {r['occurred_on']} by {r['agency']}{mark}")
    heading("Listings" + (" / 名单" if lang == "zh" else ""))
    for v in data["listings"]:
        line(
            f"{v['list_code']} from {v['started_on']}, enforceable from {v['enforceable_from']}, "
            f"planned end {v['planned_end_on']}, ended {v['ended_on'] or '-'}"
        )
    heading("Notices" + (" / 通知" if lang == "zh" else ""))
    for n in data["notices"]:
        line(f"{n['issued_at'][:10]} {n['text_en']}")
        if lang == "zh":
            line(n["text_zh"])
    heading("Appeals" + (" / 申诉" if lang == "zh" else ""))
    for a in data["appeals"]:
        line(
            f"appeal {a['id']} on record {a['record_seq']}: {a['outcome'] or 'open'} "
            f"(deadline {a['deadline_at']})"
        )
    heading("Who checked me" + (" / 查询记录" if lang == "zh" else ""))
    for c in data["checks"]:
        line(
            f"{c['checked_at'][:19]} {c['party']} asked about {c['measure']} "
            f"({c['purpose']}): {c['decision']}"
        )
    return bytes(pdf.output())
