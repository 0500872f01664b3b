"""``credo ingest``, ``credo quarantine`` and ``credo audit``."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from credo.cli.common import JsonOpt, console, err_console, fail, open_runtime, print_json
from credo.ledger import audit as ledger_audit
from credo.ledger.readers import ReadError, iter_file
from credo.ledger.services import quarantine_rows
from credo.process.intake import ingest_and_notify as ingest_batch
from credo.process.intake import retry_with_notice

quarantine_app = typer.Typer(help="Rejected input, kept with its reasons.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify the ledger against its Merkle log.", no_args_is_help=True)


def _count_lines(path: Path) -> int | None:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return None
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return None


def ingest(
    file: Annotated[Path, typer.Argument(help="CSV, JSON Lines or Parquet file of records.")],
    agency: Annotated[str, typer.Option(help="Code of the reporting agency.")],
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, jsonl or parquet (default: by suffix).")
    ] = None,
    batch: Annotated[int, typer.Option(help="Records per transaction.", min=1, max=10_000)] = 1000,
    as_json: bool = JsonOpt,
) -> None:
    """Stream a file into the ledger; refused rows go to quarantine with their reasons.

    Exit 0 when the file was read (whatever was refused), 2 when it cannot be read.
    """
    runtime = open_runtime()
    if runtime.catalogs.agency(agency) is None:
        fail(f"--agency: unknown agency {agency!r}")
    if not file.is_file():
        fail(f"{file}: no such file", 2)
    total = _count_lines(file)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    tree_size = 0
    rows = iter_file(file, fmt)
    progress = Progress(
        TextColumn("[bold]ingest[/bold] {task.fields[name]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("accepted {task.fields[a]} · dup {task.fields[d]} · quarantined {task.fields[r]}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=False,
    )
    try:
        with progress:
            task = progress.add_task("ingest", total=total, name=file.name, a=0, d=0, r=0)
            while True:
                chunk = list(islice(rows, batch))
                if not chunk:
                    break
                with runtime.db.begin() as conn:
                    result = ingest_batch(
                        conn,
                        runtime.catalogs,
                        runtime.log,
                        agency,
                        [item for _, item in chunk],
                        source=f"file:{file.name}",
                        lines=[line for line, _ in chunk],
                    )
                for k, v in result.counts().items():
                    counts[k] += v
                tree_size = result.tree_size
                progress.update(
                    task,
                    completed=chunk[-1][0],
                    a=counts["accepted"],
                    d=counts["duplicate"],
                    r=counts["rejected"],
                )
            if total is not None:
                progress.update(task, completed=total)
    except ReadError as exc:
        summary = {"file": str(file), "error": str(exc), **counts}
        if as_json:
            print_json(summary)
        fail(f"{file}: {exc} (batches before it were kept: {counts})", 2)
    summary = {
        "file": str(file),
        "agency": agency,
        **counts,
        "quarantined": counts["rejected"],
        "tree_size": tree_size,
    }
    if as_json:
        print_json(summary)
    else:
        console.print(
            f"{file.name}: [green]{counts['accepted']} accepted[/green], {counts['duplicate']} duplicate, "
            f"[yellow]{counts['rejected']} quarantined[/yellow]; ledger size {tree_size}"
        )


@quarantine_app.command("list")
def quarantine_list(
    agency: Annotated[str | None, typer.Option(help="Only this agency's items.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only items not yet released.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: bool = JsonOpt,
) -> None:
    """Quarantined items, oldest first."""
    runtime = open_runtime()
    with runtime.db.read() as conn:
        rows = quarantine_rows(conn, agency=agency, open_only=open_only, limit=limit)
    if as_json:
        print_json(rows)
        return
    table = Table("id", "agency", "source", "line", "first reason", "released")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["agency"],
            r["source"],
            str(r["line"] or ""),
            r["reasons"][0],
            r["released_as"] or "",
        )
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(
    qid: Annotated[int, typer.Argument(help="Quarantine id.")], as_json: bool = JsonOpt
) -> None:
    """One quarantined item: the raw input and every reason."""
    runtime = open_runtime()
    with runtime.db.read() as conn:
        rows = quarantine_rows(conn, after_id=qid - 1, limit=1)
    if not rows or rows[0]["id"] != qid:
        fail(f"no quarantined item {qid}", 1)
    row = rows[0]
    if as_json:
        print_json(row)
        return
    console.print(f"[bold]#{qid}[/bold] {row['agency']} {row['source']} line {row['line']}")
    console.print(row["raw"])
    for reason in row["reasons"]:
        console.print(f"  - {reason}")


@quarantine_app.command("retry")
def quarantine_retry(
    ids: Annotated[list[int] | None, typer.Argument(help="Ids to retry (default: every open item).")] = None,
    agency: Annotated[str | None, typer.Option(help="Only this agency's items.")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Run open items through the checks again, e.g. after a catalog fix."""
    runtime = open_runtime()
    with runtime.db.begin() as conn:
        counts = retry_with_notice(conn, runtime.catalogs, runtime.log, ids or None, agency=agency)
    if as_json:
        print_json(counts)
    else:
        console.print(f"{counts['released']} released, {counts['still_refused']} still refused")


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint saved earlier: also detects a truncated tail.")
    ] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Recompute every leaf and signed root; exit 1 naming the first bad sequence number."""
    runtime = open_runtime()
    text = None
    if checkpoint is not None:
        try:
            text = checkpoint.read_text()
        except OSError as exc:
            fail(f"--checkpoint: {exc.strerror}: {checkpoint}", 2)
    with runtime.db.read() as conn:
        report = ledger_audit.verify(conn, runtime.log.signer.verifier_key(), text)
    if as_json:
        print_json(report.as_dict())
    elif report.ok:
        console.print(
            f"[green]ok[/green]: {report.size} records, {report.tree_heads} signed tree heads, "
            f"root {report.root.hex()}"
        )
    else:
        console.print(f"[red]FAILED[/red] at seq {report.first_bad_seq}")
        for f in report.findings[:20]:
            console.print(f"  - {f.message}")
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("tree-head")
def audit_tree_head() -> None:
    """Print the newest signed tree head (save it to check later with --checkpoint)."""
    from credo.ledger.log import latest_tree_head

    runtime = open_runtime()
    with runtime.db.read() as conn:
        head = latest_tree_head(conn)
    if head is None:
        fail("the ledger is empty", 1)
    typer.echo(head["checkpoint"], nl=False)
