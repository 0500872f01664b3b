"""``credo serve`` and ``credo demo``."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

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
