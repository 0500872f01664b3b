"""Notices reach people: a real SMTP server and a real webhook receiver on loopback."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from factories import RecordFactory, org_id
from sqlalchemy import insert, select

from credo.process.intake import ingest_and_notify
from credo.process.outbox import OutboxConfig, deliver_due
from credo.runtime import Runtime
from credo.store.tables import notice_deliveries, subject_channels, subjects

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:  # aiosmtpd connects to its own port at start: it needs a real one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def webhook() -> Iterator[tuple[list[dict[str, Any]], int]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def record_with_channels(runtime: Runtime, channels: list[tuple[str, str, str]]) -> None:
    who = org_id(90)
    with runtime.db.begin() as conn:
        # The subject exists first, with its channels, so the notice is queued to them.
        sid = conn.execute(
            insert(subjects)
            .values(kind="organisation", identifier=who, created_at=NOW)
            .returning(subjects.c.id)
        ).scalar_one()
        conn.execute(
            insert(subject_channels),
            [{"subject_id": sid, "channel": c, "address": a, "language": lang} for c, a, lang in channels],
        )
        ingest_and_notify(
            conn,
            runtime.catalogs,
            runtime.log,
            "CN-ZJ-YW-AMR",
            [RecordFactory(subject=who, rule="CN-ZJ-YW.COUNTERFEIT-TRADEMARK", occurred_on="2026-02-20")],
            source="test",
            now=NOW,
        )


def test_a_notice_is_mailed_and_posted(
    runtime: Runtime, smtp: tuple[Inbox, int], webhook: tuple[list[dict[str, Any]], int]
) -> None:
    inbox, smtp_port = smtp
    received, http_port = webhook
    record_with_channels(
        runtime,
        [("email", "owner@example.cn", "zh"), ("webhook", f"http://127.0.0.1:{http_port}/hook", "en")],
    )
    with runtime.db.begin() as conn:
        counts = deliver_due(conn, OutboxConfig(smtp_port=smtp_port), now=NOW)
        states = conn.execute(select(notice_deliveries.c.channel, notice_deliveries.c.state)).all()
    assert counts == {"sent": 2, "retried": 0, "failed": 0}
    assert sorted(states) == [("email", "sent"), ("webhook", "sent")]
    (mail,) = inbox.messages
    assert mail.rcpt_tos == ["owner@example.cn"]
    message = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert "申诉截止日期：2026-03-16" in message.get_content()  # the subject chose Chinese
    (post,) = received
    assert post["language"] == "en" and "You may appeal until 2026-03-16" in post["text"]


def test_failed_deliveries_are_retried_then_marked_failed_with_the_reason(runtime: Runtime) -> None:
    record_with_channels(runtime, [("webhook", "http://127.0.0.1:9/nowhere", "en")])
    config = OutboxConfig(max_attempts=2, timeout=1.0)
    with runtime.db.begin() as conn:
        assert deliver_due(conn, config, now=NOW) == {"sent": 0, "retried": 1, "failed": 0}
        assert deliver_due(conn, config, now=NOW) == {"sent": 0, "retried": 0, "failed": 0}  # backing off
        assert deliver_due(conn, config, now=NOW + timedelta(minutes=2)) == {
            "sent": 0,
            "retried": 0,
            "failed": 1,
        }
        row = conn.execute(select(notice_deliveries)).one()
    assert row.state == "failed" and row.attempts == 2 and "ConnectError" in row.last_error
