"""``credo simulate population``: a synthetic population as Parquet or into the ledger."""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import nullcontext
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from credo.cli.common import JsonOpt, console, err_console, fail, open_runtime, print_json
from credo.ledger.services import BatchResult, todays
from credo.simulate.load import ingest_records, write_parquet
from credo.simulate.population import Params, generate

app = typer.Typer(
    help="Synthetic populations for tests, benchmarks and what-if studies.", no_args_is_help=True
)


@app.callback()
def simulate() -> None:
    """Synthetic populations for tests, benchmarks and what-if studies."""


@app.command("population")
def population(
    subjects: Annotated[int, typer.Option(help="Number of subjects, persons and organisations.", min=1)],
    years: Annotated[int, typer.Option(help="Years of records, ending at --end.", min=1, max=60)] = 5,
    seed: Annotated[int, typer.Option(help="The same seed gives the same population.", min=0)] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Write Parquet here: subjects.parquet, records/agency=*/, appeals.parquet."),
    ] = None,
    into_db: Annotated[
        bool,
        typer.Option(
            "--into-db", help="Ingest the records into the configured database (after `credo db upgrade`)."
        ),
    ] = False,
    end: Annotated[
        str | None, typer.Option(help="Last day of the records, YYYY-MM-DD (default: today).")
    ] = None,
    org_share: Annotated[
        float, typer.Option(help="Share of organisations among the subjects.", min=0.0, max=1.0)
    ] = 0.15,
    batch: Annotated[
        int, typer.Option(help="Records per transaction with --into-db.", min=1, max=10_000)
    ] = 1000,
    as_json: bool = JsonOpt,
) -> None:
    """Generate persons, organisations and their records from the shipped agencies.

    Every record passes the ledger's checks; retractions and restorations
    follow their records; appeal intents go to appeals.parquet (--out only:
    there is no appeals workflow yet). Rates: see credo.simulate.population.
    """
    if out is None and not into_db:
        fail("say where the population goes: --out DIR, --into-db or both")
    runtime = open_runtime()
    today = min(todays(runtime.catalogs, datetime.now(UTC)).values())
    if end is None:
        last = today
    else:
        try:
            last = date.fromisoformat(end)
        except ValueError:
            fail(f"--end: not a date (YYYY-MM-DD): {end!r}")
        if last > today:
            fail(f"--end: {last} is in the future (today is {today}); records cannot be")
    try:
        params = Params(subjects=subjects, years=years, seed=seed, end=last, org_share=org_share)
    except ValueError as exc:
        fail(str(exc))

    started = time.perf_counter()
    with nullcontext() if as_json else err_console.status("generating", spinner="dots"):
        pop = generate(runtime.catalogs, params)
    timings: dict[str, float] = {"generate_s": round(time.perf_counter() - started, 3)}
    summary: dict[str, object] = {"params": _params(params), "prefix": pop.prefix, "counts": dict(pop.counts)}

    if out is not None:
        started = time.perf_counter()
        with nullcontext() if as_json else err_console.status(f"writing {out}", spinner="dots"):
            files = write_parquet(pop, out)
        timings["write_s"] = round(time.perf_counter() - started, 3)
        summary["out"] = str(out)
        summary["files"] = len(files)

    rejected = 0
    if into_db:
        started = time.perf_counter()
        progress = Progress(
            TextColumn("[bold]simulate[/bold] {task.fields[name]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("accepted {task.fields[a]} · dup {task.fields[d]} · quarantined {task.fields[r]}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=as_json,
            transient=False,
        )
        seen = {"accepted": 0, "duplicate": 0, "rejected": 0}
        with progress:
            task = progress.add_task("ingest", total=pop.records.num_rows, name="", a=0, d=0, r=0)

            def advance(agency: str, rows: int, result: BatchResult) -> None:
                for k, v in result.counts().items():
                    seen[k] += v
                progress.update(
                    task,
                    advance=rows,
                    name=agency,
                    a=seen["accepted"],
                    d=seen["duplicate"],
                    r=seen["rejected"],
                )

            report = ingest_records(
                runtime.db,
                runtime.catalogs,
                runtime.log,
                pop.records,
                batch=batch,
                source=f"simulate:{pop.prefix.rstrip('-')}",
                progress=advance,
            )
        timings["ingest_s"] = round(time.perf_counter() - started, 3)
        summary["ingest"] = report.as_dict()
        rejected = report.rejected
        if pop.appeals.num_rows and out is None:
            summary["note"] = "appeal intents are only written with --out (no appeals workflow yet)"
    summary["timings"] = timings

    if as_json:
        print_json(summary)
    else:
        _print(pop.prefix, pop.counts, summary, timings)
    if rejected:
        err_console.print("[red]some simulated records were refused[/red]: see `credo quarantine list`")
        raise typer.Exit(1)


def _params(params: Params) -> dict[str, object]:
    return {
        "subjects": params.subjects,
        "years": params.years,
        "seed": params.seed,
        "start": params.start.isoformat(),
        "end": params.end.isoformat(),
        "org_share": params.org_share,
    }


def _print(
    prefix: str, counts: Mapping[str, int], summary: Mapping[str, object], timings: Mapping[str, float]
) -> None:
    table = Table("", "count", title=f"population {prefix}", title_justify="left")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
    if "out" in summary:
        console.print(f"wrote {summary['files']} Parquet files to {summary['out']}")
    ingest = summary.get("ingest")
    if isinstance(ingest, dict):
        console.print(
            f"ingested: [green]{ingest['accepted']} accepted[/green], {ingest['duplicate']} duplicate, "
            f"[yellow]{ingest['rejected']} quarantined[/yellow]; ledger size {ingest['tree_size']}"
        )
    if "note" in summary:
        console.print(str(summary["note"]))
    console.print(" · ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in timings.items()))
