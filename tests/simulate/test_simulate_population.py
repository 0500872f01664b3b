"""The synthetic population: valid identifiers, valid records, documented rates, same seed same data."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric, uscc

from credo.catalog.registry import Registry
from credo.ids import parse_subject
from credo.ledger.services import todays
from credo.ledger.validate import RECORD_FIELDS, Draft, check_item
from credo.simulate import population as sim
from credo.simulate.load import write_parquet
from credo.simulate.population import Params, Population, generate

END = date(2025, 6, 30)  # as in tests/simulate/conftest.py
FOLLOW_UPS = ("retraction", "restoration")


def rows(table: pa.Table) -> list[dict[str, object]]:
    return table.to_pylist()


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- determinism ------------------------------------------------------------------


def test_the_same_seed_gives_byte_identical_parquet(catalogs: Registry, tmp_path: Path) -> None:
    params = Params(subjects=2000, years=3, seed=42, end=END)
    write_parquet(generate(catalogs, params), tmp_path / "a")
    write_parquet(generate(catalogs, params), tmp_path / "b")
    a, b = digests(tmp_path / "a"), digests(tmp_path / "b")
    assert a == b
    assert "subjects.parquet" in a and "appeals.parquet" in a
    assert any(name.startswith("records/agency=") for name in a)


def test_another_seed_gives_another_population(catalogs: Registry) -> None:
    one = generate(catalogs, Params(subjects=500, years=2, seed=1, end=END))
    two = generate(catalogs, Params(subjects=500, years=2, seed=2, end=END))
    assert one.subjects.column("subject").to_pylist() != two.subjects.column("subject").to_pylist()
    assert one.prefix != two.prefix


def test_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="subjects"):
        Params(subjects=0, years=1, seed=0, end=END)
    with pytest.raises(ValueError, match="years"):
        Params(subjects=1, years=0, seed=0, end=END)
    with pytest.raises(ValueError, match="seed"):
        Params(subjects=1, years=1, seed=-1, end=END)


# -- identifiers ------------------------------------------------------------------


def test_every_identifier_is_valid_and_unique(small: Population, catalogs: Registry) -> None:
    subjects = rows(small.subjects)
    assert len({s["subject"] for s in subjects}) == len(subjects) == 1500
    for s in subjects:
        parsed = parse_subject(str(s["subject_kind"]), str(s["subject"]))
        assert parsed.identifier == s["subject"]
        if s["subject_kind"] == "person":
            assert ric.is_valid(parsed.identifier)
        else:
            assert uscc.is_valid(parsed.identifier)
            # registered where the organisation lives
            assert catalogs.jurisdiction_for_region(parsed.identifier[2:8]) == s["jurisdiction"]


def test_a_large_sample_of_identifiers_is_valid(large: Population) -> None:
    subjects = large.subjects
    pick = np.random.default_rng(0).choice(subjects.num_rows, 3000, replace=False)
    for s in rows(subjects.take(pa.array(pick))):
        parse_subject(str(s["subject_kind"]), str(s["subject"]))
    assert len(pc.unique(subjects.column("subject"))) == subjects.num_rows


def test_persons_are_adults_born_where_a_region_code_was_in_use(large: Population) -> None:
    persons = large.subjects.filter(pc.equal(large.subjects.column("subject_kind"), "person"))
    numbers = persons.column("subject").to_pylist()
    homes = persons.column("jurisdiction").to_pylist()
    born = [date(int(n[6:10]), int(n[10:12]), int(n[12:14])) for n in numbers]
    assert all(18 <= (END - b).days / 365.2425 <= 96 for b in born)
    # Yiwu's code exists from 1989 on: nobody is born there before.
    yiwu = [b for n, b in zip(numbers, born, strict=True) if n.startswith("330782")]
    assert yiwu and min(b.year for b in yiwu) >= 1989
    # most are born in the province (or Beijing) where they live, some elsewhere
    province = {"CN": "11", "CN-SD": "37", "CN-SD-RC": "37"}
    at_home = sum(n[:2] == province.get(h, "33") for n, h in zip(numbers, homes, strict=True))
    assert 0.8 < at_home / len(numbers) < 0.95


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 9), min_size=17, max_size=17))
def test_ric_check_character_matches_stdnum(digits: list[int]) -> None:
    body = "".join(map(str, digits))
    chars = np.frombuffer(body.encode(), dtype=np.uint8).reshape(1, 17)
    assert chr(sim.ric_check(chars)[0]) == ric.calc_check_digit(body + "0")


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=sim.USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_character_matches_stdnum(body: str) -> None:
    chars = np.frombuffer(body.encode(), dtype=np.uint8).reshape(1, 17)
    assert chr(sim.uscc_check(chars)[0]) == uscc.calc_check_digit(body)


def test_organisation_code_check_character() -> None:
    # GB 11714's own example: D2143569-X (letters count by their place in the alphabet);
    # an all-digit code: 00000001-? -> 11 - 2 = 9
    chars = np.frombuffer(b"00000001", dtype=np.uint8).reshape(1, 8)
    assert chr(sim.gb11714_check(chars)[0]) == "9"
    chars = np.frombuffer(b"00000000", dtype=np.uint8).reshape(1, 8)
    assert chr(sim.gb11714_check(chars)[0]) == "0"


# -- records ------------------------------------------------------------------------


def test_every_record_passes_the_ledgers_checks(
    small: Population, large: Population, catalogs: Registry
) -> None:
    today = todays(catalogs, datetime(2025, 7, 1, tzinfo=UTC))
    pick = np.random.default_rng(1).choice(large.records.num_rows, 4000, replace=False)
    refused = []
    for record in rows(small.records) + rows(large.records.take(pa.array(np.sort(pick)))):
        agency = str(record.pop("agency"))
        item = {k: v for k, v in record.items() if v is not None}
        checked = check_item(item, agency, catalogs, today)
        if not isinstance(checked, Draft):
            refused.append((record, checked))
    assert refused == []


def test_retractions_and_restorations_follow_their_records(large: Population) -> None:
    records = large.records.to_pydict()
    kinds, agencies, refs = records["kind"], records["agency"], records["agency_ref"]
    position = {(a, r): i for i, (a, r) in enumerate(zip(agencies, refs, strict=True))}
    touched: Counter[tuple[object, object]] = Counter()
    for i, kind in enumerate(kinds):
        if kind == "incident":
            assert records["target_ref"][i] is None and records["rule"][i] is not None
            continue
        assert kind in FOLLOW_UPS
        key = (agencies[i], records["target_ref"][i])
        t = position[key]  # same agency, a record before this one
        assert t < i and kinds[t] == "incident"
        assert records["occurred_on"][i] > records["occurred_on"][t]
        assert records["subject"][i] == records["subject"][t]
        assert records["jurisdiction"][i] == records["jurisdiction"][t]
        assert records["rule"][i] is None
        if kind == "restoration":
            assert records["rule"][t] in ("CN.COURT-DEFAULTER", "CN-SD.COURT-ORDER-DEFIANCE")
        touched[key] += 1
    assert touched and max(touched.values()) == 1  # never both retracted and restored


def test_no_date_after_end_and_none_before_the_window(large: Population) -> None:
    days = large.records.column("occurred_on")
    assert pc.max(days).as_py() <= END
    start = large.params.start
    first_incident = pc.min(
        large.records.filter(pc.equal(large.records.column("kind"), "incident")).column("occurred_on")
    )
    assert first_incident.as_py() >= start


def test_appeals_name_adverse_incidents(large: Population, catalogs: Registry) -> None:
    records = large.records.to_pydict()
    where = {(a, r): i for i, (a, r) in enumerate(zip(records["agency"], records["agency_ref"], strict=True))}
    retracted = {
        (a, r)
        for a, r, k in zip(records["agency"], records["target_ref"], records["kind"], strict=True)
        if k == "retraction"
    }
    appeals = rows(large.appeals)
    assert appeals
    for a in appeals:
        key = (a["agency"], a["agency_ref"])
        i = where[key]
        assert records["kind"][i] == "incident" and key not in retracted
        occurred = records["occurred_on"][i]
        rule = catalogs.rule(records["rule"][i], occurred)
        assert rule is not None and not rule.is_reward
        assert occurred < a["filed_on"] <= END  # type: ignore[operator]
        if a["outcome"] == "pending":
            assert a["decided_on"] is None
        else:
            assert a["outcome"] in ("upheld", "overturned")
            assert a["filed_on"] < a["decided_on"] <= END  # type: ignore[operator]


# -- rates ----------------------------------------------------------------------------


def test_rates_are_roughly_as_documented(large: Population, catalogs: Registry) -> None:
    c = large.counts
    years = large.params.years
    assert c["organisations"] / c["subjects"] == pytest.approx(sim.ORG_SHARE, abs=0.01)
    # about 0.1-0.2 records per subject-year, most of them adverse
    assert 0.08 < c["incidents"] / c["subjects"] / years < 0.2
    assert 0.6 < c["adverse"] / c["incidents"] < 0.8
    # 1.5 % of adverse records retracted (a few too late for the window)
    assert c["retractions"] / c["adverse"] == pytest.approx(sim.RETRACT_SHARE, rel=0.25)
    # a few percent appealed, a quarter of the decided ones overturned
    assert 0.015 < c["appeals"] / c["adverse"] < 0.04
    decided = c["appeals"] - c["pending"]
    assert c["overturned"] / decided == pytest.approx(sim.OVERTURNED_SHARE, abs=0.06)

    records = large.records
    kinds = records.column("kind")
    rules = records.column("rule")
    persons = c["persons"]
    defaulter = pc.sum(
        pc.and_(pc.equal(rules, "CN.COURT-DEFAULTER"), pc.equal(records.column("subject_kind"), "person"))
    ).as_py()
    assert defaulter / persons / years == pytest.approx(0.006, rel=0.3)

    # restored: 40 % of the defaulter judgments old enough (median delay 150 days)
    old = records.filter(
        pc.and_(
            pc.and_(pc.equal(kinds, "incident"), pc.equal(rules, "CN.COURT-DEFAULTER")),
            pc.less(records.column("occurred_on"), pa.scalar(date(2024, 6, 30))),
        )
    )
    restored_refs = set(records.filter(pc.equal(kinds, "restoration")).column("target_ref").to_pylist())
    share = sum(ref in restored_refs for ref in old.column("agency_ref").to_pylist()) / old.num_rows
    assert share == pytest.approx(sim.RESTORE_SHARE, abs=0.08)


def test_most_subjects_have_no_records_and_a_few_have_many(large: Population) -> None:
    incidents = large.records.filter(pc.equal(large.records.column("kind"), "incident"))
    per_subject = Counter(incidents.column("subject").to_pylist())
    counts = np.zeros(large.counts["subjects"], dtype=np.int64)
    counts[: len(per_subject)] = sorted(per_subject.values(), reverse=True)
    assert (counts == 0).mean() > 0.6
    top = counts[: len(counts) // 20].sum() / counts.sum()
    assert top > 0.4  # the top 5 % hold a large share
    assert counts.max() >= 10


# -- files -------------------------------------------------------------------------------


def test_parquet_columns_are_the_ingest_columns(small: Population, tmp_path: Path) -> None:
    files = write_parquet(small, tmp_path)
    record_files = [f for f in files if "records" in f.parts]
    assert record_files
    for f in record_files:
        assert pq.read_schema(f).names == list(RECORD_FIELDS)
        assert f.parent.name.startswith("agency=")
    dataset = ds.dataset(tmp_path / "records", format="parquet", partitioning="hive")
    assert dataset.schema.names == [*RECORD_FIELDS, "agency"]
    table = dataset.to_table()
    assert table.num_rows == small.records.num_rows
    assert pq.read_schema(tmp_path / "subjects.parquet") == sim.SUBJECT_SCHEMA
    assert pq.read_schema(tmp_path / "appeals.parquet") == sim.APPEAL_SCHEMA
    assert pq.read_table(tmp_path / "subjects.parquet").num_rows == 1500


def test_writing_again_replaces_the_records_of_an_earlier_population(
    catalogs: Registry, small: Population, tmp_path: Path
) -> None:
    other = generate(catalogs, Params(subjects=50, years=1, seed=3, end=date(2024, 1, 31)))
    write_parquet(small, tmp_path)
    write_parquet(other, tmp_path)
    table = ds.dataset(tmp_path / "records", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == other.records.num_rows


def test_the_simulate_package_never_imports_the_api_web_or_cli() -> None:
    import ast

    from credo.settings import PROJECT_ROOT

    for path in (PROJECT_ROOT / "src" / "credo" / "simulate").rglob("*.py"):
        tree = ast.parse(path.read_text())
        found = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        found |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        bad = sorted(m for m in found if m.startswith(("credo.api", "credo.web", "credo.cli")))
        assert not bad, f"{path.name} imports {bad}"
