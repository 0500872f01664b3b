"""Every request leaves an access record; limits answer 413, 429 and 503 with the reason."""

from __future__ import annotations

import gc
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from credo.access.services import create_token
from credo.api import guard
from credo.api.app import create_app
from credo.catalog.registry import Registry
from credo.runtime import Freezer, Runtime
from credo.settings import Settings
from credo.store.db import Database


def app_with(runtime: Runtime, **settings: int) -> TestClient:
    runtime = Runtime(runtime.settings.replace(**settings), runtime.db, runtime.catalogs)
    return TestClient(create_app(runtime))


def access_rows(client: TestClient, runtime: Runtime) -> list[dict[str, object]]:
    client.app.state.access_writer.flush()  # type: ignore[attr-defined]
    with runtime.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(text("SELECT * FROM access_log ORDER BY id"))]


def test_every_request_allowed_or_denied_writes_one_access_record(runtime: Runtime) -> None:
    with runtime.db.begin() as conn:
        auditor = create_token(conn, "auditor", label="inspector")
        agency = create_token(conn, "agency", agency="CN-SPC")
    client = app_with(runtime)
    client.get("/api/v1/audit/access", headers={"Authorization": f"Bearer {auditor}"})
    client.get("/api/v1/audit/access", headers={"Authorization": f"Bearer {agency}"})
    client.get("/api/v1/audit/access")
    rows = access_rows(client, runtime)
    assert [(r["role"], r["status"], r["outcome"]) for r in rows] == [
        ("auditor", 200, "allowed"),
        ("agency", 403, "denied"),
        ("anonymous", 401, "denied"),
    ]
    assert {r["operation"] for r in rows} == {"GET /api/v1/audit/access"}
    shown = client.get("/api/v1/audit/access", headers={"Authorization": f"Bearer {auditor}"}).json()
    assert len(shown) == 3


def test_access_records_are_append_only(runtime: Runtime) -> None:
    client = app_with(runtime)
    client.get("/api/v1/me/file")
    access_rows(client, runtime)
    with pytest.raises(DBAPIError, match="append-only"), runtime.db.begin() as conn:
        conn.execute(text("DELETE FROM access_log"))


def test_request_id_is_echoed_or_made(runtime: Runtime) -> None:
    client = app_with(runtime)
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert len(client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]) == 32
    made = {client.get("/livez").headers["x-request-id"] for _ in range(50)}
    assert len(made) == 50 and all(len(m) == 32 and int(m, 16) >= 0 for m in made)


def test_a_body_over_the_limit_is_413(runtime: Runtime) -> None:
    res = app_with(runtime, max_body_bytes=100).post("/api/v1/records", content=b"[" + b" " * 200 + b"]")
    assert res.status_code == 413 and res.headers["content-type"] == "application/problem+json"


def test_over_the_rate_limit_is_429_with_retry_after(runtime: Runtime) -> None:
    client = app_with(runtime, rate_per_minute=10)  # a burst of one, then one every 6 s
    assert client.get("/healthz").status_code == 200
    limited = client.get("/healthz")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_a_saturated_server_answers_503(runtime: Runtime) -> None:
    res = app_with(runtime, max_in_flight=0).get("/healthz")
    assert res.status_code == 503 and res.headers["retry-after"] == "1"


def test_the_burst_is_as_the_setting_says(runtime: Runtime) -> None:
    client = app_with(runtime, rate_per_minute=60, rate_burst=3)  # three at once, then one a second
    assert [client.get("/healthz").status_code for _ in range(4)] == [200, 200, 200, 429]
    default = app_with(runtime, rate_per_minute=60)  # a tenth of a minute's worth: six
    assert [default.get("/healthz").status_code for _ in range(7)] == [200] * 6 + [429]


def test_the_access_log_queue_is_as_long_as_the_setting_says(runtime: Runtime) -> None:
    client = app_with(runtime, access_log_queue=2)  # no lifespan: nothing drains the queue
    for _ in range(3):
        client.get("/api/v1/me/file")
    writer = client.app.state.access_writer  # type: ignore[attr-defined]
    assert writer.dropped == 1, "the third record found the queue full"
    assert len(access_rows(client, runtime)) == 2


def test_a_database_that_is_down_is_a_503_with_retry_after_and_a_bug_stays_a_500(
    catalogs: Registry, settings: Settings
) -> None:
    down = Database.from_url("postgresql://postgres@127.0.0.1:9/credo", connect_args={"connect_timeout": 2})
    client = TestClient(create_app(Runtime(settings, down, catalogs)))
    res = client.get("/api/v1/me/file", headers={"Authorization": "Bearer credo_x"})
    assert res.status_code == 503 and res.headers["retry-after"] == "1", res.text
    assert res.headers["content-type"] == "application/problem+json"
    assert "database is unavailable" in res.json()["detail"]
    # SQLite's OperationalError also means a bad statement (here: no tables at all): not a 503.
    empty = Database.from_url("sqlite://")
    with pytest.raises(OperationalError, match="no such table"):
        TestClient(create_app(Runtime(settings, empty, catalogs))).get(
            "/api/v1/me/file", headers={"Authorization": "Bearer credo_x"}
        )
    down.dispose()
    empty.dispose()


def test_each_request_logs_one_json_line_with_its_id_off_the_event_loop(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setattr(guard.LINES, "stream", out)
    client = app_with(runtime, log_requests=1)
    guard.LINES.flush()
    out.seek(0)
    out.truncate()
    r = client.get("/api/v1/me", headers={"X-Request-ID": "req-1"})
    guard.LINES.flush()
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    seen = [(x["event"], x["request_id"], x["status"]) for x in lines]
    assert seen == [("request", "req-1", r.status_code)]
    assert {"level", "timestamp", "op", "role", "ms"} <= lines[0].keys()


def test_a_log_line_costs_the_request_no_write() -> None:
    out = io.StringIO()
    sink = guard.LineSink(out, interval=3600)
    sink.msg("one")
    sink.msg("two")
    assert out.getvalue() == ""
    sink.flush()
    assert out.getvalue() == "one\ntwo\n"


def test_log_lines_go_to_the_process_stdout_not_a_swapped_sys_stdout(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    swapped = io.StringIO()  # what a CLI runner does while a command runs
    monkeypatch.setattr("sys.stdout", swapped)
    sink = guard.LineSink(interval=3600)
    sink.msg('{"event":"request"}')
    sink.flush()
    assert swapped.getvalue() == ""
    assert capfd.readouterr().out == '{"event":"request"}\n'


def test_a_running_server_freezes_what_survives_so_full_collections_stay_short(runtime: Runtime) -> None:
    # Growing caches made each automatic full collection walk them all (pauses of 20-84 ms).
    freezer = Freezer(interval=0.01)
    gc.unfreeze()
    kept = [[i] for i in range(1000)]  # long-lived objects made while serving
    freezer.start()
    try:
        deadline = time.monotonic() + 5
        while freezer.freezes < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        freezer.stop()
    assert freezer.freezes >= 2 and gc.get_freeze_count() >= len(kept)
    gc.unfreeze()
    with app_with(runtime):
        assert "gc-freezer" in {t.name for t in threading.enumerate()}, "the app runs one"
    assert "gc-freezer" not in {t.name for t in threading.enumerate()}, "and stops it"


_ARENAS = """
import ctypes, sys, threading
from credo.runtime import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas(2)
def work():
    for _ in range(200):
        kept = [bytearray(4096) for _ in range(50)]  # past pymalloc's 512 bytes: from malloc
barrier = threading.Barrier(12)
def thread():
    barrier.wait()
    work()
threads = [threading.Thread(target=thread) for _ in range(12)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
fp = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(fp))
libc.fclose(ctypes.c_void_p(fp))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_info reports the heaps")
@pytest.mark.parametrize("mode", ["limited", "default"])
def test_a_server_worker_keeps_two_malloc_heaps_for_all_its_threads(tmp_path: Path, mode: str) -> None:
    # Each thread with a heap of its own grew a loaded worker's memory 13-17 % in 3 minutes.
    report = tmp_path / "malloc.xml"
    subprocess.run([sys.executable, "-c", _ARENAS, mode, str(report)], check=True, timeout=60)
    heaps = report.read_text().count("<heap nr=")
    if mode == "limited":
        assert heaps <= 2
    else:  # without the limit a thread gets a heap of its own: the check above means something
        assert heaps > 2


def test_the_app_limits_malloc_heaps_as_it_starts(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def limit() -> bool:
        calls.append("limited")
        return True

    monkeypatch.setattr("credo.api.app.limit_malloc_arenas", limit)
    with app_with(runtime):
        assert calls == ["limited"]
