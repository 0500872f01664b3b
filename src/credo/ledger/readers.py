"""Streaming readers for agency files: CSV, JSON Lines and Parquet.

Each yields ``(line, item)`` where ``line`` is where the item stands in the
file (CSV and JSON Lines: the physical line; Parquet: the row number, from
1) and ``item`` is a dict of columns, or a :class:`Malformed` when the line
itself could not be read, so it is quarantined with its reason rather than
lost.

>>> import io
>>> list(iter_jsonl(io.BytesIO(b'{"agency_ref": "a"}\\nnot json\\n')))[1][1].reason[:22]
'line 2: invalid JSON: '
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

FORMATS = ("csv", "jsonl", "parquet")


class ReadError(Exception):
    """The file as a whole cannot be read (missing, wrong format, corrupt)."""


@dataclass(frozen=True)
class Malformed:
    text: str
    reason: str


Item = dict[str, Any] | Malformed


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "txt"):
        return "csv"
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("parquet", "pq"):
        return "parquet"
    raise ReadError(f"{path}: cannot tell the format from {path.suffix!r}; use --format csv|jsonl|parquet")


def _text_lines(stream: IO[bytes]) -> Iterator[str]:
    """The stream as lines of text, ending where the csv module ends them (\\n, \\r\\n, \\r).

    Decoded one line at a time, so a byte that is not UTF-8 is reported on
    its own line, after every line before it was read (a whole-file decoder
    fails on the first block it reads, and would blame line 1).
    """
    done = 0  # lines yielded so far
    for raw in stream:  # binary lines end at b"\n"; \r\n stays together
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Lines the valid start of this one holds (a lone \r ends one) are read first.
            before = io.StringIO(raw[: exc.start].decode("utf-8"), newline="").readlines()
            whole = [part for part in before if part.endswith(("\r", "\n"))]
            yield from whole
            where = done + len(whole) + 1
            raise ReadError(f"line {where}: not UTF-8 ({exc.reason}); nothing after it was read") from None
        if done == 0:
            line = line.removeprefix("\ufeff")
        if "\r" in line.removesuffix("\r\n"):
            parts = io.StringIO(line, newline="").readlines()  # lone \r ends a line too
            done += len(parts)
            yield from parts
        else:
            done += 1
            yield line


def iter_csv(stream: IO[bytes]) -> Iterator[tuple[int, Item]]:
    yield from _iter_csv_text(_text_lines(stream))


def _iter_csv_text(text: Iterator[str]) -> Iterator[tuple[int, Item]]:
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ReadError(f"line 1: unreadable header: {exc}") from None
    header = [h.strip() for h in header]
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, Malformed("", f"line {start}: malformed CSV: {exc}")
            continue
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            yield (
                start,
                Malformed(
                    ",".join(values), (f"line {start}: {len(values)} columns, the header has {len(header)}")
                ),
            )
            continue
        yield start, {k: v for k, v in zip(header, values, strict=True) if v != ""}


def iter_jsonl(stream: IO[bytes]) -> Iterator[tuple[int, Item]]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield (
                number,
                Malformed(
                    line.decode("utf-8", "replace").rstrip("\n"), f"line {number}: invalid JSON: {exc}"
                ),
            )
            continue
        if not isinstance(value, dict):
            yield (
                number,
                Malformed(
                    line.decode("utf-8", "replace").rstrip("\n"), f"line {number}: must be a JSON object"
                ),
            )
            continue
        yield number, value


def iter_parquet(path: Path, batch_size: int = 10_000) -> Iterator[tuple[int, Item]]:
    import pyarrow.lib
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:
        raise ReadError(f"{path}: not a readable Parquet file: {exc}") from None
    row = 0
    try:
        for batch in reader.iter_batches(batch_size=batch_size):
            for record in batch.to_pylist():
                row += 1
                yield row, {k: v for k, v in record.items() if v is not None}
    except (pyarrow.lib.ArrowException, OSError, ValueError) as exc:  # ValueError: text not UTF-8
        raise ReadError(f"row {row + 1}: unreadable Parquet data: {exc}") from None


def iter_file(path: Path, fmt: str | None = None) -> Iterator[tuple[int, Item]]:
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ReadError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "parquet":
        yield from iter_parquet(path)
        return
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise ReadError(f"{path}: {exc.strerror}") from None
    with stream:
        yield from (iter_csv(stream) if fmt == "csv" else iter_jsonl(stream))
