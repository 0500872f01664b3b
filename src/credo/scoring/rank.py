"""The online rank, kept per process: every scored subject's score, refreshed subject by subject.

A subject's rank is the share of its scheme's scored subjects whose score is
strictly lower, at the same valid date *t* and knowledge time *k*
(docs/scoring.md). Computed from scratch it needs the definition over the
whole scheme for every request; :class:`RankCache` keeps, per scheme, valid
date and catalog, every scored subject's score as of some knowledge time,
and brings it forward to the *k* asked by recomputing only the subjects
whose score may have changed:

* **new rows** -- records with a sequence number above the highest seen,
  appeals not seen yet, and open appeals that have since been decided (the
  ledger is append-only and numbered in turn under the log lock; an appeal
  is inserted once and decided once);
* **time** -- subjects with a row instant (``recorded_at``, ``filed_at``,
  ``deadline_at``, ``decided_at``) between the cached *k* and the one asked:
  the definition depends on *k* only through ``instant <= k``, so a subject
  without such an instant scores the same at both.

Each dirty subject is rescored by the same definition over its own rows
(:func:`credo.scoring.online.run_live` with ``subjects=``), which is exact
because every rule is per subject. The first computation of a (scheme, day)
runs DuckDB over the ledger pulled as Arrow (:func:`credo.scoring.batch.
rescore_arrow`, the batch engine the property tests hold equal to the
online one). ``rank = below / scored`` is then two counts from a histogram
of scores: the same integers the definition divides, so the same double.

Whatever the cache cannot answer exactly -- a *k* before the entry was built,
more dirty subjects than a rebuild would cost -- it declines (``None``) and
the caller runs the whole-scheme statement. docs/scoring.md ("The online
rank") gives the argument in full.

>>> h = ScoreHistogram([900, 950, 950, 1000])
>>> h.below(950), h.below(951), h.total
(1, 3, 4)
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any, Final, Literal

import pyarrow as pa
from sqlalchemy import Connection, func, or_, select

from credo.catalog.registry import Registry
from credo.ledger.export import ledger_tables
from credo.scoring.batch import DuckDBOptions, rescore_arrow
from credo.scoring.online import run_live
from credo.scoring.relations import Evaluation, catalog_relations, from_us, to_us
from credo.store.db import one_of
from credo.store.tables import appeals, records

#: How long before its build an entry still answers: a request that took its
#: "now" a moment before another request built the entry is not sent to the
#: slow path. Row instants in this window are kept as events at the build.
WINDOW: Final = timedelta(minutes=15)
#: Dirty subjects are rescored one by one unless there are more than this
#: many and rescoring them would take longer than the entry's build took
#: (seconds per subject as measured): then the entry is rebuilt (or, for a
#: knowledge time it does not keep, the caller takes the slow path).
MIN_INCREMENTAL: Final = 50
#: The first guess of seconds per rescored subject, until one is measured.
SECONDS_PER_SUBJECT: Final = 0.001
#: Subjects per rescoring statement.
CHUNK: Final = 1000
#: (scheme, valid date, catalog) entries kept; the least recently used goes.
MAX_ENTRIES: Final = 16

Builder = Literal["duckdb", "live"]
Key = tuple[str, date, str]
#: (highest record seq, appeals, decided appeals): each only grows.
Version = tuple[int, int, int]


class ScoreHistogram:
    """How many scored subjects have each score; ``below(s)`` counts those strictly lower."""

    def __init__(self, scores: Iterable[int] = ()) -> None:
        self._counts: Counter[int] = Counter(scores)
        self.total = sum(self._counts.values())
        self._keys: list[int] | None = None
        self._below: list[int] = []

    def add(self, score: int) -> None:
        self._counts[score] += 1
        self.total += 1
        self._keys = None

    def remove(self, score: int) -> None:
        self._counts[score] -= 1
        if self._counts[score] == 0:
            del self._counts[score]
        self.total -= 1
        self._keys = None

    def below(self, score: int) -> int:
        if self._keys is None:
            self._keys = sorted(self._counts)
            self._below = [0, *accumulate(self._counts[k] for k in self._keys)]
        return self._below[bisect_left(self._keys, score)]


@dataclass
class _State:
    """The scores of one (scheme, valid date, catalog) at knowledge time ``known_us``."""

    known_us: int
    #: row instants after this are kept in ``events``; no answer for an earlier k
    floor_us: int
    max_seq: int
    seen_appeals: set[int]
    max_appeal: int
    #: appeals undecided in the rows read: id -> subject
    open_appeals: dict[int, int]
    scores: dict[int, int]
    histogram: ScoreHistogram
    #: how long the build took
    build_seconds: float = 0.0
    #: (instant in microseconds, subject) of every row instant after ``floor_us``
    events: list[tuple[int, int]] = field(default_factory=list)
    events_sorted: bool = False

    def version(self) -> Version:
        seen = len(self.seen_appeals)
        return (self.max_seq, seen, seen - len(self.open_appeals))

    def note(self, instant: datetime | int | None, subject: int) -> None:
        if instant is None:
            return
        us = instant if isinstance(instant, int) else to_us(instant)
        if us > self.floor_us:
            self.events.append((us, subject))
            self.events_sorted = False

    def moved(self, a: int, b: int) -> set[int]:
        """Subjects with a row instant in ``(min(a, b), max(a, b)]``."""
        lo, hi = min(a, b), max(a, b)
        if lo == hi:
            return set()
        if not self.events_sorted:
            self.events.sort()
            self.events_sorted = True
        start = bisect_right(self.events, lo, key=lambda e: e[0])
        end = bisect_right(self.events, hi, key=lambda e: e[0])
        return {s for _, s in self.events[start:end]}

    def appeal_row(self, row: Sequence[Any], dirty: set[int]) -> None:
        """Take in one appeal row; a new appeal or a new decision makes its subject dirty."""
        appeal_id, subject, filed, deadline, decided = (*row,)
        appeal_id, subject = int(appeal_id), int(subject)
        if appeal_id not in self.seen_appeals:
            self.seen_appeals.add(appeal_id)
            self.max_appeal = max(self.max_appeal, appeal_id)
            if decided is None:
                self.open_appeals[appeal_id] = subject
            for instant in (filed, deadline, decided):
                self.note(instant, subject)
            dirty.add(subject)
        elif decided is not None and self.open_appeals.pop(appeal_id, None) is not None:
            self.note(decided, subject)
            dirty.add(subject)

    def apply(self, found: Mapping[int, int | None]) -> None:
        for subject, score in found.items():
            old = self.scores.pop(subject, None)
            if old is not None:
                self.histogram.remove(old)
            if score is not None:
                self.scores[subject] = score
                self.histogram.add(score)

    def rank(self, subject: int, score: int, overlay: Mapping[int, int | None]) -> float | None:
        """``below / scored`` for ``score``, with ``overlay`` (scores at another k) in place of the kept ones.

        None when the kept score of ``subject`` itself is not ``score``: the
        caller read another state of the ledger than the cache holds.
        """
        mine = overlay[subject] if subject in overlay else self.scores.get(subject)
        if mine != score:
            return None
        below, total = self.histogram.below(score), self.histogram.total
        for other, new in overlay.items():
            old = self.scores.get(other)
            if old is not None:
                total -= 1
                below -= old < score
            if new is not None:
                total += 1
                below += new < score
        return below / total


@dataclass
class _Entry:
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: _State | None = None


def _version(conn: Connection) -> Version:
    row = conn.execute(
        select(
            select(func.coalesce(func.max(records.c.seq), 0)).scalar_subquery(),
            select(func.count()).select_from(appeals).scalar_subquery(),
            select(func.count(appeals.c.decided_at)).scalar_subquery(),
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


_APPEAL_COLUMNS: Final = (
    appeals.c.id,
    appeals.c.subject_id,
    appeals.c.filed_at,
    appeals.c.deadline_at,
    appeals.c.decided_at,
)


class RankCache:
    """Every scored subject's score per (scheme, valid date, catalog), for exact ranks at once.

    One per process (``Runtime.ranks``), shared by the API's threads, the web
    pages and the CLI. Give it only connections in read transactions: what a
    connection sees is taken in as the ledger's state.
    """

    def __init__(
        self,
        *,
        builder: Builder = "duckdb",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        window: timedelta = WINDOW,
        max_entries: int = MAX_ENTRIES,
        duckdb: DuckDBOptions | None = None,
    ) -> None:
        self.builder: Builder = builder
        self.clock = clock
        self.window_us = int(window / timedelta(microseconds=1))
        self.max_entries = max_entries
        self.duckdb = duckdb or DuckDBOptions()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        #: builds, rescored (subjects), answered, declined
        self.counts: Counter[str] = Counter()
        self._per_subject = SECONDS_PER_SUBJECT

    def rank(
        self, conn: Connection, catalogs: Registry, here: Evaluation, subject_id: int, score: int
    ) -> float | None:
        """The rank of scored ``subject_id`` whose score at ``here`` is ``score``; None: use the slow path."""
        key = (here.scheme, here.as_of, catalogs.digest)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        with entry.lock:
            try:
                found = self._rank(entry, conn, catalogs, here, subject_id, score)
            except BaseException:
                entry.state = None  # half brought forward: start again next time
                raise
        self._count("answered" if found is not None else "declined")
        return found

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def _rank(
        self,
        entry: _Entry,
        conn: Connection,
        catalogs: Registry,
        here: Evaluation,
        subject_id: int,
        score: int,
    ) -> float | None:
        k, now = to_us(here.known_at), to_us(self.clock())
        state = entry.state
        if state is None:
            if k < now - self.window_us:
                return None  # reproducing the past: the exact slow path, no entry for it
            state = entry.state = self._build(conn, catalogs, here, min(k, now))
        if k < state.floor_us:
            return None
        version = _version(conn)
        if all(a >= b for a, b in zip(version, state.version(), strict=True)):
            # The connection sees at least what the cache holds: bring it forward.
            dirty = self._changes(conn, state, version) if version != state.version() else set()
            target = max(state.known_us, min(k, now))
            dirty |= state.moved(state.known_us, target)
            if self._rebuild_is_cheaper(state, len(dirty)):
                state = entry.state = self._build(conn, catalogs, here, target)
            elif dirty:
                state.apply(self._scores(conn, catalogs, here, target, dirty))
            state.known_us = target
        # else: an older snapshot than the cache's (a reader that began earlier);
        # it changes nothing, and the answer is checked against its own score.
        overlay: dict[int, int | None] = {}
        moved = state.moved(k, state.known_us)
        if self._rebuild_is_cheaper(state, len(moved)):
            return None
        if moved:
            overlay = self._scores(conn, catalogs, here, k, moved)
        return state.rank(subject_id, score, overlay)

    def _rebuild_is_cheaper(self, state: _State, dirty: int) -> bool:
        return dirty > MIN_INCREMENTAL and dirty * self._per_subject > state.build_seconds

    def _changes(self, conn: Connection, state: _State, version: Version) -> set[int]:
        """Subjects touched by rows the cache has not taken in yet; takes them in."""
        dirty: set[int] = set()
        if version[0] > state.max_seq:
            query = select(records.c.seq, records.c.subject_id, records.c.recorded_at).where(
                records.c.seq > state.max_seq
            )
            for seq, subject, recorded in conn.execute(query):
                state.max_seq = max(state.max_seq, int(seq))
                state.note(recorded, int(subject))
                dirty.add(int(subject))
        if version[1:] != state.version()[1:]:
            watch = appeals.c.id > state.max_appeal
            if state.open_appeals:
                watch = or_(watch, one_of(conn, appeals.c.id, list(state.open_appeals)))
            for row in conn.execute(select(*_APPEAL_COLUMNS).where(watch)):
                state.appeal_row(row, dirty)
            if len(state.seen_appeals) < version[1]:
                # An appeal numbered below one already seen committed late
                # (PostgreSQL hands out ids before commit): read them all.
                for row in conn.execute(select(*_APPEAL_COLUMNS)):
                    state.appeal_row(row, dirty)
        return dirty

    def _scores(
        self, conn: Connection, catalogs: Registry, here: Evaluation, k: int, subjects: set[int]
    ) -> dict[int, int | None]:
        """The scores of ``subjects`` at knowledge time ``k`` (None: not scored), by the definition."""
        started = time.perf_counter()
        question = Evaluation(1, here.scheme, here.as_of, from_us(k))
        found: dict[int, int | None] = dict.fromkeys(subjects)
        ordered = sorted(subjects)
        for start in range(0, len(ordered), CHUNK):
            chunk = ordered[start : start + CHUNK]
            for row in run_live(conn, catalogs, "scores", [question], subjects=chunk):
                if int(row["scored"]) == 1:
                    found[int(row["subject_id"])] = int(row["score"])
        self._count("rescored", len(subjects))
        if len(subjects) >= MIN_INCREMENTAL // 2:  # enough to measure beside the statement's own cost
            self._per_subject = (time.perf_counter() - started) / len(subjects)
        return found

    def _build(self, conn: Connection, catalogs: Registry, here: Evaluation, k: int) -> _State:
        """Every scored subject of the scheme at ``k``, and what the ledger held when they were scored."""
        started = time.perf_counter()
        rec, app = ledger_tables(conn)
        question = Evaluation(1, here.scheme, here.as_of, from_us(k))
        scores: dict[int, int]
        if self.builder == "duckdb":
            table = rescore_arrow(rec, app, catalog_relations(catalogs), [question], self.duckdb)
            scores = dict(zip(table["subject_id"].to_pylist(), table["score"].to_pylist(), strict=True))
        else:
            rows = run_live(conn, catalogs, "scores", [question])
            scores = {int(r["subject_id"]): int(r["score"]) for r in rows if int(r["scored"]) == 1}
        seqs = rec["seq"].to_pylist()
        state = _State(
            known_us=k,
            floor_us=k - self.window_us,
            max_seq=max(seqs, default=0),
            seen_appeals=set(),
            max_appeal=0,
            open_appeals={},
            scores=scores,
            histogram=ScoreHistogram(scores.values()),
        )
        for instant, subject in zip(_micros(rec["recorded_at"]), rec["subject_id"].to_pylist(), strict=True):
            state.note(instant, subject)
        columns = [app[c].to_pylist() for c in ("id", "subject_id")]
        instants = [_micros(app[c]) for c in ("filed_at", "deadline_at", "decided_at")]
        for row in zip(*columns, *instants, strict=True):
            state.appeal_row(row, set())
        state.build_seconds = time.perf_counter() - started
        self._count("builds")
        return state


def _micros(column: pa.ChunkedArray) -> list[int | None]:
    """Microseconds since the epoch of a UTC timestamp column (None where null)."""
    values: list[int | None] = column.cast(pa.int64()).to_pylist()
    return values
