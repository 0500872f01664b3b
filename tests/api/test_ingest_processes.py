"""Agencies' batches are checked and appended in an ingest process beside the worker
(``credo.api.ingest``): the same answers, the same ledger, and a 503 (never a lost
batch) when that process dies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil
import pytest
from factories import RecordFactory
from fastapi.testclient import TestClient
from helpers import POSTGRES_URL, postgres_schema
from sqlalchemy import func, select

from credo.access.services import Role, create_token
from credo.api import ingest as ingest_module
from credo.api.app import create_app
from credo.api.routers import records as records_router
from credo.ledger import audit
from credo.runtime import Runtime, bootstrap
from credo.settings import Settings
from credo.store.tables import records

TP = "CN-ZJ-HZ-TP"


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path, settings: Settings) -> Iterator[Runtime]:
    """A registry other processes can open (a file; a PostgreSQL schema of its own), with one
    ingest process per worker."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'credo.db'}"
        else:
            schema = stack.enter_context(postgres_schema("credo_ingest"))
            url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
        runtime = Runtime.open(settings.replace(database_url=url, ingest_processes=1))
        stack.callback(runtime.db.dispose)
        bootstrap(runtime)
        yield runtime


def _agency_headers(runtime: Runtime) -> dict[str, str]:
    with runtime.db.begin() as conn:
        return {"Authorization": f"Bearer {create_token(conn, Role.AGENCY, agency=TP)}"}


def _not_here(*_: Any) -> Any:
    raise AssertionError("the worker ran the batch itself")


def test_a_batch_is_checked_and_appended_in_the_ingest_process_not_the_worker(
    shared: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(records_router, "ingest_batch", _not_here)
    headers = _agency_headers(shared)
    batch = [RecordFactory(), RecordFactory(), RecordFactory(rule="CN-ZJ-HZ.NO-SUCH-RULE")]
    app = create_app(shared)
    with TestClient(app) as http:
        assert app.state.ingest_processes is not None
        answer = http.post("/api/v1/records", json=batch, headers=headers)
        assert answer.status_code == 200, answer.text
        again = http.post("/api/v1/records", json=batch[:1], headers=headers)
    body = answer.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 1)
    assert [i["status"] for i in body["items"]] == ["accepted", "accepted", "rejected"]
    assert "rule" in body["items"][2]["reasons"][0]
    assert again.json()["items"][0] == {**body["items"][0], "status": "duplicate"}
    with shared.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(records)).scalar() == 2
        assert audit.verify(conn, shared.log.signer.verifier_key()).ok


def test_a_dead_ingest_process_answers_503_and_the_next_batch_gets_a_new_one(shared: Runtime) -> None:
    headers = _agency_headers(shared)
    app = create_app(shared)
    with TestClient(app) as http:
        pool = app.state.ingest_processes
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        lost = http.post("/api/v1/records", json=[RecordFactory()], headers=headers)
        assert lost.status_code == 503, lost.text
        assert lost.headers["retry-after"] == "1"
        assert "ingest process" in lost.json()["detail"]
        answer = http.post("/api/v1/records", json=[RecordFactory()], headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 1


def test_without_a_database_file_to_share_batches_run_on_the_workers_threads(runtime: Runtime) -> None:
    """Tests' bound connection (like an in-memory database) is seen by this process only."""
    assert int(runtime.settings.ingest_processes) == 1
    app = create_app(runtime)
    assert app.state.ingest_processes is None
    with runtime.db.begin() as conn:
        token = create_token(conn, Role.AGENCY, agency=TP)
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as http:
        answer = http.post("/api/v1/records", json=[RecordFactory()], headers=headers)
    assert answer.json()["accepted"] == 1


def test_settings_cross_to_the_ingest_process(settings: Settings) -> None:
    """They are pickled for the process (``__getattr__`` once recursed while unpickling)."""
    import pickle

    copy = pickle.loads(pickle.dumps(settings))
    assert copy == settings and copy.ingest_processes == settings.ingest_processes
    assert ingest_module.IngestProcesses(settings, 1).processes == 1


def test_an_ingest_process_freezes_what_it_starts_with_and_keeps_freezing(
    settings: Settings, tmp_path: Path
) -> None:
    """Else its full collections walk the catalogs and caches: ~200 ms pauses of a batch."""
    url = f"sqlite:///{tmp_path / 'credo.db'}"
    bootstrap(Runtime.open(settings.replace(database_url=url)))
    pool = ingest_module.IngestProcesses(settings.replace(database_url=url, ingest_processes=1), 1)
    pool.start()
    try:
        assert pool._pool is not None
        frozen, freezing = pool._pool.submit(ingest_module._frozen).result(timeout=60)
    finally:
        pool.stop()
    assert frozen > 10_000 and freezing


_KILLED_WORKER = """
import sys
from credo.api.ingest import IngestProcesses
from credo.settings import load_settings

if __name__ == "__main__":
    pool = IngestProcesses(load_settings({"CREDO_DATABASE_URL": sys.argv[1]}), 1)
    print(*pool.start(), flush=True)
    sys.stdin.read()  # until killed
"""


def test_an_ingest_process_exits_when_its_worker_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed worker leaves no ingest process behind (they once waited forever)."""
    script = tmp_path / "worker.py"
    script.write_text(_KILLED_WORKER)
    worker = subprocess.Popen(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 'credo.db'}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdin is not None and worker.stdout is not None
    processes: list[psutil.Process] = []
    try:
        processes = [psutil.Process(int(pid)) for pid in worker.stdout.readline().split()]
        assert [p.ppid() for p in processes] == [worker.pid]
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        _, alive = psutil.wait_procs(processes, timeout=10)
        assert not alive, "the ingest process outlived its worker"
    finally:
        worker.kill()
        worker.wait()
        for process in processes:  # (an orphan holds the pipes open: never wait on them)
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        worker.stdin.close()
        worker.stdout.close()
