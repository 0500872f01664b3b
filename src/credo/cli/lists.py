"""``credo lists``, ``credo check`` and ``credo party``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from credo.cli.common import JsonOpt, console, fail, open_runtime, print_json
from credo.ids import IdentifierError, parse_subject_ref
from credo.lists.services import PartyError, build_index, listing_views, register_party
from credo.store.tables import subjects

lists_app = typer.Typer(help="Listings: who is on which list, and why.", no_args_is_help=True)
party_app = typer.Typer(help="Relying parties (airlines, railways, banks, employers).", no_args_is_help=True)


def _subject_number(runtime: object, ref: str) -> tuple[str, int | None]:
    try:
        sid = parse_subject_ref(ref)
    except IdentifierError as exc:
        fail(f"SUBJECT: {exc}", 2)
    with runtime.db.read() as conn:  # type: ignore[attr-defined]
        number = conn.execute(
            select(subjects.c.id).where(subjects.c.kind == sid.kind, subjects.c.identifier == sid.identifier)
        ).scalar()
    return str(sid), number


@lists_app.command("show")
def show(
    subject: Annotated[str, typer.Argument(help="Subject identifier.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Date (default today).")] = None,
    known_at: Annotated[str | None, typer.Option(help="What was known at this UTC instant (ISO).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """A subject's listings: cause, start, enforceable-from, planned end and end."""
    runtime = open_runtime()
    text, number = _subject_number(runtime, subject)
    day = date.fromisoformat(as_of) if as_of else datetime.now(UTC).astimezone(runtime.zone).date()
    known = datetime.fromisoformat(known_at).replace(tzinfo=UTC) if known_at else None
    views = []
    if number is not None:
        with runtime.db.read() as conn:
            views = listing_views(conn, runtime.catalogs, subject_ids=[number], known_at=known)
    rows = [{**v.as_dict(), "in_force": v.in_force(day), "enforceable": v.enforceable(day)} for v in views]
    if as_json:
        print_json({"subject": text, "as_of": day.isoformat(), "listings": rows})
        return
    table = Table(
        "list",
        "cause",
        "started",
        "enforceable from",
        "planned end",
        "ended",
        f"on {day}",
        title=f"listings of {text}",
    )
    for r in rows:
        cause = f"record {r['cause_seq']}" if r["cause"] == "rule" else f"grade in {r['scheme']}"
        state = (
            "enforced" if r["enforceable"] else ("in force, not yet enforceable" if r["in_force"] else "-")
        )
        table.add_row(
            r["list_code"],
            cause,
            r["started_on"],
            r["enforceable_from"] or "no notice",
            r["planned_end_on"],
            r["ended_on"] or "",
            state,
        )
    console.print(table)


def check(
    subject: Annotated[str, typer.Argument(help="Subject identifier.")],
    measure: Annotated[str, typer.Argument(help="Measure, e.g. air-travel.")],
    as_json: bool = JsonOpt,
) -> None:
    """What a relying party would be told today (for operators; not logged as a party's check)."""
    runtime = open_runtime()
    if runtime.catalogs.measure(measure) is None:
        fail(f"MEASURE: unknown measure {measure!r}", 2)
    text, _ = _subject_number(runtime, subject)
    with runtime.db.read() as conn:
        index = build_index(conn, runtime.catalogs, datetime.now(UTC).astimezone(runtime.zone).date())
    decision = index.decide(measure, text)
    if as_json:
        print_json({"subject": text, "measure": measure, "decision": decision})
    else:
        console.print(f"{text} {measure}: [bold]{decision}[/bold]")


@party_app.command("add")
def party_add(
    code: Annotated[str, typer.Argument(help="Short code, e.g. CA for Air China.")],
    name: Annotated[str, typer.Option(help="Name of the relying party.")],
    sector: Annotated[str, typer.Option(help="Sector, e.g. aviation, rail, banking.")],
    purpose: Annotated[str, typer.Option(help="What it asks for and on what basis.")],
    measure: Annotated[list[str], typer.Option(help="A measure it may ask about (repeat).")],
) -> None:
    """Register a relying party and the measures it may ask about."""
    runtime = open_runtime()
    try:
        with runtime.db.begin() as conn:
            register_party(
                conn, runtime.catalogs, code, name=name, sector=sector, purpose=purpose, measures=measure
            )
    except PartyError as exc:
        fail(str(exc), 2)
    console.print(f"registered {code}: {', '.join(sorted(set(measure)))}")
