"""The notice outbox: deliver each pending notice to each channel, with retries.

Email goes out over SMTP; a webhook is an HTTP POST of the notice as JSON.
A delivery that fails is retried with exponential backoff (1, 2, 4, ...
minutes) and marked ``failed`` with its last reason after the last attempt.
Delivery state is kept per notice and channel, so "was I told?" has an
answer.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import Connection, select, update

from credo.process.notices import render
from credo.store.tables import notice_deliveries, notices, subject_channels


@dataclass(frozen=True)
class OutboxConfig:
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    sender: str = "notices@credo.example"
    max_attempts: int = 5
    timeout: float = 5.0


Sender = Callable[[str, str, dict[str, Any], str], None]


def send_email(config: OutboxConfig) -> Sender:
    def send(address: str, text: str, body: dict[str, Any], lang: str) -> None:
        message = EmailMessage()
        message["From"] = config.sender
        message["To"] = address
        message["Subject"] = (
            "信用档案通知" if lang == "zh" else "Notice about your credit file"
        ) + f" ({body.get('kind')})"
        message.set_content(text)
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
            smtp.send_message(message)

    return send


def send_webhook(config: OutboxConfig) -> Sender:
    def send(address: str, text: str, body: dict[str, Any], lang: str) -> None:
        response = httpx.post(
            address, json={"notice": body, "text": text, "language": lang}, timeout=config.timeout
        )
        response.raise_for_status()

    return send


def deliver_due(
    conn: Connection,
    config: OutboxConfig,
    now: datetime | None = None,
    senders: dict[str, Sender] | None = None,
    limit: int = 500,
) -> dict[str, int]:
    """Try every delivery that is due; returns counts of sent, retried and failed."""
    now = now or datetime.now(UTC)
    senders = senders or {"email": send_email(config), "webhook": send_webhook(config)}
    due = conn.execute(
        select(notice_deliveries, notices.c.body, notices.c.subject_id)
        .join(notices, notices.c.id == notice_deliveries.c.notice_id)
        .where(notice_deliveries.c.state == "pending", notice_deliveries.c.next_attempt_at <= now)
        .order_by(notice_deliveries.c.id)
        .limit(limit)
    ).all()
    counts = {"sent": 0, "retried": 0, "failed": 0}
    for d in due:
        lang = (
            conn.execute(
                select(subject_channels.c.language).where(
                    subject_channels.c.subject_id == d.subject_id, subject_channels.c.channel == d.channel
                )
            ).scalar()
            or "zh"
        )
        body = json.loads(d.body)
        attempts = int(d.attempts) + 1
        try:
            senders[d.channel](d.address, render(body, lang), body, lang)
        except Exception as exc:  # any transport error is a failed attempt, kept with its reason
            final = attempts >= config.max_attempts
            conn.execute(
                update(notice_deliveries)
                .where(notice_deliveries.c.id == d.id)
                .values(
                    attempts=attempts,
                    last_error=f"{type(exc).__name__}: {exc}"[:500],
                    state="failed" if final else "pending",
                    next_attempt_at=now + timedelta(minutes=2 ** (attempts - 1)),
                )
            )
            counts["failed" if final else "retried"] += 1
            continue
        conn.execute(
            update(notice_deliveries)
            .where(notice_deliveries.c.id == d.id)
            .values(attempts=attempts, state="sent", sent_at=now, last_error=None)
        )
        counts["sent"] += 1
    return counts
