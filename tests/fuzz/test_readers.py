"""Hypothesis on everything that reads a file: malformed input is an error with its line, never a crash.

- CSV and JSON Lines: any bytes at all give items, ``Malformed`` items whose
  reason starts ``line N:`` with N the physical line, or one ``ReadError``
  naming its line; nothing else escapes.
- Parquet: any bytes, and valid files with a byte changed or cut short,
  give rows or a ``ReadError``.
- Records: any JSON value as an item gives a draft or reasons, each naming
  its field; never an exception.
- Catalogs: any text, and the shipped catalogs cut, doubled or scribbled on
  line by line, give errors (a TOML syntax error names its line); loading a
  folder holding such a file never raises.
- Ingest: a file unreadable at line L keeps every batch before L whole and
  nothing of the batch holding L (no half-applied batch).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from factories import RecordFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from credo.catalog.registry import Registry, load_catalogs, parse_catalog
from credo.cli import app as cli_app
from credo.ledger.readers import Malformed, ReadError, iter_csv, iter_jsonl, iter_parquet
from credo.ledger.services import todays
from credo.ledger.validate import RECORD_FIELDS, Draft, check_item
from credo.settings import PROJECT_ROOT
from credo.store.db import make_engine
from credo.store.tables import records

EXAMPLES = int(os.environ.get("CREDO_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None)
SHIPPED = sorted((PROJECT_ROOT / "catalogs").glob("*.toml"))
LINE = re.compile(r"^line (\d+): ")


def physical_lines(data: bytes, universal: bool) -> int:
    """CSV ends a line at \\n, \\r\\n or a lone \\r (as the csv module does); JSON Lines at \\n."""
    return len(data.splitlines()) if universal else len(data.split(b"\n"))


def drain(items: Iterator[tuple[int, Any]], data: bytes, universal: bool) -> list[tuple[int, Any]]:
    """Every item, checking each line number and each reason; a ReadError must name its line."""
    seen: list[tuple[int, Any]] = []
    try:
        for line, item in items:
            assert isinstance(line, int) and 1 <= line <= max(1, physical_lines(data, universal))
            assert not seen or line > seen[-1][0], "line numbers go forward"
            if isinstance(item, Malformed):
                match = LINE.match(item.reason)
                assert match and int(match.group(1)) == line, item.reason
            else:
                assert isinstance(item, dict)
            seen.append((line, item))
    except ReadError as exc:
        assert LINE.match(str(exc)), str(exc)
    return seen


# -- CSV ---------------------------------------------------------------------

csv_bytes = st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=st.sampled_from('ab,"\n\r \ufeff\x00é中'), max_size=200).map(str.encode),
)


@FUZZ
@given(csv_bytes)
def test_csv_reader_never_crashes_and_names_lines(data: bytes) -> None:
    drain(iter_csv(io.BytesIO(data)), data, universal=True)


cell = st.text(alphabet=st.sampled_from('xy ,"\n\r中'), max_size=6)


@FUZZ
@given(st.lists(st.lists(cell, min_size=2, max_size=2), max_size=8), st.sampled_from(["\n", "\r\n"]))
def test_csv_line_numbers_are_where_each_row_starts(rows: list[list[str]], newline: str) -> None:
    """Quoted cells may hold newlines: a row's line is the physical line it starts on."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=newline, quoting=csv.QUOTE_ALL)
    writer.writerow(["a", "b"])
    starts = []
    for row in rows:
        starts.append(len(io.StringIO(out.getvalue(), newline="").readlines()) + 1)
        writer.writerow(row)
    data = out.getvalue().encode()
    got = dict(drain(iter_csv(io.BytesIO(data)), data, universal=True))
    expected = {line for line, row in zip(starts, rows, strict=True) if any(c.strip() for c in row)}
    assert set(got) == expected


# -- JSON Lines --------------------------------------------------------------

jsonl_bytes = st.one_of(
    st.binary(max_size=400),
    st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(list(RECORD_FIELDS)), st.text(max_size=5)).map(json.dumps),
            st.text(alphabet=st.sampled_from('{}[]":,1a \\'), max_size=20),
        ),
        max_size=6,
    ).map(lambda lines: "\n".join(lines).encode()),
)


@FUZZ
@given(jsonl_bytes)
def test_jsonl_reader_never_crashes_and_names_lines(data: bytes) -> None:
    seen = drain(iter_jsonl(io.BytesIO(data)), data, universal=False)
    physical = data.split(b"\n")
    for line, item in seen:
        assert physical[line - 1].strip(), "an item is never a blank line"
        if isinstance(item, dict):
            assert json.loads(physical[line - 1]) == item


# -- Parquet -----------------------------------------------------------------


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), out)
    return out.getvalue()


VALID_PARQUET = parquet_bytes([RecordFactory() for _ in range(5)])


@st.composite
def damaged_parquet(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_PARQUET)
    how = draw(st.sampled_from(["flip", "cut", "noise"]))
    if how == "cut":
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    if how == "noise":
        return draw(st.binary(max_size=300))
    at = draw(st.integers(0, len(data) - 1))
    data[at] ^= draw(st.integers(1, 255))
    return bytes(data)


@FUZZ
@given(damaged_parquet())
def test_parquet_reader_gives_rows_or_a_read_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.parquet"
        path.write_bytes(data)
        try:
            for row, item in iter_parquet(path):
                assert row >= 1 and isinstance(item, dict)
        except ReadError as exc:
            assert str(exc).startswith((f"{path}:", "row ")), str(exc)


# -- Record items ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
FIELD_VALUES = st.one_of(
    json_values,
    st.sampled_from(
        ["", "2024-03-01", "CN-ZJ-HZ.TRAFFIC-RED-LIGHT", "11010519491231002X", "retraction", "\x00", "9" * 30]
    ),
)
record_items = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from([*RECORD_FIELDS, "extra"]), FIELD_VALUES, max_size=len(RECORD_FIELDS)),
)


@FUZZ
@given(item=record_items)
def test_any_item_gives_a_draft_or_reasons_naming_fields(item: Any, catalogs: Registry) -> None:
    today = todays(catalogs, datetime.now(UTC))
    result = check_item(item, "CN-ZJ-HZ-TP", catalogs, today)
    if isinstance(result, Draft):
        return
    assert result, "a refusal has at least one reason"
    for reason in result:
        # "field: why" (a field may be named ""; one that is not a plain name is JSON-quoted)
        assert re.match(r'^("(?:[^"\\]|\\.)*"|[^:"]*): ', reason), reason


# -- Catalogs ----------------------------------------------------------------


@st.composite
def damaged_catalog(draw: st.DrawFn) -> tuple[str, str]:
    path = draw(st.sampled_from(SHIPPED))
    lines = path.read_text().splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(["drop", "double", "scribble", "value"]))
        if how == "drop":
            del lines[at]
        elif how == "double":
            lines.insert(at, lines[at])
        elif how == "scribble":
            lines[at] = draw(st.text(alphabet=st.sampled_from('[]="=.# \tab1\x00'), max_size=12))
        elif "=" in lines[at]:
            key = lines[at].split("=", 1)[0]
            value = draw(st.sampled_from(['""', "-1", "99999999999999999999", "[]", "{}", "true", '"x"']))
            lines[at] = f"{key}= {value}"
    return path.name, "\n".join(lines) + "\n"


@FUZZ
@given(st.one_of(st.text(max_size=300).map(lambda t: ("any.toml", t)), damaged_catalog()))
def test_catalog_errors_name_their_place(named: tuple[str, str]) -> None:
    name, text = named
    catalog, errors = parse_catalog(text, name)
    assert (catalog is None) == bool(errors)
    lines = text.count("\n") + 1
    for error in errors:
        assert error.file == name and error.location and error.message
        if error.message.startswith("TOML syntax error"):
            match = re.fullmatch(r"line (\d+)", error.location)
            assert match and 1 <= int(match.group(1)) <= lines, error


@settings(max_examples=max(10, EXAMPLES // 5), derandomize=True, deadline=None)
@given(damaged_catalog())
def test_loading_a_folder_with_a_damaged_catalog_never_raises(named: tuple[str, str]) -> None:
    name, text = named
    with tempfile.TemporaryDirectory() as folder:
        for path in SHIPPED:
            (Path(folder) / path.name).write_text(text if path.name == name else path.read_text())
        registry, errors = load_catalogs([Path(folder)])
    assert (registry is None) == bool(errors)
    for error in errors:
        assert error.file and error.location and error.message


# -- No half-applied batch ---------------------------------------------------


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ingest")
    url = f"sqlite:///{folder / 'credo.db'}"
    env = {"CREDO_DATABASE_URL": url, "CREDO_SIGNING_KEY_PATH": str(folder / "log.key")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert CliRunner().invoke(cli_app, ["db", "upgrade"]).exit_code == 0
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.slow
@settings(
    max_examples=max(10, EXAMPLES // 5),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.integers(1, 30),
    bad=st.integers(0, 30),
    batch=st.integers(1, 8),
    fmt=st.sampled_from(["csv", "jsonl"]),
)
def test_an_unreadable_line_keeps_whole_batches_before_it_and_nothing_after(
    registry_url: str, rows: int, bad: int, batch: int, fmt: str
) -> None:
    records_in = [RecordFactory() for _ in range(rows)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"week.{fmt}"
        if fmt == "csv":
            fields = sorted(records_in[0])
            lines = [",".join(fields).encode()] + [
                ",".join(r[f] for f in fields).encode() for r in records_in
            ]
            first_row_line = 2
        else:
            lines = [json.dumps(r).encode() for r in records_in]
            first_row_line = 1
        broken = bad < rows
        if broken:  # one line that is not UTF-8 (JSON Lines: not JSON, so a quarantined item instead)
            lines[first_row_line - 1 + bad] = b"\xff\xfe not text"
        path.write_bytes(b"\n".join(lines) + b"\n")
        engine = make_engine(registry_url)
        with engine.connect() as conn:
            before = conn.execute(select(func.count()).select_from(records)).scalar_one()
        result = CliRunner().invoke(
            cli_app, ["ingest", str(path), "--agency", "CN-ZJ-HZ-TP", "--batch", str(batch), "--json"]
        )
        with engine.connect() as conn:
            added = conn.execute(select(func.count()).select_from(records)).scalar_one() - before
        engine.dispose()
    summary = json.loads(result.stdout)
    if fmt == "csv" and broken:
        assert result.exit_code == 2, result.output
        whole = (bad // batch) * batch  # rows in the batches that ended before the bad line
        assert added == summary["accepted"] == whole
        assert "line" in summary["error"]
    else:
        assert result.exit_code == 0, result.output
        assert added == summary["accepted"] == rows - (1 if broken else 0)
        assert summary["quarantined"] == (1 if broken else 0)
