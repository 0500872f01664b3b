"""``credo catalog``: validate catalog files, show a jurisdiction's effective rules."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from credo.catalog.registry import load_catalogs
from credo.cli.common import JsonOpt, console, fail, print_json
from credo.settings import load_settings

app = typer.Typer(help="Rule catalogs.", no_args_is_help=True)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Catalog files or folders of *.toml.")],
    as_json: bool = JsonOpt,
) -> None:
    """Check catalogs; exit 1 listing every error (file, rule, field, ground)."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        fail(f"{missing[0]}: no such file or folder", 2)
    registry, errors = load_catalogs(paths)
    if as_json:
        print_json(
            {
                "ok": not errors,
                "jurisdictions": [] if registry is None else [j.code for j in registry.jurisdictions()],
                "errors": [
                    {"file": e.file, "location": e.location, "message": e.message, "ground": e.ground}
                    for e in errors
                ],
            }
        )
    elif errors:
        for e in errors:
            console.print(f"[red]{e}[/red]", highlight=False)
        console.print(f"{len(errors)} error(s)")
    else:
        assert registry is not None
        codes = [j.code for j in registry.jurisdictions()]
        rules = sum(len(registry.rule_versions(r.code)) for f in registry.files() for r in f.rules)
        console.print(
            f"[green]ok[/green]: {len(codes)} jurisdictions ({', '.join(codes)}), {rules} rule versions"
        )
    if errors:
        raise typer.Exit(1)


@app.command()
def show(
    code: Annotated[str, typer.Argument(help="Jurisdiction code, e.g. CN-ZJ-YW.")],
    on: Annotated[str | None, typer.Option(help="Rules in force on this date (default today).")] = None,
    as_json: bool = JsonOpt,
) -> None:
    """The effective policy after inheritance, and the rules in force."""
    registry, errors = load_catalogs([load_settings().catalog_dir])
    if registry is None:
        fail("; ".join(str(e) for e in errors[:5]), 1)
    if registry.jurisdiction(code) is None:
        fail(
            f"unknown jurisdiction {code!r} (known: {', '.join(j.code for j in registry.jurisdictions())})", 1
        )
    day = date.fromisoformat(on) if on else date.today()
    policy = registry.policy(code)
    rules = registry.rules_for_scheme(code, day)
    lists = registry.lists_for(code)
    if as_json:
        print_json(
            {
                "jurisdiction": code,
                "ancestors": list(registry.ancestors(code)),
                "policy": policy.model_dump(mode="json"),
                "rules": [
                    {**r.model_dump(mode="json"), "jurisdiction": registry.rule_jurisdiction(r.code)}
                    for r in rules
                ],
                "lists": [lst.model_dump(mode="json") for lst in lists],
            }
        )
        return
    j = registry.jurisdiction(code)
    assert j is not None
    console.print(
        f"[bold]{code}[/bold] {j.name_en} / {j.name_zh}  (inherits {' > '.join(registry.ancestors(code))})"
    )
    ptable = Table("policy", "value", title="effective policy")
    for name, value in policy.model_dump(mode="json").items():
        shown = ", ".join(f"{b['grade']}≥{b['min']}" for b in value) if name == "grade_bands" else str(value)
        ptable.add_row(name, shown)
    console.print(ptable)
    rtable = Table(
        "rule", "v", "points", "category", "severity", "legal basis", title=f"rules in force on {day}"
    )
    for r in rules:
        rtable.add_row(r.code, str(r.version), f"{r.points:+d}", r.category, r.severity, r.legal_basis)
    console.print(rtable)
    ltable = Table("list", "kind", "entry", "measures", title="lists")
    for lst in lists:
        ltable.add_row(lst.code, lst.kind, lst.entry, ", ".join(m.measure for m in lst.measures))
    console.print(ltable)
