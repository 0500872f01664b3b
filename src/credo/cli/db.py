"""``credo db``: migrations."""

from __future__ import annotations

import typer

from credo.cli.common import console, open_runtime
from credo.runtime import bootstrap
from credo.store import migrate

app = typer.Typer(help="Database migrations.", no_args_is_help=True)


@app.command()
def upgrade() -> None:
    """Apply every migration and register the shipped catalogs' agencies."""
    runtime = open_runtime()
    bootstrap(runtime)
    with runtime.db.read() as conn:
        console.print(f"database at revision [bold]{migrate.current_revision(conn)}[/bold]")


@app.command()
def current() -> None:
    """Print the database's migration revision and the newest one available."""
    runtime = open_runtime()
    with runtime.db.read() as conn:
        rev = migrate.current_revision(conn)
    console.print(f"current: {rev or 'none'}  head: {migrate.head_revision()}")
    if rev != migrate.head_revision():
        raise typer.Exit(1)
