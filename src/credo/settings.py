"""One declared table of settings, read from ``CREDO_*`` environment variables.

Every setting has a type, a default and help text; ``docs/settings.md`` lists
them all and ``tests/test_docs.py`` fails when one is missing there.

>>> s = load_settings({"CREDO_PORT": "9000"})
>>> s.port
9000
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: The repository root when credo runs from a checkout (editable install):
#: shipped catalogs live there, beside ``src/``.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str
    #: The smallest value allowed (limits: a negative wait or queue would mean "unbounded").
    minimum: int | None = None

    @property
    def env(self) -> str:
        return "CREDO_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        str,
        "sqlite:///credo.db",
        "SQLAlchemy URL of the registry database. The default is a SQLite file "
        "credo.db in the working directory; PostgreSQL: postgresql+psycopg://user@host/db.",
    ),
    Setting("host", str, "127.0.0.1", "Address `credo serve` listens on."),
    Setting("port", int, 8000, "Port `credo serve` listens on."),
    Setting("workers", int, 1, "Number of API worker processes for `credo serve`."),
    Setting(
        "index_dir",
        str,
        "",
        "Folder of the check index snapshot, memory-mapped and shared by the server's workers; "
        "empty: each worker keeps its own in memory (`credo serve --workers N`, N > 1, then makes "
        "a temporary folder for its workers).",
    ),
    Setting(
        "signing_key_path",
        Path,
        Path("keys/credo-log.key"),
        "Ed25519 key that signs tree heads of the Merkle log; created on first use (mode 0600).",
    ),
    Setting(
        "log_origin",
        str,
        "credo.example/log",
        "Origin line of signed tree heads (C2SP checkpoint): names this registry's log.",
    ),
    Setting(
        "timezone",
        str,
        "Asia/Shanghai",
        "Timezone in which dates of acts and deadlines are counted, unless a "
        "jurisdiction's policy says otherwise.",
    ),
    Setting(
        "catalog_dir",
        Path,
        PROJECT_ROOT / "catalogs",
        "Folder of catalog TOML files loaded at start (every *.toml directly inside it).",
    ),
    Setting("max_batch", int, 10_000, "Largest number of records accepted in one API batch.", minimum=1),
    Setting(
        "scheduler_interval",
        int,
        30,
        "Seconds between runs of the server's clock (overdue appeals, daily listing refresh, "
        "notice delivery); 0 turns it off (run `credo tick` from cron instead).",
    ),
    Setting(
        "max_body_bytes", int, 16 * 1024 * 1024, "Largest request body accepted (413 above it).", minimum=0
    ),
    Setting(
        "max_in_flight",
        int,
        64,
        "Requests served at once per worker; beyond it 503 with Retry-After.",
        minimum=0,
    ),
    Setting(
        "rate_per_minute",
        int,
        60_000,
        "Requests per minute per bearer token; beyond it 429 with Retry-After.",
        minimum=1,
    ),
    Setting(
        "rate_burst",
        int,
        0,
        "Requests a token may send at once before rate_per_minute paces it (the size of its bucket); "
        "0: a tenth of rate_per_minute.",
        minimum=0,
    ),
    Setting(
        "token_cache_seconds",
        float,
        1.0,
        "Seconds an API worker answers a bearer token from memory after reading it from the "
        "database: `credo token revoke` takes effect on a running server within this time. "
        "0: every request reads its token (revocation at once, a database read per request).",
        minimum=0,
    ),
    Setting(
        "max_waiting_writers",
        int,
        16,
        "SQLite: write transactions of one process that may queue for the single database writer; "
        "one more is answered 503 with Retry-After at once.",
        minimum=0,
    ),
    Setting(
        "ingest_processes",
        int,
        1,
        "Processes beside each API worker that check and append agencies' batches, so that a "
        "batch's Python never takes the worker's GIL from the checks it answers; 0: batches run "
        "on the worker's own threads (always so for an in-memory database).",
        minimum=0,
    ),
    Setting(
        "worker_threads",
        int,
        16,
        "Requests an API worker serves at once in its thread pool (each holds at most one database "
        "connection); its connection pool keeps this many connections open, plus 8 for its "
        "background threads. More threads than that only queue for the two CPUs and the GIL.",
        minimum=1,
    ),
    Setting(
        "checkpoint_interval",
        float,
        1.0,
        "SQLite: seconds between a server worker's WAL checkpoints, run on a background thread so "
        "that no request's commit copies the WAL into the database file; 0: each commit that takes "
        "the WAL past 1,000 pages checkpoints it itself (SQLite's default). Past 64 MiB of WAL the "
        "checkpointer holds the writer for one short checkpoint, so that the next commit writes "
        "the WAL from its start again (under back-to-back commits it grew without end).",
        minimum=0,
    ),
    Setting(
        "check_index_merge_interval",
        float,
        1.0,
        "Seconds between a server worker's rounds of upkeep of the check log's subject index, "
        "on a background thread so that no check's commit waits for it. PostgreSQL: merges "
        "the GIN pending list (0: the insert that fills the list merges it, PostgreSQL's "
        "default). SQLite: indexes the calls logged since the last round (0: none are "
        "indexed; a subject's calls logged since are read one by one).",
        minimum=0,
    ),
    Setting(
        "max_writer_wait",
        float,
        5.0,
        "SQLite: seconds a queued write transaction waits for the database writer before it is "
        "answered 503 with Retry-After (nothing half-done).",
        minimum=0,
    ),
    Setting(
        "access_log_queue",
        int,
        100_000,
        "Access records waiting for the background writer; beyond it a record is dropped (and "
        "counted in the log), never the request.",
        minimum=1,
    ),
    Setting("log_requests", int, 1, "1: one structured JSON log line per request on stdout; 0: none."),
    Setting("smtp_host", str, "127.0.0.1", "SMTP server that delivers notices by email."),
    Setting("smtp_port", int, 25, "Port of the SMTP server."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class SettingsError(ValueError):
    """A setting has a value of the wrong type; the message names the variable."""


def _parse(setting: Setting, raw: str) -> Any:
    parsers: dict[type, Callable[[str], Any]] = {int: int, float: float, str: str, Path: Path}
    try:
        value = parsers[setting.type](raw)
    except ValueError as exc:
        raise SettingsError(f"{setting.env}: expected {setting.type.__name__}, got {raw!r}") from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{setting.env}: expected a finite number, got {raw!r}")
    if setting.minimum is not None and value < setting.minimum:
        raise SettingsError(f"{setting.env}: at least {setting.minimum}, got {raw!r}")
    if setting.name == "timezone":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"{setting.env}: unknown IANA timezone {raw!r}") from exc
    return value


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # pickle asks for these before ``values`` is set
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Settings:
        unknown = set(changes) - set(_BY_NAME)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return Settings({**self.values, **changes})

    # Typed accessors for the settings the code reads most.
    @property
    def database_url(self) -> str:
        return str(self.values["database_url"])

    @property
    def catalog_dir(self) -> Path:
        return Path(self.values["catalog_dir"])

    @property
    def signing_key_path(self) -> Path:
        return Path(self.values["signing_key_path"])


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values = {s.name: _parse(s, env[s.env]) if s.env in env else s.default for s in SETTINGS}
    return Settings(values)
