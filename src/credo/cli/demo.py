"""``credo demo``: a registry full of life, then the server.

A fresh SQLite registry with the shipped catalogs; relying parties, a
reviewer, an agency clerk and an auditor; a simulated population sent
through the normal ingest path; notices; appeals filed and decided through
the appeals workflow; scores and listings computed; then the server, with
sign-in links for one subject of each interesting kind.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
import uvicorn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from credo.access.services import create_token
from credo.api.app import create_app
from credo.cli.common import console, open_runtime
from credo.ids import make_ric, parse_subject_ref
from credo.ledger.services import ingest
from credo.ledger.subjects import subject_number
from credo.lists.refresh import refresh
from credo.lists.services import listing_views, register_party
from credo.process import appeals, notices
from credo.runtime import Runtime, bootstrap
from credo.simulate.load import ingest_records
from credo.simulate.population import Params, generate
from credo.store.tables import appeals as appeals_table
from credo.store.tables import listings, records

PARTIES = (
    (
        "CA",
        "Air China",
        "aviation",
        "ticket sales under the 2016 joint punishment memorandum",
        ["air-travel"],
    ),
    (
        "CR",
        "China Railway 12306",
        "rail",
        "G-train ticket sales under the joint punishment memorandum",
        ["high-speed-rail"],
    ),
    ("ICBC", "Industrial and Commercial Bank of China", "banking", "loan underwriting", ["state-bank-loan"]),
    (
        "CSRC-HR",
        "Securities firm (hiring)",
        "finance",
        "hiring into the financial sector (2016 directive)",
        ["finance-employment"],
    ),
    (
        "HZ-RENT",
        "Hangzhou public rental office",
        "housing",
        "deposit waivers and fast-track approvals",
        ["deposit-waiver", "fast-track-approval"],
    ),
)


def _step(n: int, text: str) -> float:
    console.print(f"[bold cyan]{n}/7[/bold cyan] {text}")
    return time.perf_counter()


def _done(started: float, text: str = "") -> None:
    console.print(
        f"      [green]done[/green] in {time.perf_counter() - started:.1f} s {text}", highlight=False
    )


def _at(day: date, zone: str, hour: int = 10) -> datetime:
    return datetime.combine(day, dtime(hour), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _appeals(runtime: Runtime, table: Any, zone: str) -> dict[str, int]:
    """File and decide the simulated appeals through the appeals workflow."""
    counts = {"filed": 0, "decided": 0, "open": 0, "refused": 0}
    reviewer = appeals.Reviewer("demo reviewer", "CN")
    with runtime.db.begin() as conn:
        for row in table.to_pylist():
            seq = conn.execute(
                select(records.c.seq, records.c.subject_id).where(
                    records.c.agency == row["agency"], records.c.agency_ref == row["agency_ref"]
                )
            ).first()
            if seq is None:
                continue
            try:
                appeal_id = appeals.file_appeal(
                    conn,
                    runtime.catalogs,
                    seq.subject_id,
                    record_seq=seq.seq,
                    grounds="The record is wrong (simulated appeal).",
                    now=_at(row["filed_on"], zone),
                )
            except appeals.AppealError:
                counts["refused"] += 1
                continue
            counts["filed"] += 1
            if row["outcome"] in ("upheld", "overturned") and row["decided_on"] is not None:
                appeals.decide(
                    conn,
                    runtime.catalogs,
                    runtime.log,
                    reviewer,
                    appeal_id,
                    outcome=row["outcome"],
                    reasons=f"Simulated review: {row['outcome']}.",
                    now=_at(row["decided_on"], zone, 15),
                )
                counts["decided"] += 1
            else:
                counts["open"] += 1
    return counts


def _pick(runtime: Runtime, today: date) -> dict[str, int | None]:
    """One subject of each interesting kind, if the population has one."""
    with runtime.db.read() as conn:
        views = listing_views(conn, runtime.catalogs)
        listed = next(
            (v.subject_id for v in views if v.list_code == "CN.DEFAULTER" and v.enforceable(today)), None
        )
        red = next(
            # A redlisting is granted once its grace has passed, like any listing: show one in force.
            (v.subject_id for v in views if v.list_code == "CN.REDLIST" and v.in_force(today)), None
        )
        open_appeal = conn.execute(
            select(appeals_table.c.subject_id)
            .where(appeals_table.c.decided_at.is_(None))
            .order_by(appeals_table.c.deadline_at.desc())
            .limit(1)
        ).scalar()
    return {"listed": listed, "appealing": open_appeal, "redlisted": red}


def demo(
    db: Annotated[Path, typer.Option(help="SQLite file for the demo registry (recreated).")] = Path(
        "credo-demo.db"
    ),
    subjects: Annotated[int, typer.Option(help="Simulated subjects.", min=10)] = 20_000,
    years: Annotated[int, typer.Option(help="Years of simulated records.", min=1, max=20)] = 3,
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 2014,
    port: Annotated[int | None, typer.Option(help="Port to serve on.")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Set up, print the links, and exit.")] = False,
) -> None:
    """A fresh SQLite registry with a simulated population, then the server with sign-in links."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.environ["CREDO_DATABASE_URL"] = f"sqlite:///{db}"
    runtime = open_runtime()
    zone = str(runtime.settings.timezone)
    now = datetime.now(UTC)
    today = now.astimezone(ZoneInfo(zone)).date()

    t = _step(1, f"creating registry {db}: migrations and the shipped catalogs")
    bootstrap(runtime)
    _done(t, "(" + ", ".join(j.code for j in runtime.catalogs.jurisdictions()) + ")")

    t = _step(2, "registering relying parties and staff")
    with runtime.db.begin() as conn:
        for code, name, sector, purpose, measures in PARTIES:
            register_party(
                conn, runtime.catalogs, code, name=name, sector=sector, purpose=purpose, measures=measures
            )
        staff = {
            "reviewer (CN)": create_token(conn, "reviewer", jurisdiction="CN", label="Reviewer Zhou"),
            "agency CN-ZJ-HZ-TP (Hangzhou traffic police)": create_token(
                conn, "agency", agency="CN-ZJ-HZ-TP", label="Clerk Chen"
            ),
            "auditor": create_token(conn, "auditor", label="Auditor Zhao"),
            "relying party CA (Air China)": create_token(
                conn, "relying_party", relying_party="CA", label="CA"
            ),
        }
    _done(t, f"({len(PARTIES)} parties)")

    t = _step(3, f"simulating {subjects:,} subjects over {years} years (seed {seed})")
    population = generate(runtime.catalogs, Params(subjects=subjects, years=years, seed=seed, end=today))
    _done(t, f"({population.records.num_rows:,} records, {population.appeals.num_rows:,} appeal intents)")

    t = _step(4, "ingesting the records through the ledger (checks, quarantine, Merkle log)")
    with Progress(
        TextColumn("      "), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("ingest", total=population.records.num_rows)
        report = ingest_records(
            runtime.db,
            runtime.catalogs,
            runtime.log,
            population.records,
            now=now,
            progress=lambda _agency, n, _result: bar.advance(task, n),
        )
    # One model citizen of Hangzhou, so the redlist has someone on it: three
    # blood donations and five days of volunteering this year reach grade AAA.
    donor = make_ric("330106", date(1988, 8, 8), 21)
    acts = [("CN-ZJ-HZ-HC", "CN-ZJ-HZ.BLOOD-DONATION", d) for d in (20, 140, 260)] + [
        ("CN-ZJ-HZ-CA", "CN-ZJ-HZ.VOLUNTEER-SERVICE", d) for d in (10, 60, 110, 160, 210)
    ]
    with runtime.db.begin() as conn:
        for i, (agency, rule, days_ago) in enumerate(acts):
            ingest(
                conn,
                runtime.catalogs,
                runtime.log,
                agency,
                [
                    {
                        "agency_ref": f"DEMO-DONOR-{i}",
                        "subject": donor,
                        "rule": rule,
                        "occurred_on": (today - timedelta(days=days_ago)).isoformat(),
                        "evidence": "certificate",
                    }
                ],
                source="demo",
                now=now,
            )
    _done(t, f"({report.accepted:,} accepted, {report.rejected:,} quarantined)")

    t = _step(5, "notices for adverse records; appeals filed and decided")
    with runtime.db.begin() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                select(
                    records.c.seq,
                    records.c.kind,
                    records.c.subject_id,
                    records.c.rule,
                    records.c.rule_version,
                    records.c.jurisdiction,
                    records.c.occurred_on,
                    records.c.target_seq,
                )
            )
        ]
        made = notices.for_records(conn, runtime.catalogs, rows, now)
    counts = _appeals(runtime, population.appeals, zone)
    _done(t, f"({made:,} notices; appeals {counts})")

    t = _step(6, "scores and listings (the daily job)")
    with runtime.db.begin() as conn:
        plan = refresh(conn, runtime.catalogs, now)
        listed = conn.execute(select(func.count()).select_from(listings)).scalar_one()
    _done(t, f"({len(plan.open):,} listings, {len(plan.warn):,} warnings; {listed:,} on file)")

    t = _step(7, "sign-in links")
    picks = _pick(runtime, today)
    base = f"http://{runtime.settings.host}:{port or runtime.settings.port}"
    from credo.web.auth import create_login_link

    with runtime.db.begin() as conn:
        clean = subject_number(conn, parse_subject_ref("11010519491231002X"), create=True)
        people: dict[str, int | None] = {
            **{f"subject: {k}": v for k, v in picks.items()},
            "subject: clean": clean,
        }
        links: dict[str, str] = {}
        for who, sid in people.items():
            if sid is None:
                links[who] = "(none in this population)"
                continue
            token = create_token(conn, "subject", subject_id=sid, label=who)
            links[who] = f"{base}/login/link/{create_login_link(conn, token, ttl=timedelta(days=7))}"
        for who, token in staff.items():
            links[who] = f"{base}/login/link/{create_login_link(conn, token, ttl=timedelta(days=7))}"
            links[f"{who} API token"] = token
    _done(t)
    for who, link in links.items():
        console.print(f"  {who:<48} {link}", highlight=False, soft_wrap=True)
    console.print(
        f"\nweb: {base}/   API docs: {base}/docs   public lookup: {base}/public   health: {base}/healthz"
    )
    if no_serve:
        return
    uvicorn.run(
        create_app(runtime),
        host=str(runtime.settings.host),
        port=port or int(runtime.settings.port),
        log_level="warning",
    )
