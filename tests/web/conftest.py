"""Fixtures for the web pages: a TestClient over the test database, and a real
``credo serve`` with Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from web.support import Server, Story, free_port, tell_story, web_app

from credo.runtime import Runtime, bootstrap
from credo.settings import load_settings


@pytest.fixture
def story(runtime: Runtime) -> Story:
    return tell_story(runtime)


@pytest.fixture
def web(runtime: Runtime) -> TestClient:
    return TestClient(web_app(runtime), follow_redirects=False)


# -- a real server and a real browser ------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``credo serve`` on a free loopback port over a fresh SQLite registry with the story in it."""
    root = tmp_path_factory.mktemp("web-server")
    env = {
        **os.environ,
        "CREDO_DATABASE_URL": f"sqlite:///{root / 'credo.db'}",
        "CREDO_SIGNING_KEY_PATH": str(root / "keys" / "log.key"),
    }
    runtime = Runtime.open(load_settings(env))
    bootstrap(runtime)
    story = tell_story(runtime, n=50)
    runtime.db.dispose()
    port = free_port()
    credo = Path(sys.executable).with_name("credo")
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(credo), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.close()
                pytest.fail("credo serve did not start:\n" + (root / "server.log").read_text()[-3000:])
            time.sleep(0.2)
        yield Server(url, story, root)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; never a downloaded browser."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        message = "chromium is not installed (make test installs it: scripts/system-deps.sh chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()
