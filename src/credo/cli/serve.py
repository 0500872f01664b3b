"""``credo serve`` and ``credo demo``."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors.multiprocess import Process

from credo.api.app import create_app
from credo.cli.common import console, fail, open_runtime
from credo.lists.keeper import database_name, index_directory
from credo.lists.snapshots import SnapshotStore
from credo.runtime import bootstrap


def _listening_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP listening socket with TCP_NODELAY, which the connections it accepts inherit.

    uvicorn's own for several workers is made with protocol 0, so asyncio in the workers
    does not set TCP_NODELAY on accepted connections (it checks for IPPROTO_TCP): Nagle's
    algorithm then holds each keep-alive answer's last segment until the client's delayed
    ACK, about 40 ms per request (bench/RESULTS.md, "Checks").
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc}")
    sock.set_inheritable(True)
    return sock


def _listening_sockets(host: str, port: int, workers: int) -> list[socket.socket]:
    """One listening socket per worker on the same port (SO_REUSEPORT: the kernel spreads new
    connections evenly over them), or one socket for all where the system has no SO_REUSEPORT.

    Why: with one socket shared, a worker woken by a burst of connections accepts all that
    wait (asyncio accepts up to 100 per wake-up), and keep-alive connections stay where they
    were accepted: under a client's 32 connections one worker did ~80 % of the work while the
    other idled (bench/RESULTS.md, "Checks").
    """
    probe = _listening_socket(host, port)  # fails as ever if anyone listens there, even with
    if workers < 2 or not hasattr(socket, "SO_REUSEPORT"):  # SO_REUSEPORT (a server left running)
        return [probe]
    port = probe.getsockname()[1]  # (port 0: the one the probe was given)
    probe.close()
    return [_listening_socket(host, port, reuse_port=True) for _ in range(workers)]


_log = logging.getLogger("uvicorn.error")


class _Workers(Multiprocess):
    """uvicorn's supervisor (0.54), each worker on its own listening socket (``_listening_sockets``):
    a worker started again, after it died or on SIGHUP, takes the socket its predecessor had.
    With one socket for all, uvicorn's behaviour exactly."""

    def _spawn(self, idx: int) -> Process:
        own = self.sockets if len(self.sockets) < 2 else [self.sockets[idx % len(self.sockets)]]
        return Process(self.config, own)

    def init_processes(self) -> None:
        for idx in range(self.processes_num):
            process = self._spawn(idx)
            process.start()
            self.processes.append(process)

    def restart_all(self) -> None:
        for idx, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._spawn(idx)
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                return
            old.terminate()
            old.join()
            self.processes[idx] = new

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()  # hung or dead
            process.join()
            if process.exitcode == STARTUP_FAILURE:  # would fail the same way again
                _log.error(f"Child process [{process.pid}] failed to start, stopping the parent process.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            _log.info(f"Child process [{process.pid}] died")
            replacement = self._spawn(idx)
            replacement.start()
            self.processes[idx] = replacement


def _serve_workers(host: str, port: int, workers: int) -> None:
    """What ``uvicorn.run(..., workers=N)`` does, on sockets of our own (see above)."""
    config = uvicorn.Config(
        "credo.api.app:app_from_env", factory=True, host=host, port=port, workers=workers, log_level="warning"
    )
    with contextlib.suppress(KeyboardInterrupt):
        _Workers(config, sockets=_listening_sockets(host, port, workers)).run()


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
