"""The online rank from the per-process cache equals the definition over the whole scheme.

Every test compares, for every scored subject of the scheme, the cached rank
with the ``ranked`` output of the definition run over the whole live ledger
in one statement (the slow path), after each kind of change the cache must
notice: new records, retractions, appeals filed, decided and gone overdue
(knowledge time moved), a new valid date, another catalog; and Hypothesis
histories of ingests on generated worlds (tests/scoring/worlds.py).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ledgers import LedgerBuilder
from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.pool import StaticPool
from worlds import universes

from credo.catalog.registry import Registry, load_catalogs
from credo.scoring.online import run_live, score_subject
from credo.scoring.rank import WINDOW, RankCache, ScoreHistogram
from credo.scoring.relations import Evaluation, to_us
from credo.settings import PROJECT_ROOT
from credo.store import migrate
from credo.store.db import Database, make_engine
from credo.store.tables import agencies, appeals, metadata, records, subjects

SCHEME = "CN-SD-RC"
T = date(2024, 6, 1)
K0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The cache's "now", moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def full_ranks(
    conn: Connection, catalogs: Registry, scheme: str, t: date, k: datetime
) -> dict[int, tuple[int, float]]:
    """Every scored subject's (score, rank) by the definition over the whole scheme."""
    rows = run_live(conn, catalogs, "ranked", [Evaluation(1, scheme, t, k)])
    return {int(r["subject_id"]): (int(r["score"]), float(r["rank"])) for r in rows if int(r["scored"]) == 1}


def check(
    conn: Connection, catalogs: Registry, cache: RankCache, k: datetime, *, t: date = T, scheme: str = SCHEME
) -> dict[int, tuple[int, float]]:
    """The cache's rank of every scored subject is the slow path's."""
    full = full_ranks(conn, catalogs, scheme, t, k)
    here = Evaluation(1, scheme, t, k)
    cached = {s: cache.rank(conn, catalogs, here, s, score) for s, (score, _) in full.items()}
    assert cached == {s: rank for s, (_, rank) in full.items()}
    return full


def population() -> LedgerBuilder:
    """Six Rongcheng subjects with different files (ranks 0 to 5/6)."""
    b = LedgerBuilder()
    b.incident("s0-a", "CN-SD-RC.CONTRACT-BREACH", "2024-03-01", subject="s0")
    b.incident("s1-a", "CN-SD-RC.SUED-IN-BREACH", "2024-03-01", subject="s1")
    b.incident("s2-a", "CN-SD-RC.UTILITY-THEFT", "2024-03-02", subject="s2")
    b.incident("s3-a", "CN-SD-RC.HEROIC-ACT", "2024-04-01", subject="s3")
    b.incident("s4-a", "CN-SD-RC.TRAFFIC-TICKET", "2024-04-01", subject="s4")
    b.incident("s4-b", "CN-SD-RC.CONTRACT-BREACH", "2024-04-02", subject="s4")
    b.incident("s5-a", "CN-SD-RC.UTILITY-LATE-FEES", "2024-05-01", subject="s5")
    return b


def push(conn: Connection, catalogs: Registry, b: LedgerBuilder, done: list[int]) -> None:
    """Write what ``b`` gained since the last push: new subjects, records (in sequence order), appeals."""
    LedgerBuilder(first_seq=b.first_seq, records=b.records[done[0]:], appeals=b.appeals[done[1]:],
                  subjects=b.subjects, agency=b.agency).write(conn, catalogs)
    done[:] = [len(b.records), len(b.appeals)]


def decide(conn: Connection, appeal_id: int, at: datetime, outcome: str) -> None:
    conn.execute(update(appeals).where(appeals.c.id == appeal_id).values(decided_at=at, outcome=outcome))


@pytest.fixture
def world(db: Database, catalogs: Registry) -> Iterator[tuple[Connection, LedgerBuilder, list[int]]]:
    b = population()
    done = [0, 0]
    with db.begin() as conn:
        push(conn, catalogs, b, done)
        yield conn, b, done


World = tuple[Connection, LedgerBuilder, list[int]]


def test_the_histogram_counts_strictly_lower_scores() -> None:
    h = ScoreHistogram([950, 980, 980, 1000])
    assert [h.below(s) for s in (900, 950, 980, 990, 1000, 1001)] == [0, 0, 1, 3, 3, 4]
    h.remove(980)
    h.add(900)
    assert (h.below(950), h.below(981), h.total) == (1, 3, 4)


def test_a_new_record_a_new_subject_and_a_retraction(world: World, catalogs: Registry) -> None:
    conn, b, done = world
    clock = Clock(K0)
    cache = RankCache(clock=clock)
    before = check(conn, catalogs, cache, K0)

    soon = K0 + timedelta(hours=1)
    b.incident("s1-b", "CN-SD-RC.UTILITY-THEFT", "2024-05-20", subject="s1", recorded_at=soon)
    b.incident("s9-a", "CN-SD-RC.BANK-ARREARS", "2024-05-21", subject="s9", recorded_at=soon)
    push(conn, catalogs, b, done)
    clock.now = k = K0 + timedelta(hours=2)
    after = check(conn, catalogs, cache, k)
    assert after[b.subjects["s1"]][0] == before[b.subjects["s1"]][0] - 60
    assert b.subjects["s9"] in after

    b.retraction("s0-a-r", "s0-a", "2024-05-25", recorded_at=k + timedelta(minutes=5))
    push(conn, catalogs, b, done)
    clock.now = k = k + timedelta(hours=1)
    retracted = check(conn, catalogs, cache, k)
    assert b.subjects["s0"] not in retracted  # its only record is void: no longer scored
    # One build; afterwards only the touched subjects were rescored.
    assert (cache.counts["builds"], cache.counts["declined"]) == (1, 0)
    assert cache.counts["rescored"] == 3


def test_appeals_filed_decided_and_overdue(world: World, catalogs: Registry) -> None:
    conn, b, done = world
    clock = Clock(K0)
    cache = RankCache(clock=clock)
    check(conn, catalogs, cache, K0)
    s2 = b.subjects["s2"]

    filed = K0 + timedelta(hours=1)
    theft = b.appeal("s2-a", filed_at=filed, deadline_at=filed + timedelta(days=3))
    push(conn, catalogs, b, done)
    clock.now = k = K0 + timedelta(hours=2)
    assert check(conn, catalogs, cache, k)[s2][0] == 940  # pending: the record still counts

    # Nothing new in the database; the deadline passes, the record is suspended.
    clock.now = k = filed + timedelta(days=3, seconds=1)
    assert s2 not in check(conn, catalogs, cache, k)  # its only record is suspended: not scored

    # A late decision (upheld) ends the suspension from the moment it is made.
    decide(conn, theft, k + timedelta(hours=1), "upheld")
    clock.now = k = k + timedelta(hours=2)
    assert check(conn, catalogs, cache, k)[s2][0] == 940

    # An appeal decided at once (overturned) voids the record.
    s4_before = full_ranks(conn, catalogs, SCHEME, T, k)[b.subjects["s4"]][0]
    breach = b.appeal("s4-b", filed_at=k + timedelta(minutes=1), deadline_at=k + timedelta(days=30),
                      decided_at=k + timedelta(minutes=2), outcome="overturned")
    push(conn, catalogs, b, done)
    clock.now = k = k + timedelta(minutes=3)
    ranks = check(conn, catalogs, cache, k)
    assert ranks[b.subjects["s4"]][0] == s4_before + 20  # the breach no longer counts
    assert breach in cache_state_appeals(cache)
    assert (cache.counts["builds"], cache.counts["declined"]) == (1, 0)


def cache_state_appeals(cache: RankCache) -> set[int]:
    (entry,) = cache._entries.values()
    assert entry.state is not None
    return entry.state.seen_appeals


def test_a_new_day_and_another_catalog_are_other_entries(world: World, catalogs: Registry,
                                                          tmp_path: Path) -> None:
    conn, _, _ = world
    cache = RankCache(clock=Clock(K0))
    check(conn, catalogs, cache, K0)
    # Two years on, the breaches are rectified: another day, another entry.
    later = check(conn, catalogs, cache, K0, t=date(2026, 6, 1))
    assert later != check(conn, catalogs, cache, K0)
    assert cache.counts["builds"] == 2

    shipped = shutil.ignore_patterns("examples")
    shutil.copytree(PROJECT_ROOT / "catalogs", tmp_path / "catalogs", ignore=shipped)
    rongcheng = tmp_path / "catalogs" / "cn-sd-rc.toml"
    rongcheng.write_text(rongcheng.read_text().replace("points = -20\n", "points = -70\n", 1))
    changed, errors = load_catalogs([tmp_path / "catalogs"])
    assert changed is not None, errors
    assert changed.digest != catalogs.digest
    other = check(conn, changed, cache, K0)
    assert other != check(conn, catalogs, cache, K0)  # the breach now weighs more
    assert cache.counts["builds"] == 3


def test_knowledge_times_before_and_after_the_cached_one(world: World, catalogs: Registry,
                                                         runtime: Any) -> None:
    conn, b, done = world
    clock = Clock(K0 + timedelta(hours=1))
    cache = RankCache(clock=clock)
    b.incident("s3-b", "CN-SD-RC.FRAUD-COUNTERFEIT", "2024-05-30", subject="s3",
               recorded_at=K0 + timedelta(minutes=55))
    b.incident("s5-b", "CN-SD-RC.UTILITY-THEFT", "2024-05-30", subject="s5",
               recorded_at=K0 + timedelta(days=2))  # recorded "in the future"
    push(conn, catalogs, b, done)
    check(conn, catalogs, cache, clock.now)
    # A moment earlier (a request that took its "now" before the build): s3's record not known yet.
    assert K0 + timedelta(minutes=50) > clock.now - WINDOW
    check(conn, catalogs, cache, K0 + timedelta(minutes=50))
    # Later than the clock: answered without moving the cache past "now".
    check(conn, catalogs, cache, K0 + timedelta(days=3))
    (entry,) = cache._entries.values()
    assert entry.state is not None and entry.state.known_us <= to_us(clock.now)
    assert (cache.counts["builds"], cache.counts["declined"]) == (1, 0)

    # Long before: the cache declines and score_subject takes the exact slow path.
    past = K0 - timedelta(days=1)
    s1 = b.subjects["s1"]
    assert cache.rank(conn, catalogs, Evaluation(1, SCHEME, T, past), s1, 950) is None
    with_cache = score_subject(conn, catalogs, s1, SCHEME, as_of=T, known_at=past, ranks=cache)
    without = score_subject(conn, catalogs, s1, SCHEME, as_of=T, known_at=past)
    assert with_cache.as_dict() == without.as_dict() and without.rank is not None
    # The runtime has one cache for the API, web pages and CLI.
    assert runtime.ranks is runtime.ranks


def test_many_dirty_subjects_rebuild_the_entry(world: World, catalogs: Registry) -> None:
    """Past the point where rescoring one by one costs more than a build, the entry is rebuilt."""
    conn, b, done = world
    clock = Clock(K0)
    cache = RankCache(clock=clock)
    check(conn, catalogs, cache, K0)
    cache._per_subject = 10.0  # as if each subject took longer than the whole build
    later = K0 + timedelta(days=1)
    for n in range(120):
        b.incident(f"many-{n}", "CN-SD-RC.BANK-ARREARS", "2024-05-20", subject=f"m{n}",
                   recorded_at=later if n % 2 else K0 + timedelta(minutes=1))
    push(conn, catalogs, b, done)
    clock.now = K0 + timedelta(hours=1)
    check(conn, catalogs, cache, clock.now)
    assert (cache.counts["builds"], cache.counts["rescored"]) == (2, 0)
    # A knowledge time past the clock with as many moved subjects: the slow path answers.
    s1 = b.subjects["s1"]
    ahead = Evaluation(1, SCHEME, T, later)
    assert cache.rank(conn, catalogs, ahead, s1, full_ranks(conn, catalogs, SCHEME, T, later)[s1][0]) is None
    report = score_subject(conn, catalogs, s1, SCHEME, as_of=T, known_at=later, ranks=cache)
    assert report.rank == full_ranks(conn, catalogs, SCHEME, T, later)[s1][1]


# ---------------------------------------------------------------------------
# Several connections: older snapshots and threads (SQLite file, WAL)
# ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_file(tmp_path: Path, catalogs: Registry) -> Iterator[Database]:
    database = Database(make_engine(f"sqlite:///{tmp_path / 'rank.db'}"))
    with database.begin() as conn:
        migrate.upgrade(conn)
    yield database
    database.dispose()


def test_a_reader_with_an_older_snapshot_changes_nothing(sqlite_file: Database, catalogs: Registry) -> None:
    db = sqlite_file
    b, done = population(), [0, 0]
    filed = K0 - timedelta(hours=2)
    b.appeal("s2-a", filed_at=filed, deadline_at=K0 + timedelta(hours=6))
    with db.begin() as conn:
        push(conn, catalogs, b, done)
    clock = Clock(K0)
    cache = RankCache(clock=clock)
    with db.read() as conn:
        check(conn, catalogs, cache, K0)
    with db.read() as old:
        full_ranks(old, catalogs, SCHEME, T, K0)  # its snapshot starts here
        b.incident("s1-b", "CN-SD-RC.UTILITY-THEFT", "2024-05-20", subject="s1",
                   recorded_at=K0 + timedelta(hours=1))
        with db.begin() as conn:
            push(conn, catalogs, b, done)
        clock.now = k = K0 + timedelta(hours=2)
        with db.read() as new:
            check(new, catalogs, cache, k)
        # The old reader asks after s2's deadline (its overdue appeal moves s2):
        # it may answer from its own view, but keeps nothing.
        later = K0 + timedelta(hours=7)
        clock.now = later
        s1_old = full_ranks(old, catalogs, SCHEME, T, later)[b.subjects["s1"]][0]
        assert cache.rank(old, catalogs, Evaluation(1, SCHEME, T, later), b.subjects["s1"], s1_old) is None
    with db.read() as conn:
        check(conn, catalogs, cache, k)
        check(conn, catalogs, cache, later)
    assert cache.counts["builds"] == 1


def test_threads_share_one_cache_while_records_arrive(sqlite_file: Database, catalogs: Registry) -> None:
    db = sqlite_file
    b, done = population(), [0, 0]
    with db.begin() as conn:
        push(conn, catalogs, b, done)
    cache = RankCache(clock=Clock(K0 + timedelta(minutes=1)))
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(15):
                with db.read() as conn:
                    full = full_ranks(conn, catalogs, SCHEME, T, K0)
                    for s, (score, _) in full.items():
                        got = cache.rank(conn, catalogs, Evaluation(1, SCHEME, T, K0), s, score)
                        # A reader whose snapshot is older than the cache's may get the
                        # newer population's rank, or None (its own score moved since).
                        assert got is None or 0 <= got < 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    for n in range(10):
        b.incident(f"new-{n}", "CN-SD-RC.CONTRACT-BREACH", "2024-05-10", subject=f"s{n % 7}",
                   recorded_at=K0 - timedelta(minutes=n))
        with db.begin() as conn:
            push(conn, catalogs, b, done)
    for r in readers:
        r.join()
    assert not errors, errors
    with db.read() as conn:
        check(conn, catalogs, cache, K0)
    assert cache.counts["answered"] > 0


# ---------------------------------------------------------------------------
# Hypothesis: histories of ingests on generated worlds
# ---------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """A generated world written in steps: records in sequence order, appeals filed then decided,
    and at each step a knowledge time (mostly later, sometimes a little earlier) and a clock."""
    registry, found, evals = draw(universes(max_worlds=2))
    rows = sorted((r for w in found for r in w.records), key=lambda r: r["seq"])
    steps = draw(st.integers(2, 5))
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), min_size=steps - 1, max_size=steps - 1)))
    batches = [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)], strict=True)]
    step_of = {r["seq"]: i for i, batch in enumerate(batches) for r in batch}
    filings: list[list[dict[str, Any]]] = [[] for _ in range(steps)]
    decisions: list[list[dict[str, Any]]] = [[] for _ in range(steps)]
    for a in (a for w in found for a in w.appeals):
        filed = draw(st.integers(step_of[a["record_seq"]], steps - 1))
        filings[filed].append({**a, "decided_at": None, "outcome": None})
        if a["decided_at"] is not None:
            decisions[draw(st.integers(filed, steps - 1))].append(a)
    # The cache is built at the first k (or at the clock, if earlier); no later
    # k goes below the first by WINDOW, so the cache never has to decline.
    # Start among the rows' own instants, so that later steps cross some of them.
    instants = sorted(r["recorded_at"] for r in rows)
    first = draw(st.sampled_from(instants)) if instants else evals[0].known_at
    t = first.date() + timedelta(days=draw(st.integers(-30, 400)))
    moments: list[tuple[datetime, datetime]] = []
    k, clock = first, first - timedelta(days=50)
    for _ in range(steps):
        k = k + timedelta(seconds=draw(st.integers(-600, 120 * 86400)))
        if moments:
            k = max(moments[0][0] - WINDOW / 2, k)
        clock = max(clock, k - timedelta(seconds=draw(st.sampled_from([0, 0, 3600, 40 * 86400]))))
        moments.append((k, clock))
    schemes = sorted({e.scheme for e in evals})
    return {"registry": registry, "found": found, "batches": batches, "filings": filings,
            "decisions": decisions, "moments": moments, "t": t, "schemes": schemes,
            "builder": draw(st.sampled_from(["duckdb", "live"]))}


def replay(conn: Connection, history: dict[str, Any]) -> None:
    """Write the history step by step; after each, every scheme's cached ranks equal the slow path's."""
    registry: Registry = history["registry"]
    conn.execute(insert(agencies), [
        {"code": a.code, "jurisdiction": registry.agency_jurisdiction(a.code), "name_en": a.code,
         "name_zh": a.code, "kind": a.kind} for a in registry.agencies()
    ])
    ids = sorted({r["subject_id"] for w in history["found"] for r in w.records})
    if ids:
        conn.execute(insert(subjects), [
            {"id": i, "kind": "person", "identifier": f"T{i}", "created_at": datetime(2000, 1, 1, tzinfo=UTC)}
            for i in ids
        ])
    clock = Clock(history["moments"][0][1])
    cache = RankCache(clock=clock, builder=history["builder"])
    hashes = {"content_hash": b"h" * 32, "leaf_hash": b"h" * 32}
    for batch, filed, decided, (k, now) in zip(history["batches"], history["filings"], history["decisions"],
                                              history["moments"], strict=True):
        if batch:
            conn.execute(insert(records), [{**r, **hashes} for r in batch])
        if filed:
            conn.execute(insert(appeals), filed)
        for a in decided:
            decide(conn, a["id"], a["decided_at"], a["outcome"])
        clock.now = now
        for scheme in history["schemes"]:
            check(conn, registry, cache, k, t=history["t"], scheme=scheme)
    assert cache.counts["builds"] <= len(history["schemes"])
    assert cache.counts["declined"] == 0
    event("some subjects rescored after the build" if cache.counts["rescored"] else "nothing rescored")


@contextmanager
def bare_sqlite() -> Iterator[Connection]:
    engine = make_engine("sqlite://", poolclass=StaticPool)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            yield conn
    finally:
        engine.dispose()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_cached_ranks_follow_any_history_sqlite(history: dict[str, Any]) -> None:
    with bare_sqlite() as conn:
        replay(conn, history)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_cached_ranks_follow_any_history_postgresql(history: dict[str, Any], bare_postgres: Engine) -> None:
    with bare_postgres.connect() as conn:
        outer = conn.begin()
        try:
            replay(conn, history)
        finally:
            outer.rollback()
