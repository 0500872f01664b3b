"""What every command shares: the console, JSON output and the runtime."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

from credo.runtime import CatalogLoadError, Runtime, freeze_startup_objects, thaw_startup_objects
from credo.settings import SettingsError

console = Console()
err_console = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print a machine-readable JSON document.")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


_opened: list[Runtime] = []


def open_runtime() -> Runtime:
    """The registry this command works on; its connections close with the command."""
    try:
        runtime = Runtime.open()
    except (CatalogLoadError, SettingsError) as exc:
        fail(str(exc))
    _opened.append(runtime)
    freeze_startup_objects()
    return runtime


def close_runtimes() -> None:
    """Close every pool a command opened (the root callback registers this)."""
    if _opened:
        thaw_startup_objects()
    while _opened:
        _opened.pop().db.dispose()
