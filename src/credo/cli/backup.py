"""``credo backup`` and ``credo restore``: one file, a consistent snapshot, restored all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from credo.cli.common import JsonOpt, console, fail, open_runtime, print_json
from credo.ledger import audit as ledger_audit
from credo.store.backup import BackupError
from credo.store.backup import backup as write_backup
from credo.store.backup import restore as read_backup


def backup(
    path: Annotated[
        Path, typer.Argument(help="File to write (SQLite: a database file; PostgreSQL: pg_dump)")
    ],
    force: Annotated[bool, typer.Option(help="Replace PATH if it exists.")] = False,
    as_json: bool = JsonOpt,
) -> None:
    """Copy the registry to PATH while it runs (SQLite online backup API; pg_dump for PostgreSQL).

    The signing key of the Merkle log is not in the backup: keep it apart.
    """
    runtime = open_runtime()
    try:
        info = write_backup(runtime.db, path, force=force)
    except BackupError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(info.as_dict())
        return
    console.print(
        f"[green]backed up[/green] {info.kind} registry to {info.path} ({info.bytes:,} bytes); "
        f"ledger size {info.tree_size}"
    )


def restore(
    path: Annotated[Path, typer.Argument(help="A file written by `credo backup`.")],
    as_json: bool = JsonOpt,
) -> None:
    """Restore PATH into the configured database, which must hold no registry yet; then verify it.

    Exit 0 restored and verified; 1 restored but `audit verify` fails (e.g. another signing
    key); 2 not restored (nothing was written).
    """
    runtime = open_runtime()
    try:
        info = read_backup(runtime.db, path)
    except BackupError as exc:
        fail(str(exc), 2)
    with runtime.db.read() as conn:
        report = ledger_audit.verify(conn, runtime.log.signer.verifier_key(), info.checkpoint)
    out = {**info.as_dict(), "verified": report.ok, "verify": report.as_dict()}
    if as_json:
        print_json(out)
    elif report.ok:
        console.print(
            f"[green]restored[/green] {info.kind} registry from {info.path}: ledger size {info.tree_size}, "
            f"verified ({report.tree_heads} signed tree heads)"
        )
    else:
        console.print(f"[red]restored, but verify FAILED[/red] at seq {report.first_bad_seq}")
        for finding in report.findings[:10]:
            console.print(f"  - {finding.message}")
    if not report.ok:
        raise typer.Exit(1)
