"""``credo serve`` and ``credo demo``."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

from credo.api.app import create_app
from credo.cli.common import console, fail, open_runtime
from credo.lists.keeper import database_name, index_directory
from credo.lists.snapshots import SnapshotStore
from credo.runtime import bootstrap


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP listening socket with TCP_NODELAY, which the connections it accepts inherit.

    uvicorn's own for several workers is made with protocol 0, so asyncio in the workers
    does not set TCP_NODELAY on accepted connections (it checks for IPPROTO_TCP): Nagle's
    algorithm then holds each keep-alive answer's last segment until the client's delayed
    ACK, about 40 ms per request (bench/RESULTS.md, "Checks").
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc}")
    sock.set_inheritable(True)
    return sock


def _serve_workers(host: str, port: int, workers: int) -> None:
    """What ``uvicorn.run(..., workers=N)`` does, on a socket of our own (see above)."""
    config = uvicorn.Config(
        "credo.api.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning"
    )
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[_listening_socket(host, port)]).run()


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
        # The workers share one check-index snapshot (memory-mapped files); each worker
        # process reads the folder from the environment it inherits.
        shared = index_directory(runtime.settings)
        temporary = None
        if shared is None:
            shared = temporary = Path(tempfile.mkdtemp(prefix="credo-index-"))
            os.environ["CREDO_INDEX_DIR"] = str(shared)
        SnapshotStore(shared, database_name(runtime.db)).clear()  # rebuilt at start, by one worker
        try:
            _serve_workers(host, port, workers)
        finally:
            if temporary is not None:
                shutil.rmtree(temporary, ignore_errors=True)
    else:
        directory = index_directory(runtime.settings)
        if directory is not None:
            SnapshotStore(directory, database_name(runtime.db)).clear()
        uvicorn.run(create_app(runtime), host=host, port=port, log_level="warning")
