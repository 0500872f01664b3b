"""What every request passes through: an id, limits, an access record, one log line.

- **Request id**: taken from ``X-Request-ID`` when sane, else made; echoed back.
- **Size**: a body larger than ``max_body_bytes`` is refused with 413 before
  it is read.
- **Saturation**: more than ``max_in_flight`` requests at once are answered
  503 with ``Retry-After`` instead of queueing without bound.
- **Rate**: each bearer token has a token bucket (``rate_per_minute``,
  bursts up to ``rate_burst``, by default a tenth of a minute's worth); over
  it, 429 with ``Retry-After``.
- **Access record**: every request, allowed or denied, becomes one row of
  the append-only ``access_log`` (who, role, operation, subject, purpose,
  outcome, time). Rows are written by a background writer in batches, from
  a queue of at most ``access_log_queue`` rows.
- **Log**: one structured JSON line per request (structlog).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import math
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credo.settings import Settings
from credo.store.db import Database
from credo.store.tables import access_log
from credo.store.upkeep import Upkeep

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ID_KEY = secrets.token_bytes(16)
_IDS = itertools.count()


def new_request_id() -> str:
    """32 hex digits: a keyed hash of (process, request number), unique and unguessable.

    Not ``uuid4``: it reads ``os.urandom`` per request, a system call that releases the GIL
    on the event loop, which then waits behind the server's other threads to get it back
    (as ``lists.checks.call_id`` found for check refs).
    """
    data = f"{os.getpid()}:{next(_IDS)}".encode()
    return hashlib.blake2b(data, key=_ID_KEY, digest_size=16).hexdigest()


log = structlog.get_logger("credo.http")


class LineSink:
    """A structlog logger that keeps lines in memory; a background thread writes them out.

    Why not structlog's ``PrintLogger``: it writes and flushes each line on the
    event loop, and the ``write`` system call releases the GIL, which the loop
    then waits to get back behind the server's busy threads. py-spy of a loaded
    server: 13 % of the event loop's samples in ``PrintLogger.msg``. Here a
    request costs a ``list.append``; lines reach ``stream`` (file descriptor 1 when None)
    within ``interval`` seconds, and at exit. The durable record of a request is
    its ``access_log`` row; a SIGKILL may lose the last ``interval`` of lines.

    >>> import io
    >>> sink = LineSink(io.StringIO())
    >>> sink.msg('{"event":"request"}'); sink.flush(); sink.stream.getvalue()
    '{"event":"request"}\\n'
    """

    def __init__(self, stream: Any = None, interval: float = 0.1) -> None:
        self.stream = stream
        self.interval = interval
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def msg(self, message: str) -> None:
        self._lines.append(message)  # atomic under the GIL; flush swaps the list
        if self._thread is None:
            self._start()

    log = debug = info = warn = warning = fatal = failure = err = error = critical = exception = msg

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            if not lines:
                return
            text = "\n".join(lines) + "\n"
            if self.stream is not None:
                self.stream.write(text)
                self.stream.flush()
                return
            # The process's stdout itself: ``sys.stdout`` may be swapped by then (a CLI runner
            # capturing a command's output must not receive the server's lines).
            data = memoryview(text.encode())
            while data:
                data = data[os.write(1, data) :]

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="log-lines", daemon=True)
            self._thread.start()
        atexit.register(self.flush)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except (OSError, ValueError):  # stdout closed (shutdown): the lines have nowhere to go
                continue


#: Where the request log lines go (tests point ``stream`` elsewhere and ``flush``).
LINES = LineSink()


def configure_logging() -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode()),
        ],
        logger_factory=lambda *_: LINES,
        cache_logger_on_first_use=True,
    )


@dataclass
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_in_flight: int = 64
    rate_per_minute: int = 60_000
    rate_burst: int = 0  # 0: a tenth of rate_per_minute

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            int(settings.max_body_bytes),
            int(settings.max_in_flight),
            int(settings.rate_per_minute),
            int(settings.rate_burst),
        )


@dataclass
class Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    per_minute: int
    burst: int = 0  # 0: a tenth of per_minute
    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, Bucket] = field(default_factory=dict)

    def take(self, key: str) -> float:
        """0 when allowed, else the seconds to wait."""
        capacity = float(self.burst) if self.burst > 0 else max(1.0, self.per_minute / 10)
        rate = self.per_minute / 60
        now = self.clock()
        bucket = self.buckets.setdefault(key, Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate


class AccessWriter(Upkeep):
    """Writes access records in batches from a bounded queue (never blocks a request)."""

    task = "access-log"

    def __init__(self, db: Database, flush_every: float = 0.2, capacity: int = 100_000) -> None:
        super().__init__(flush_every)
        self.db = db
        self.flush_every = flush_every
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=capacity)
        self.dropped = 0

    def put(self, row: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1  # counted and logged: overload must not take the server down

    def flush(self) -> int:
        rows: list[dict[str, Any]] = []
        while True:
            try:
                rows.append(self.queue.get_nowait())
            except queue.Empty:
                break
        if not rows:
            return 0
        try:
            with self.db.begin(shed=False) as conn:  # never shed: every request is recorded
                conn.execute(access_log.insert(), rows)
        except Exception as exc:
            # One row the database refuses must not take its batch with it: row by row, and
            # only a row refused on its own is dropped (and counted).
            log.error("access log batch refused; writing row by row", error=str(exc)[:200])
            for row in rows:
                try:
                    with self.db.begin(shed=False) as conn:
                        conn.execute(access_log.insert(), [row])
                except Exception:
                    self.dropped += 1
        return len(rows)

    def round(self) -> int:
        return self.flush()  # a failed round leaves its rows queued: the next one writes them

    def stop(self, timeout: float | None = 5) -> None:
        super().stop(timeout)
        self.flush()


def _problem(
    status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]]
) -> tuple[Message, Message]:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def _printable(text: str) -> str:
    """A request's own text as the access log keeps it: NUL (which PostgreSQL refuses) escaped."""
    return text.replace("\x00", "\\x00")


class GuardMiddleware:
    def __init__(
        self, app: ASGIApp, writer: AccessWriter | None, limits: Limits, log_requests: bool = True
    ) -> None:
        self.app = app
        self.writer = writer
        self.limits = limits
        self.log_requests = log_requests
        self.limiter = RateLimiter(limits.rate_per_minute, limits.rate_burst)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status = [500]
        echo = [(b"x-request-id", request_id.encode())]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), *echo]}
            await send(message)

        async def refuse(code: int, title: str, detail: str, extra: list[tuple[bytes, bytes]]) -> None:
            start, body = _problem(code, title, detail, [*extra, *echo])
            status[0] = code
            await send(start)
            await send(body)

        auth = headers.get(b"authorization", b"")
        key = hashlib.sha256(auth).hexdigest()[:16] if auth else f"ip:{(scope.get('client') or ('?',))[0]}"
        length = headers.get(b"content-length")
        try:
            if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
                await refuse(
                    413,
                    "Request too large",
                    f"body: at most {self.limits.max_body_bytes} bytes, got {int(length)}",
                    [],
                )
            elif self.in_flight >= self.limits.max_in_flight:
                await refuse(
                    503, "Server busy", "too many requests in flight; retry shortly", [(b"retry-after", b"1")]
                )
            elif (wait := self.limiter.take(key)) > 0:
                await refuse(
                    429,
                    "Too many requests",
                    f"rate limit of {self.limits.rate_per_minute} per minute",
                    [(b"retry-after", str(math.ceil(wait)).encode())],
                )
            else:
                self.in_flight += 1
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    self.in_flight -= 1
        finally:
            self._record(scope, request_id, status[0], time.perf_counter() - started)

    def _record(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        state = scope.get("state") or {}
        principal = state.get("principal")
        route = scope.get("route")
        operation = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
        params = scope.get("path_params") or {}
        subject = params.get("subject") or (
            None if principal is None or principal.subject_id is None else f"#{principal.subject_id}"
        )
        row = {
            "at": datetime.now(UTC),
            "request_id": request_id,
            "token_id": None if principal is None else principal.token_id,
            "role": "anonymous" if principal is None else principal.role.value,
            "operation": _printable(operation)[:200],
            "subject": None if subject is None else _printable(str(subject))[:80],
            "purpose": state.get("purpose"),
            "status": status,
            "outcome": "allowed"
            if status < 400
            else "denied"
            if status in (401, 403, 404)
            else "refused"
            if status < 500
            else "error",
        }
        if self.writer is not None and not scope["path"].startswith(("/static", "/metrics", "/healthz")):
            self.writer.put(row)
        if self.log_requests:
            log.info(
                "request",
                request_id=request_id,
                op=operation,
                status=status,
                role=row["role"],
                ms=round(seconds * 1000, 2),
            )
