"""``credo serve`` and ``credo demo``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from credo.access.services import create_token
from credo.api.app import create_app
from credo.cli.common import console, open_runtime
from credo.runtime import bootstrap


def serve(
    host: Annotated[str | None, typer.Option(help="Overrides CREDO_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Overrides CREDO_PORT.")] = None,
    workers: Annotated[int | None, typer.Option(help="Overrides CREDO_WORKERS.")] = None,
) -> None:
    """Migrate, load the catalogs and serve the API (docs at /docs)."""
    runtime = open_runtime()
    bootstrap(runtime)
    host = host or runtime.settings.host
    port = port or runtime.settings.port
    workers = workers or runtime.settings.workers
    console.print(f"credo serving on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    if workers > 1:
        uvicorn.run(
            "credo.api.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    else:
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning")


def demo(
    db: Annotated[Path, typer.Option(help="SQLite file for the demo registry (recreated).")] = Path(
        "credo-demo.db"
    ),
    port: Annotated[int | None, typer.Option(help="Port to serve on.")] = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Set up, print, and exit.")] = False,
) -> None:
    """A fresh SQLite registry with the shipped catalogs, then the server."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    os.environ["CREDO_DATABASE_URL"] = f"sqlite:///{db}"
    runtime = open_runtime()
    console.print(f"[bold]1/3[/bold] creating registry {db} and applying migrations")
    bootstrap(runtime)
    jurisdictions = sorted(j.code for j in runtime.catalogs.jurisdictions())
    console.print(f"[bold]2/3[/bold] loaded catalogs: {', '.join(jurisdictions)}")
    with runtime.db.begin() as conn:
        agency = runtime.catalogs.agencies()[0].code
        tokens = {
            f"agency {agency}": create_token(conn, "agency", agency=agency, label="demo"),
            "reviewer CN": create_token(conn, "reviewer", jurisdiction="CN", label="demo"),
            "auditor": create_token(conn, "auditor", label="demo"),
            "admin": create_token(conn, "admin", label="demo"),
        }
    port = port or runtime.settings.port
    base = f"http://{runtime.settings.host}:{port}"
    console.print("[bold]3/3[/bold] tokens (send as 'Authorization: Bearer <token>'):")
    for who, token in tokens.items():
        console.print(f"  {who:<24} {token}", highlight=False, soft_wrap=True)
    console.print(f"API docs: {base}/docs   health: {base}/healthz")
    if no_serve:
        return
    uvicorn.run(create_app(runtime), host=runtime.settings.host, port=port, log_level="warning")
