"""``credo whatif``: the ledger under a draft catalog against the catalog in force.

Register in ``credo.cli``::

    app.command("whatif")(whatif.whatif)

Exit codes: 0 done; 2 the draft was refused or the command was misused.
The domain is :mod:`credo.lists.whatif`; the HTML report is
:mod:`credo.web.whatif_report`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from credo.cli.common import JsonOpt, console, err_console, fail, open_runtime, print_json
from credo.cli.scoring import _date, spark_session
from credo.lists.whatif import DraftError, WhatIf, apply_draft, run_whatif, write_changes
from credo.scoring.batch import DuckDBOptions


@contextmanager
def _steps(quiet: bool) -> Iterator[Any]:
    """A Rich progress line per long step, on stderr; the previous one is ticked off."""
    progress = Progress(
        SpinnerColumn(finished_text="[green]✓[/green]"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        disable=quiet,
    )
    current: list[TaskID] = []

    def finish() -> None:
        for task in current:
            progress.update(task, total=1, completed=1)

    def step(name: str) -> None:
        finish()
        current[:] = [progress.add_task(name, total=None)]

    with progress:
        yield step
        finish()


def whatif(
    catalog: Annotated[Path, typer.Option("--catalog", help="The draft catalog (TOML). Its jurisdiction "
                                          "code picks the catalog in force it replaces.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Valid date t (YYYY-MM-DD); default today "
                                              "in each scheme's timezone.")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (embedded) or spark (local mode).")] = "duckdb",
    out: Annotated[Path | None, typer.Option(help="Write the per-subject differences here (Parquet): one "
                                             "row per subject and scheme whose score, grade or lists "
                                             "differ.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write a self-contained HTML report with charts.")] = None,
    memory_limit: Annotated[str | None, typer.Option("--memory-limit", help="e.g. 4GB: DuckDB spills "
                                                     "to disk beyond it.")] = None,
    threads: Annotated[int | None, typer.Option(help="Worker threads (default: every core).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """Score the ledger under a draft catalog and under the one in force, and report the difference:
    grade transitions, list entries and exits, measures, per scheme and subject kind, and disparities."""
    if engine not in ("duckdb", "spark"):
        fail(f"--engine: must be duckdb or spark, got {engine!r}")
    if out is not None and out.suffix != ".parquet":
        fail(f"--out: must be a .parquet path, got {out}")
    t = _date(as_of, "--as-of")
    try:
        text = catalog.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"--catalog: cannot read {catalog}: {exc}")
    runtime = open_runtime()
    try:
        draft = apply_draft(runtime.catalogs, text, str(catalog))
    except DraftError as exc:
        for error in exc.errors:
            err_console.print(f"[red]refused:[/red] {error}", highlight=False)
        fail(f"--catalog: the draft {catalog} was refused ({len(exc.errors)} error(s))")
    started = time.perf_counter()
    sessions = spark_session("credo-whatif", threads, memory_limit) if engine == "spark" else nullcontext()
    with _steps(as_json) as step, sessions as spark, runtime.db.read() as conn:
        result = run_whatif(
            conn, runtime.catalogs, draft, as_of=t, engine="spark" if engine == "spark" else "duckdb",
            spark=spark, options=DuckDBOptions(memory_limit=memory_limit, threads=threads), step=step,
        )
        step("summing up")
        summary = result.summary()
        if out is not None:
            step(f"writing {out}")
            summary["out"] = {"path": str(out), "rows": write_changes(result, out)}
        if html is not None:
            step(f"writing {html}")
            from credo.web.whatif_report import render_report

            html.parent.mkdir(parents=True, exist_ok=True)
            html.write_text(render_report(summary), encoding="utf-8")
            summary["html"] = str(html)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    if as_json:
        print_json(summary)
        return
    _print(result, summary)


def _print(result: WhatIf, s: dict[str, Any]) -> None:
    console.print(
        f"Draft [bold]{s['draft']['file']}[/bold] replaces [bold]{s['draft']['jurisdiction']}[/bold]; "
        f"{s['subjects']} subjects compared on {', '.join(s['as_of'])} ({s['engine']}): "
        f"[bold]{s['grade_changed']} subjects change grade[/bold], {s['worsened']} worse off, "
        f"{s['improved']} better off.",
        highlight=False,
    )
    grades = [g for g in result.grade_order() if g in s["transitions"]
              or any(g in row for row in s["transitions"].values())]
    matrix = Table("in force \\ draft", *grades, title="Grade transitions (subject, scheme)",
                   title_justify="left")
    for before in grades:
        row = s["transitions"].get(before, {})
        matrix.add_row(before, *(
            f"[bold]{row.get(a, 0)}[/bold]" if a != before and row.get(a) else str(row.get(a, 0))
            for a in grades
        ))
    console.print(matrix)
    lists = Table("list", "before", "after", "entries", "exits", title="Lists", title_justify="left")
    for code, v in s["lists"].items():
        lists.add_row(code, *(str(v[k]) for k in ("before", "after", "entries", "exits")))
    console.print(lists)
    if s["measures"]:
        measures = Table("measure", "gained", "lost", title="Measures", title_justify="left")
        for code, v in s["measures"].items():
            measures.add_row(code, str(v["gained"]), str(v["lost"]))
        console.print(measures)
    groups = Table("", "subjects", "grade changed", "worse off", "better off",
                   title="Per scheme and subject kind", title_justify="left")
    for key in ("by_scheme", "by_kind"):
        for code, v in s[key].items():
            groups.add_row(code, *(str(v[k]) for k in ("subjects", "grade_changed", "worsened", "improved")))
    console.print(groups)
    flags = s["disparity"]["flags"]
    if flags:
        console.print("[bold red]Disparity:[/bold red] the change falls on some groups much more than others")
        for flag in flags:
            console.print(f"  {flag['message']}", highlight=False)
    else:
        console.print(f"No disparity flagged ({s['disparity']['rule']['text']}).", highlight=False)
    for key, label in (("out", "differences"), ("html", "report")):
        if key in s:
            where = s[key]["path"] if isinstance(s[key], dict) else s[key]
            console.print(f"{label} written to {where}", highlight=False)
