"""``credo appeal``, ``credo notices`` and ``credo tick``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from credo.cli.common import JsonOpt, console, fail, open_runtime, print_json
from credo.lists.refresh import refresh
from credo.process import appeals as appeal_service
from credo.process.notices import render
from credo.process.outbox import OutboxConfig, deliver_due
from credo.process.scheduler import Scheduler
from credo.store.tables import appeals, notices

appeal_app = typer.Typer(help="Appeals and their decisions.", no_args_is_help=True)
notices_app = typer.Typer(help="Notices to subjects and their delivery.", no_args_is_help=True)


@appeal_app.command("list")
def appeal_list(
    jurisdiction: Annotated[str, typer.Option(help="Reviewer's jurisdiction.")] = "CN",
    as_json: bool = JsonOpt,
) -> None:
    """Open appeals, soonest deadline first, with days left."""
    runtime = open_runtime()
    with runtime.db.read() as conn:
        rows = appeal_service.queue(
            conn, runtime.catalogs, appeal_service.Reviewer("cli", jurisdiction), datetime.now(UTC)
        )
    if as_json:
        print_json(rows)
        return
    table = Table("appeal", "record", "rule", "agency", "deadline", "days left", title="open appeals")
    for r in rows:
        table.add_row(
            str(r["appeal"]),
            str(r["record_seq"]),
            r["rule"],
            r["agency"],
            r["deadline_at"][:16],
            f"[red]{r['days_left']}[/red]" if r["overdue"] else str(r["days_left"]),
        )
    console.print(table)


@appeal_app.command("show")
def appeal_show(appeal_id: int, as_json: bool = JsonOpt) -> None:
    """One appeal with its grounds and decision."""
    runtime = open_runtime()
    with runtime.db.read() as conn:
        row = conn.execute(select(appeals).where(appeals.c.id == appeal_id)).first()
    if row is None:
        fail(f"no appeal {appeal_id}", 1)
    data = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row._mapping.items()}
    if as_json:
        print_json(data)
    else:
        for k, v in data.items():
            console.print(f"[bold]{k}[/bold]: {v}")


@appeal_app.command("decide")
def appeal_decide(
    appeal_id: int,
    outcome: Annotated[str, typer.Option(help="upheld, overturned or amended.")],
    reasons: Annotated[str, typer.Option(help="Written reasons (shown to the subject).")],
    reviewer: Annotated[str, typer.Option(help="Who decides.")],
    jurisdiction: Annotated[str, typer.Option(help="The reviewer's jurisdiction.")],
    agency: Annotated[str | None, typer.Option(help="The reviewer's own agency, if any.")] = None,
    correction: Annotated[
        str | None,
        typer.Option(help='amended: JSON of corrected fields, e.g. \'{"occurred_on": "2026-02-21"}\''),
    ] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Decide an appeal (exit 1 when refused, with the reason)."""
    runtime = open_runtime()
    now = datetime.now(UTC)
    try:
        with runtime.db.begin() as conn:
            decision = appeal_service.decide(
                conn,
                runtime.catalogs,
                runtime.log,
                appeal_service.Reviewer(reviewer, jurisdiction, agency),
                appeal_id,
                outcome=outcome,
                reasons=reasons,
                now=now,
                correction=json.loads(correction) if correction else None,
            )
            refresh(conn, runtime.catalogs, now, [decision["subject_id"]])
    except appeal_service.AppealError as exc:
        fail(str(exc), 1)
    if as_json:
        print_json(decision)
    else:
        console.print(f"appeal {appeal_id}: {outcome}")


@notices_app.command("list")
def notices_list(
    subject_id: Annotated[int, typer.Option(help="Subject number.")],
    lang: Annotated[str, typer.Option(help="en or zh.")] = "en",
    as_json: bool = JsonOpt,
) -> None:
    """A subject's notices with their text."""
    runtime = open_runtime()
    with runtime.db.read() as conn:
        rows = conn.execute(
            select(notices).where(notices.c.subject_id == subject_id).order_by(notices.c.id)
        ).all()
    items = [
        {"id": n.id, "kind": n.kind, "issued_at": str(n.issued_at), "text": render(json.loads(n.body), lang)}
        for n in rows
    ]
    if as_json:
        print_json(items)
        return
    for n in items:
        console.print(f"[bold]#{n['id']} {n['kind']}[/bold] {n['issued_at'][:19]}\n{n['text']}\n")


@notices_app.command("deliver")
def notices_deliver(
    smtp_host: Annotated[str, typer.Option(help="SMTP server.")] = "127.0.0.1",
    smtp_port: Annotated[int, typer.Option(help="SMTP port.")] = 25,
    as_json: bool = JsonOpt,
) -> None:
    """Send every due notice (email, webhook); failures are retried later."""
    runtime = open_runtime()
    with runtime.db.begin() as conn:
        counts = deliver_due(conn, OutboxConfig(smtp_host=smtp_host, smtp_port=smtp_port))
    if as_json:
        print_json(counts)
    else:
        console.print(counts)


def tick(as_json: bool = JsonOpt) -> None:
    """Run the clock once: overdue appeals, the daily listing refresh, due notices."""
    runtime = open_runtime()
    counts = Scheduler(runtime.db, runtime.catalogs, str(runtime.settings.timezone)).tick()
    if as_json:
        print_json(counts)
    else:
        console.print(counts)


def lists_refresh(as_json: bool = JsonOpt) -> None:
    """Bring every listing in line with today's scores (the daily job)."""
    runtime = open_runtime()
    now = datetime.now(UTC)
    with runtime.db.begin() as conn:
        plan = refresh(conn, runtime.catalogs, now)
    counts = {"listed": len(plan.open), "delisted": len(plan.end), "warned": len(plan.warn)}
    if as_json:
        print_json(counts)
    else:
        console.print(counts)
