"""``credo settings``: every setting, its value and what it does."""

from __future__ import annotations

from rich.table import Table

from credo.cli.common import JsonOpt, console, print_json
from credo.settings import SETTINGS, load_settings


def show(as_json: bool = JsonOpt) -> None:
    """List every setting with its environment variable, value and help."""
    current = load_settings()
    rows = [
        {"name": s.name, "env": s.env, "value": str(getattr(current, s.name)), "help": s.help}
        for s in SETTINGS
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("setting", "variable", "value", "help")
    for r in rows:
        table.add_row(r["name"], r["env"], r["value"], r["help"])
    console.print(table)
