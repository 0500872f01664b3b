"""The ``credo`` command: a thin layer over the same services the API uses.

Exit codes: 0 done; 1 the input was read but refused (validation failures,
a broken log); 2 the command could not run (unreadable file, bad usage).
"""

from __future__ import annotations

import typer

from credo.cli import (
    backup,
    catalog,
    db,
    demo,
    ledger,
    lists,
    process,
    scoring,
    serve,
    settings_cmd,
    simulate,
    tokens,
    whatif,
)
from credo.cli.common import close_runtimes

app = typer.Typer(
    name="credo",
    help="credo: a social-credit registry where due process is part of the data model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    ctx.call_on_close(close_runtimes)


app.add_typer(db.app, name="db")
app.add_typer(catalog.app, name="catalog")
app.add_typer(tokens.app, name="token")
app.add_typer(ledger.quarantine_app, name="quarantine")
app.add_typer(ledger.audit_app, name="audit")
app.add_typer(lists.lists_app, name="lists")
app.add_typer(lists.party_app, name="party")
app.command("check")(lists.check)
lists.lists_app.command("refresh")(process.lists_refresh)
app.add_typer(process.appeal_app, name="appeal")
app.add_typer(process.notices_app, name="notices")
app.command("tick")(process.tick)
app.add_typer(simulate.app, name="simulate")
app.command("backup")(backup.backup)
app.command("restore")(backup.restore)
app.command("score")(scoring.score)
app.command("rescore")(scoring.rescore)
app.command("whatif")(whatif.whatif)
app.add_typer(scoring.export_app, name="export")
app.command("ingest")(ledger.ingest)
app.command("serve")(serve.serve)
app.command("demo")(demo.demo)
app.command("settings")(settings_cmd.show)


def main() -> None:
    app()
