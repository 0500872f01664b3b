"""The check index: exact decisions from flat arrays, snapshots on disk, and the keeper's overlay."""

from __future__ import annotations

import dataclasses
import os
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import person_id
from lists.test_checks import list_defaulter
from sqlalchemy import insert

from credo.ids import make_uscc, parse_subject_ref
from credo.lists import index as index_module
from credo.lists.index import CheckIndex, Snapshot, subject_keys
from credo.lists.keeper import IndexKeeper
from credo.lists.services import last_change
from credo.lists.snapshots import SnapshotStore, mapped_memory
from credo.runtime import Runtime
from credo.store.tables import list_changes

EFFECTS = {
    "air-travel": "deny",
    "high-speed-rail": "deny",
    "deposit-waiver": "grant",
    "state-bank-loan": "deny",
}


def people(rng: random.Random, n: int) -> list[str]:
    persons = {str(parse_subject_ref(person_id())) for _ in range(n)}
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    orgs = {
        f"organisation:{make_uscc('9', '1', '110000', ''.join(rng.choice(alphabet) for _ in range(9)))}"
        for _ in range(n // 10)
    }
    foreign = {f"foreign:DE:C{rng.randrange(10**8)}" for _ in range(n // 20)}
    return sorted(persons | orgs | foreign)


def expected(members: dict[str, set[str]], subject: str, measure: str) -> str:
    if subject not in members.get(measure, set()):
        return "allowed"
    return "denied" if EFFECTS[measure] == "deny" else "granted"


def test_decisions_are_exactly_set_membership_for_every_kind_of_subject() -> None:
    rng = random.Random(5)
    everyone = people(rng, 3000)
    members = {m: set(rng.sample(everyone, 400)) for m in ("air-travel", "high-speed-rail", "deposit-waiver")}
    index = CheckIndex.from_members(EFFECTS, members)
    measures = [*EFFECTS, "teleport"]
    for _ in range(100):
        subjects = [*rng.sample(everyone, 60), "person:Y", "organisation:NOPE", "person:" + "0" * 18]
        asked = [rng.choice(measures) for _ in subjects]
        want = [expected(members, s, m) for s, m in zip(subjects, asked, strict=True)]
        assert index.decide_many(subjects, asked) == want
        assert [index.decide(m, s) for s, m in zip(subjects, asked, strict=True)] == want
    persons = [s for s in everyone if s.startswith("person:")]
    for _ in range(30):  # the vectorised path of a manifest of persons, as the API sends it
        manifest = rng.sample(persons, 300)
        want = [expected(members, s, "air-travel") for s in manifest]
        assert index.decide_many(manifest, ["air-travel"] * 300, canonical=True) == want
        assert index.decide_many(manifest, ["air-travel"] * 300) == want


def test_a_wrong_check_character_or_a_look_alike_never_matches_a_listed_person() -> None:
    listed = str(parse_subject_ref(person_id()))
    index = CheckIndex.from_members(EFFECTS, {"air-travel": {listed}})
    wrong = listed[:-1] + ("1" if listed[-1] != "1" else "2")
    looks_alike = [wrong, listed + " ", listed[:-1], "person:" + listed[7:].replace("0", "O", 1)]
    if listed.endswith("X"):
        looks_alike.append(listed[:-1] + "x")
    for subject in looks_alike:
        assert index.decide("air-travel", subject) == "allowed", subject
        assert index.decide_many([subject, listed, subject], ["air-travel"] * 3) == [
            "allowed",
            "denied",
            "allowed",
        ]
    # texts that join into valid rows only when misaligned are not read across their borders
    a, b = listed[:-1], listed[-1] + listed
    assert index.decide_many([a, b, listed], ["air-travel"] * 3) == ["allowed", "allowed", "denied"]


def test_a_hash_collision_never_denies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Organisations and foreign subjects are found by a 63-bit keyed hash; a hit is confirmed."""
    monkeypatch.setattr(index_module, "_hashed_key", lambda subject, secret: (1 << 63) | 12345)
    listed, other = "organisation:91110000600037341L", "foreign:DE:C01X00T47"
    index = CheckIndex.from_members(EFFECTS, {"air-travel": {listed}})
    assert subject_keys([listed], b"")[0] == subject_keys([other], b"")[0]  # the same key
    assert index.decide("air-travel", listed) == "denied"
    assert index.decide("air-travel", other) == "allowed"
    assert index.decide_many([other, listed, other], ["air-travel"] * 3) == ["allowed", "denied", "allowed"]


def test_an_overlay_replaces_the_snapshots_answer_for_its_subjects() -> None:
    a, b, c = (str(parse_subject_ref(person_id())) for _ in range(3))
    index = CheckIndex.from_members(EFFECTS, {"air-travel": {a, b}})
    later = index.with_overlay({a: frozenset(), c: frozenset({"air-travel", "deposit-waiver"})}, version=7)
    assert later.version == 7 and index.decide("air-travel", a) == "denied"
    assert later.decide_many([a, b, c, c], ["air-travel", "air-travel", "air-travel", "deposit-waiver"]) == [
        "allowed",
        "denied",
        "denied",
        "granted",
    ]


class CountedLookups(dict[str, frozenset[str]]):
    looked_up = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.looked_up += 1
        return super().get(key, default)


def test_a_manifest_looks_up_in_the_overlay_only_the_subjects_its_filter_lets_through() -> None:
    """At 50,000 changed subjects one flag per cell of the filter (2**20) would let ~5 % through;
    8 flags a cell, chosen by 3 more bits of the hashed key: ~0.6 %. Changed ones always pass."""
    rng = random.Random(29)
    index = CheckIndex.from_members(EFFECTS, {})
    changed = {f"foreign:DE:C{i}": frozenset({"air-travel"}) for i in range(50_000)}
    later = index.with_overlay(changed, version=1)
    counted = CountedLookups(later.overlay)
    later = dataclasses.replace(later, overlay=counted)
    persons = [str(parse_subject_ref(person_id())) for _ in range(2000)]
    asked = ["air-travel"] * 2000
    assert later.decide_many(persons, asked, canonical=True) == ["allowed"] * 2000
    assert counted.looked_up < 40  # ~12 expected; one flag a cell: ~95
    some = rng.sample(sorted(changed), 300)
    assert later.decide_many([*some, *persons[:100]], asked[:400]) == ["denied"] * 300 + ["allowed"] * 100


def test_a_snapshot_on_disk_answers_as_the_one_in_memory(tmp_path: Path) -> None:
    rng = random.Random(9)
    everyone = people(rng, 2000)
    members = {"air-travel": set(rng.sample(everyone, 500)), "deposit-waiver": set(rng.sample(everyone, 50))}
    built = Snapshot.build(members, built_on=date(2024, 6, 1), version=3, gaps=[2])
    store = SnapshotStore(tmp_path, "sqlite:///x.db")
    mapped = store.publish(built, anchor=11)
    assert mapped.path is not None and mapped_memory(os.getpid(), tmp_path)["size"] >= mapped.table.nbytes
    assert (mapped.built_on, mapped.version, mapped.gaps) == (date(2024, 6, 1), 3, (2,))
    assert store.latest() is not None and SnapshotStore(tmp_path, "postgresql://other").latest() is None
    a, b = CheckIndex(EFFECTS, built), CheckIndex(EFFECTS, mapped)
    asked = rng.sample(everyone, 400)
    for measure in EFFECTS:
        assert a.decide_many(asked, [measure] * 400) == b.decide_many(asked, [measure] * 400)
    again = store.publish(Snapshot.build({"air-travel": set()}, version=4), anchor=None)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("snap-")] == [Path(again.path or "").name]
    assert b.decide("air-travel", sorted(members["air-travel"])[0]) == "denied"  # still mapped


def test_the_keeper_lays_each_change_over_the_snapshot_and_rebuilds_next_day(runtime: Runtime) -> None:
    keeper = IndexKeeper(runtime.db, runtime.catalogs, "Asia/Shanghai")
    first = keeper.current()
    who = person_id()
    subject = str(parse_subject_ref(who))
    assert first.decide("air-travel", subject) == "allowed"
    today = keeper.today()  # Shanghai's date, a day ahead of UTC's from 16:00 UTC
    list_defaulter(runtime, who, started=today - timedelta(days=5), now=datetime.now(UTC))
    assert keeper.refresh_if_changed()
    now = keeper.current()
    assert now.snapshot is first.snapshot and subject in now.overlay  # no rebuild for one change
    assert now.decide("air-travel", subject) == "denied"
    assert not keeper.refresh_if_changed()
    keeper.today = lambda: today + timedelta(days=1)  # type: ignore[method-assign]
    assert keeper.refresh_if_changed()
    assert keeper.current().snapshot is not first.snapshot and not keeper.current().overlay
    assert keeper.current().decide("air-travel", subject) == "denied"


def test_a_change_committed_after_a_later_one_is_not_skipped(runtime: Runtime) -> None:
    """PostgreSQL may make change n visible after change n + 1: the keeper looks again for n."""
    keeper = IndexKeeper(runtime.db, runtime.catalogs, "Asia/Shanghai")
    keeper.current()
    late, early = person_id(), person_id()
    sid_late = list_defaulter(runtime, late, started=date.today() - timedelta(days=5), now=datetime.now(UTC))
    sid_early = list_defaulter(
        runtime, early, started=date.today() - timedelta(days=5), now=datetime.now(UTC)
    )
    newest = last_change_of(runtime)
    with runtime.db.begin() as conn:  # hide both changes, then show the later one first
        conn.execute(list_changes.delete().where(list_changes.c.id > keeper._last))
        base = keeper._last
        conn.execute(
            insert(list_changes).values(id=base + 2, subject_id=sid_late, changed_at=datetime.now(UTC))
        )
    assert newest >= base + 2
    assert keeper.refresh_if_changed()
    assert keeper.current().decide("air-travel", str(parse_subject_ref(late))) == "denied"
    assert base + 1 in keeper._gaps
    with runtime.db.begin() as conn:
        conn.execute(
            insert(list_changes).values(id=base + 1, subject_id=sid_early, changed_at=datetime.now(UTC))
        )
    assert keeper.refresh_if_changed()
    assert keeper.current().decide("air-travel", str(parse_subject_ref(early))) == "denied"
    assert not keeper._gaps


def last_change_of(runtime: Runtime) -> int:
    with runtime.db.read() as conn:
        return last_change(conn)


def test_keepers_sharing_a_folder_map_one_snapshot(runtime: Runtime, tmp_path: Path) -> None:
    who = person_id()
    list_defaulter(runtime, who, started=date.today() - timedelta(days=5), now=datetime.now(UTC))
    one = IndexKeeper(runtime.db, runtime.catalogs, "Asia/Shanghai", directory=tmp_path)
    two = IndexKeeper(runtime.db, runtime.catalogs, "Asia/Shanghai", directory=tmp_path)
    a, b = one.current(), two.current()
    assert a.snapshot.path is not None and a.snapshot.path == b.snapshot.path  # built once, adopted once
    subject = str(parse_subject_ref(who))
    assert a.decide("air-travel", subject) == b.decide("air-travel", subject) == "denied"
    # the overlay outgrows its limit: one keeper rebuilds and publishes, the other adopts it
    one.max_overlay = 0
    other = person_id()
    list_defaulter(runtime, other, started=date.today() - timedelta(days=5), now=datetime.now(UTC))
    assert one.refresh_if_changed()
    assert one.current().snapshot.path != a.snapshot.path and not one.current().overlay
    assert two.refresh_if_changed()
    assert two.current().snapshot.path == one.current().snapshot.path
    assert two.current().decide("air-travel", str(parse_subject_ref(other))) == "denied"


def test_a_manifest_of_canonical_persons_is_hashed_in_one_product_as_key_by_key() -> None:
    rng = random.Random(11)
    persons = [str(parse_subject_ref(person_id())) for _ in range(500)]
    persons += ["person:10000000000000001X", "person:99999999999999999X"]  # extremes of the 17 digits
    found = index_module.canonical_person_hashes(persons)
    assert found is not None
    assert found.tolist() == index_module.hashed(subject_keys(persons, b"", canonical=True)).tolist()
    assert found.tolist() == [int(p[7:24]) * index_module.MULTIPLIER % 2**64 for p in persons]
    organisation = rng.choice([s for s in people(rng, 200) if not s.startswith("person:")])
    for other in (organisation, "person:Y", persons[0] + " ", "person:" + "１" * 17 + "X"):
        assert index_module.canonical_person_hashes([*persons[:5], other]) is None


def test_a_subject_whose_two_buckets_are_one_is_found_once_in_its_slot() -> None:
    """A table of one bucket: every key's two buckets are that one, so the slot holding it compares
    equal twice; the subject is still one hit, in the slot the scalar path finds."""
    listed = [str(parse_subject_ref(person_id())) for _ in range(2)]
    organisation = "organisation:91110000600037341L"
    snapshot = Snapshot.build({"air-travel": {*listed, organisation}})
    assert snapshot.table.shape == (1, index_module.SLOTS)
    unlisted = str(parse_subject_ref(person_id()))
    manifest = [listed[0], unlisted, organisation, listed[1], "person:Y", listed[0]]
    rows, slots = snapshot.positions(manifest)
    assert rows == [0, 2, 3, 5]
    assert slots == [snapshot.position(manifest[r]) for r in rows] and min(slots) >= 0
    persons = [listed[1], unlisted, listed[0]]
    hashes = index_module.canonical_person_hashes(persons)
    assert hashes is not None
    assert snapshot.matches(persons, hashes, None) == ([0, 2], [slots[2], slots[0]])
    index = CheckIndex(EFFECTS, snapshot)
    decided = ["denied", "allowed", "denied", "denied", "allowed", "denied"]
    assert index.decide_many(manifest, ["air-travel"] * 6) == decided


def test_a_manifest_is_decided_as_item_by_item_whatever_its_subjects_measures_and_overlay() -> None:
    """``decide_many`` (vectorised) against ``decide`` (one subject at a time) on generated manifests:
    persons as the API sends them (canonical, the one-product path), mixed kinds, several measures
    and one no party may ask about, and an overlay changing some listed and some unlisted subjects."""
    rng = random.Random(23)
    everyone = people(rng, 4000)
    persons = [s for s in everyone if s.startswith("person:")]
    members = {m: set(rng.sample(everyone, 600)) for m in ("air-travel", "high-speed-rail", "deposit-waiver")}
    base = CheckIndex.from_members(EFFECTS, members)
    changed = {s: frozenset(rng.sample(sorted(EFFECTS), rng.randrange(3))) for s in rng.sample(everyone, 300)}
    measures = [*EFFECTS, "teleport"]
    for index in (base, base.with_overlay(changed, version=1)):
        for size in (3, 17, 300, 1000):
            for pool, canonical in ((persons, True), (everyone, False)):
                manifest = [rng.choice(pool) for _ in range(size)]  # repeats too
                asked = [rng.choice(measures) for _ in manifest]
                one_by_one = [index.decide(m, s) for s, m in zip(manifest, asked, strict=True)]
                assert index.decide_many(manifest, asked, canonical=canonical) == one_by_one
                if size >= 300:  # (the manifests do meet listed subjects)
                    assert "allowed" in one_by_one and {"denied", "granted"} & set(one_by_one)


def test_the_compiled_look_up_answers_as_the_numpy_one(tmp_path: Path) -> None:
    """``_probe.c`` against ``_numpy_probe``: found rows, their slots and the overlay filter's
    rows, on a snapshot in memory and one mapped from disk, with and without an overlay."""
    rng = random.Random(31)
    persons = sorted({str(parse_subject_ref(person_id())) for _ in range(6000)})
    members = {"air-travel": set(rng.sample(persons, 2500)), "deposit-waiver": set(rng.sample(persons, 300))}
    built = Snapshot.build(members, version=1)
    mapped = SnapshotStore(tmp_path, "sqlite:///x.db").publish(built, anchor=None)
    changed = {s: frozenset({"air-travel"}) for s in rng.sample(persons, 200)}
    zero = "person:" + "0" * 18  # the key 0, which matches every empty slot and is never listed
    for snapshot in (built, mapped, Snapshot.build({"air-travel": ()}, version=0)):
        plain = CheckIndex(EFFECTS, snapshot)
        for index in (plain, plain.with_overlay(changed, version=2)):
            for size in (3, 300, 1000):
                manifest = [*rng.sample(persons, size - 1), zero]
                rng.shuffle(manifest)
                found = index_module.probe(manifest, snapshot.table, index.overlay_filter)
                assert found == index._numpy_probe(manifest, canonical=True)
                assert found is not None and (snapshot.size == 0 or size == 3 or found[0])
                asked = ["air-travel"] * size
                want = [
                    index.decide("air-travel", s)
                    if s not in index.overlay
                    else ("denied" if "air-travel" in index.overlay[s] else "allowed")
                    for s in manifest
                ]
                assert index.decide_many(manifest, asked, canonical=True) == want
    assert index_module.probe([persons[0], "organisation:X", persons[1]], built.table, None) is None
    assert index_module.probe([persons[0], persons[1][:-1] + "é"], built.table, None) is None


def test_a_manifest_of_canonical_persons_takes_the_compiled_look_up(monkeypatch: pytest.MonkeyPatch) -> None:
    index = CheckIndex.from_members(EFFECTS, {"air-travel": ["person:11010519491231002X"]})
    manifest = ["person:11010519491231002X", str(parse_subject_ref(person_id())), "person:" + "1" * 18]

    def not_here(*_: Any) -> Any:
        raise AssertionError("the numpy look-up ran")

    monkeypatch.setattr(CheckIndex, "_numpy_probe", not_here)
    assert index.decide_many(manifest, ["air-travel"] * 3, canonical=True) == ["denied", "allowed", "allowed"]
    with pytest.raises(AssertionError, match="numpy"):
        index.decide_many(manifest, ["air-travel"] * 3)  # not canonical: the checked path
