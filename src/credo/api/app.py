"""The FastAPI application: one router per audience, problem+json errors."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credo.api import openapi, problems
from credo.api.deps import TokenCache, plain_parameters
from credo.api.fastpath import ChecksFastPath
from credo.api.guard import AccessWriter, GuardMiddleware, Limits, configure_logging
from credo.api.ingest import IngestProcesses
from credo.api.routers import audit, health, lists, me, records, review, scores
from credo.ids import warm_regions
from credo.lists.checklog import CheckLog, index_merges
from credo.lists.keeper import IndexKeeper, index_directory
from credo.process.outbox import OutboxConfig
from credo.process.scheduler import Scheduler
from credo.runtime import (
    Freezer,
    Runtime,
    fewer_collections,
    freeze_startup_objects,
    limit_malloc_arenas,
    thaw_startup_objects,
)
from credo.web import install as install_web

REQUESTS = Counter("credo_http_requests_total", "HTTP requests", ["method", "status"])
LATENCY = Histogram("credo_http_request_seconds", "HTTP request latency", ["method"])


class MetricsMiddleware:
    """Counts requests by status; a plain ASGI middleware to stay off the hot path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUESTS.labels(scope["method"], str(status[0])).inc()
            LATENCY.labels(scope["method"]).observe(time.perf_counter() - start)


def create_app(runtime: Runtime) -> FastAPI:
    keeper = IndexKeeper(
        runtime.db,
        runtime.catalogs,
        str(runtime.settings.timezone),
        directory=index_directory(runtime.settings),
    )
    check_log = CheckLog(runtime.check_log_db)
    interval = int(runtime.settings.scheduler_interval)
    scheduler = Scheduler(
        runtime.db,
        runtime.catalogs,
        str(runtime.settings.timezone),
        OutboxConfig(smtp_host=str(runtime.settings.smtp_host), smtp_port=int(runtime.settings.smtp_port)),
    )

    writer = AccessWriter(runtime.db, capacity=int(runtime.settings.access_log_queue))
    processes = int(runtime.settings.ingest_processes)
    ingest = IngestProcesses(runtime.settings, processes) if processes and runtime.db.shared else None
    freezer = Freezer()
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limit_malloc_arenas()  # before the worker's threads start
        freeze_startup_objects()  # the app, catalogs and index live as long as the worker
        background = ExitStack()  # WAL checkpoints, index merges, the collector's threshold
        # Everything started is stopped, even when a later start fails: a check log's writer
        # left running by a failed start-up outlived its app (see CheckLog.start).
        try:
            background.enter_context(fewer_collections())
            if float(settings.checkpoint_interval) > 0:
                for db in {id(d): d for d in (runtime.db, runtime.check_log_db)}.values():
                    background.enter_context(db.checkpoints(float(settings.checkpoint_interval)))
            background.enter_context(
                index_merges(runtime.check_log_db, float(settings.check_index_merge_interval))
            )
            # As many request threads as the pool keeps connections for (AnyIO's default is 40).
            anyio.to_thread.current_default_thread_limiter().total_tokens = int(settings.worker_threads)
            writer.start()
            keeper.start()
            check_log.start()
            if interval > 0:
                scheduler.start(interval)
            if ingest is not None:
                await anyio.to_thread.run_sync(ingest.start)
            freezer.start()
            # Regions looked up now, not by the first manifests (ids.warm_regions: ~0.3 s of CPU).
            threading.Thread(target=warm_regions, name="warm-regions", daemon=True).start()
            yield
        finally:
            freezer.stop()
            if ingest is not None:
                await anyio.to_thread.run_sync(ingest.stop)
            scheduler.stop()
            check_log.stop()
            keeper.stop()
            writer.stop()
            background.close()
            thaw_startup_objects()

    app = FastAPI(
        lifespan=lifespan,
        title="credo",
        version="0.1.0",
        description="A social-credit registry where due process is part of the data model.",
    )
    app.state.runtime = runtime
    app.state.index_keeper = keeper
    app.state.check_log = check_log
    app.state.access_writer = writer
    app.state.ingest_processes = ingest
    app.state.token_cache = TokenCache(float(settings.token_cache_seconds))
    app.state.party_cache = lists.PartyCache()
    routers = (
        health.router,
        records.router,
        audit.router,
        lists.router,
        me.router,
        review.router,
        scores.router,
    )
    problems.install(app, routers)
    openapi.document(app, routers)
    for router in routers:
        app.include_router(router, dependencies=[Depends(plain_parameters)])
    install_web(app)  # the pages: same services, out of the OpenAPI document
    app.add_middleware(ChecksFastPath)  # innermost: inside the metrics and the guard
    app.add_middleware(MetricsMiddleware)
    configure_logging()
    app.add_middleware(
        GuardMiddleware,
        writer=writer,
        limits=Limits.from_settings(settings),
        log_requests=bool(int(settings.log_requests)),
    )
    return app


def app_from_env() -> Any:
    """Factory for ``uvicorn --factory credo.api.app:app_from_env`` (several workers)."""
    return create_app(Runtime.open())
