"""The nightly rescoring job for a Spark cluster: ``spark-submit`` this module.

    spark-submit --master yarn --deploy-mode cluster \\
        --py-files credo.zip src/credo/scoring/spark_job.py \\
        --ledger s3a://registry/export/2026-03-01 --out s3a://registry/scores/2026-03-01 \\
        --known-at 2026-03-01T16:00:00Z

It reads only the ledger export (records, appeals, catalog relations and the
manifest), asks every scheme in the export (or ``--scheme``) for its score
on its own local date at ``--known-at``, and writes the result as Parquet.
The master, executors and memory come from spark-submit; nothing is set
here, so the same file runs in local mode for tests (``--master local[2]``).

>>> parse_args(["--ledger", "x", "--out", "y"]).scheme
[]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from credo.scoring.relations import Evaluation, local_date


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="credo nightly rescoring on Spark")
    ap.add_argument("--ledger", required=True, help="a `credo export ledger` folder (any Hadoop path)")
    ap.add_argument("--out", required=True, help="where to write the scores (Parquet folder)")
    ap.add_argument("--scheme", action="append", default=[], help="scheme code (repeatable; default all)")
    ap.add_argument("--as-of", default=None, help="valid date for every scheme (default: local today)")
    ap.add_argument("--known-at", default=None, help="knowledge time, ISO 8601 (default: now)")
    return ap.parse_args(argv)


def questions(manifest: dict[str, Any], args: argparse.Namespace) -> list[Evaluation]:
    """One evaluation per scheme: its own local date at the knowledge time."""
    k = datetime.now(UTC) if args.known_at is None else datetime.fromisoformat(
        args.known_at.replace("Z", "+00:00"))
    k = k if k.tzinfo is not None else k.replace(tzinfo=UTC)
    zones: dict[str, str] = manifest["timezones"]
    schemes = args.scheme or sorted(zones)
    unknown = [s for s in schemes if s not in zones]
    if unknown:
        raise SystemExit(f"--scheme: {unknown[0]} is not in the export")
    return [
        Evaluation(i, s, date.fromisoformat(args.as_of) if args.as_of else local_date(k, zones[s]), k)
        for i, s in enumerate(schemes, start=1)
    ]


def run(spark: Any, argv: Sequence[str] | None = None) -> list[Evaluation]:
    """The job on a running session; returns the questions it answered."""
    from credo.scoring.batch import rescore_spark

    args = parse_args(argv)
    # The manifest is small: read it through Spark so that any Hadoop path works.
    text = "\n".join(r.value for r in spark.read.text(f"{args.ledger}/manifest.json").collect())
    evals = questions(json.loads(text), args)
    rescore_spark(spark, args.ledger, evals, out=args.out)
    return evals


def main(argv: Sequence[str] | None = None) -> None:
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("credo-rescore").getOrCreate()
    try:
        run(spark, argv)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
