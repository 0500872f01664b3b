"""The app itself: health, metrics, OpenAPI, problem+json errors, authentication."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio.to_thread
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from credo.api.app import create_app
from credo.runtime import Runtime, bootstrap
from credo.settings import load_settings


def client(runtime: Runtime) -> TestClient:
    return TestClient(create_app(runtime))


def test_healthz_reports_database_and_every_shipped_catalog(runtime: Runtime) -> None:
    body = client(runtime).get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] == runtime.db.dialect
    assert {"CN", "CN-ZJ", "CN-ZJ-HZ", "CN-ZJ-ZS", "CN-ZJ-YW", "CN-SD", "CN-SD-RC"} <= set(
        body["jurisdictions"]
    )


def test_metrics_are_prometheus_text(runtime: Runtime) -> None:
    c = client(runtime)
    c.get("/healthz")
    res = c.get("/metrics")
    assert res.headers["content-type"].startswith("text/plain")
    assert "credo_http_requests_total" in res.text


def test_metrics_count_the_rounds_of_a_workers_background_tasks(runtime: Runtime) -> None:
    """Each loop beside the requests (credo.store.upkeep) is counted by task, failures apart."""
    with TestClient(create_app(runtime)) as c:  # runs the lifespan: the loops start
        deadline = time.monotonic() + 10
        wanted = [f'credo_upkeep_rounds_total{{task="{task}"}}' for task in ("access-log", "list-index")]
        text = ""
        while time.monotonic() < deadline and not all(w in text for w in wanted):
            time.sleep(0.05)
            text = c.get("/metrics").text
    assert all(w in text for w in wanted), text
    assert "# HELP credo_upkeep_failures_total Rounds of a background task that raised" in text
    assert 'credo_upkeep_failures_total{task="access-log"}' in text  # there from the start, at 0


def test_an_app_started_again_runs_its_background_loops_again(runtime: Runtime) -> None:
    """The list index and the access log are made with the app, not its lifespan: a second
    lifespan (a test client entered twice) found their stop still set, and they ran no round."""
    app = create_app(runtime)
    with TestClient(app):
        pass
    keeper, writer = app.state.index_keeper, app.state.access_writer
    with TestClient(app):
        done = keeper.health.completed, writer.health.completed
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            keeper.health.completed < done[0] + 2 or writer.health.completed < done[1] + 2
        ):
            time.sleep(0.02)
        running = {t.name for t in threading.enumerate()}
    assert keeper.health.completed >= done[0] + 2 and writer.health.completed >= done[1] + 2
    assert {"list-index", "access-log"} <= running


def test_openapi_documents_the_batch_body(runtime: Runtime) -> None:
    spec = client(runtime).get("/openapi.json").json()
    body = spec["paths"]["/api/v1/records"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    assert "agency_ref" in body["items"]["properties"]


def test_errors_are_problem_json(runtime: Runtime) -> None:
    c = client(runtime)
    missing = c.get("/nowhere")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    unauth = c.post("/api/v1/records", json=[])
    assert unauth.status_code == 401
    assert unauth.headers["content-type"] == "application/problem+json"
    assert unauth.headers["www-authenticate"] == "Bearer"
    bad = c.post("/api/v1/records", json=[], headers={"Authorization": "Bearer nope"})
    assert bad.json()["detail"] == "unknown or revoked token"


def test_a_worker_hides_its_start_up_objects_from_the_collector(runtime: Runtime) -> None:
    import gc

    gc.unfreeze()  # whatever earlier tests froze
    with TestClient(create_app(runtime)):  # runs the lifespan, as a server worker does
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0  # given back when the app shuts down


def test_a_worker_serves_as_many_requests_at_once_as_settings_give_it_threads(runtime: Runtime) -> None:
    async def tokens() -> float:
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    app = create_app(Runtime(runtime.settings.replace(worker_threads=5), runtime.db, runtime.catalogs))
    with TestClient(app) as c:
        assert c.portal is not None
        assert c.portal.call(tokens) == 5


@pytest.mark.parametrize(("interval", "expected"), [("1.0", 0), ("0", 1000)])
def test_a_server_worker_checkpoints_sqlite_in_the_background(
    tmp_path: Path, interval: str, expected: int
) -> None:
    settings = load_settings(
        {"CREDO_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "CREDO_CHECKPOINT_INTERVAL": interval}
    )
    runtime = Runtime.open(settings)
    bootstrap(runtime)
    try:
        with TestClient(create_app(runtime)):  # runs the lifespan, as a server worker does
            with runtime.db.read() as conn:
                assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == expected
            threads = {t.name for t in threading.enumerate()}
            assert ("wal-checkpoint" in threads) == (expected == 0)
    finally:
        runtime.db.dispose()


def test_a_worker_whose_start_up_fails_stops_the_loops_it_had_started(tmp_path: Path) -> None:
    """A loop left running by a failed start-up outlived its app (a check log's writer so left
    took a later app's stop sentinel: CheckLog.start)."""
    settings = load_settings({"CREDO_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"})
    runtime = Runtime.open(settings)
    bootstrap(runtime)
    app = create_app(runtime)
    with runtime.db.begin() as conn:  # the list index cannot load: its start fails after others'
        conn.exec_driver_sql("DROP TABLE list_changes")
    ours = {"wal-checkpoint", "check-log-index", "access-log", "list-index", "check-log", "gc-freezer"}
    before = set(threading.enumerate())
    try:
        with pytest.raises(OperationalError, match="no such table: list_changes"), TestClient(app):
            pass
        left = [t.name for t in threading.enumerate() if t not in before and t.name in ours]
        assert left == []
    finally:
        runtime.db.dispose()


def test_a_worker_looks_up_the_regions_of_identity_numbers_at_start(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in its first manifests of fresh passengers (ids.warm_regions), and not on the thread
    that serves requests."""
    import credo.api.app as app_module

    ran: list[str] = []
    done = threading.Event()

    def warm() -> int:
        ran.append(threading.current_thread().name)
        done.set()
        return 0

    monkeypatch.setattr(app_module, "warm_regions", warm)
    with TestClient(create_app(runtime)):  # runs the lifespan, as a server worker does
        assert done.wait(10)
    assert ran == ["warm-regions"]


def test_a_worker_collects_its_young_objects_after_10000_allocations_not_700(runtime: Runtime) -> None:
    """Fewer collections walking the requests in flight (runtime.fewer_collections); the
    threshold is the process's own again once the app stops."""
    import doctest
    import gc

    import credo.runtime
    from credo.runtime import WORKER_GC_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    assert before[0] != WORKER_GC_THRESHOLD
    with TestClient(create_app(runtime)):
        assert gc.get_threshold() == (WORKER_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(fewer_collections, "fewer_collections", globs=vars(credo.runtime)):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0
