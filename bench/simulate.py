"""Benchmark: a synthetic population of ten million records written as Parquet.

    .venv/bin/python bench/simulate.py                     # 10,000,000 subjects over 10 years: ~10.1M records
    .venv/bin/python bench/simulate.py --subjects 1_000_000 --years 5
    .venv/bin/python bench/simulate.py --write-results     # also update bench/RESULTS.md, "Simulate"

Runs the real command, ``credo simulate population ... --out DIR --json``,
as a child process and times it from start to exit (Python start-up,
loading the catalogs, generating, writing every Parquet file). The target
(issue 7) is ten million records in under a minute on the project's 2-core
machine. Prints the command, the data size, the machine and the result;
the generate/write split comes from the command's own JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Simulate"
TARGET_SECONDS = 60.0

# `credo simulate` until cli/__init__.py registers it; the same app either way.
LAUNCH = """
import sys
from credo.cli import app, simulate
if not any(group.name == "simulate" for group in app.registered_groups):
    app.add_typer(simulate.app, name="simulate")
sys.argv[0] = "credo"
app()
"""


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {ram:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load}"
    )


def size_of(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*.parquet") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def write_results(text: str) -> None:
    """Replace (or add) the "Simulate" section of bench/RESULTS.md, leaving the others as they are."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    RESULTS.write_text(new)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", default="2025-06-30")
    parser.add_argument("--out", type=Path, help="output folder (default: a temporary one, removed after)")
    parser.add_argument("--write-results", action="store_true", help="record the result in bench/RESULTS.md")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="credo-bench-simulate-"))
    out = args.out or workdir / "population"
    cli = [
        "simulate",
        "population",
        "--subjects",
        str(args.subjects),
        "--years",
        str(args.years),
        "--seed",
        str(args.seed),
        "--end",
        args.end,
        "--out",
        str(out),
        "--json",
    ]
    shown = [*cli[:-2], str(args.out) if args.out else "DIR", "--json"]
    command = "credo " + " ".join(shown)
    host = machine()
    print(f"command: {command}", flush=True)
    print(f"machine: {host}", flush=True)
    env = {**os.environ, "CREDO_DATABASE_URL": f"sqlite:///{workdir / 'unused.db'}"}
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", LAUNCH, *cli], cwd=workdir, env=env, capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the command failed ({done.returncode}):\n{done.stderr}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = usage.ru_maxrss / 2**20  # KiB -> GiB
        cpu = usage.ru_utime + usage.ru_stime
        summary = json.loads(done.stdout)
        files, size = size_of(out)
    finally:
        if args.out is None:
            shutil.rmtree(workdir, ignore_errors=True)
    counts, timings = summary["counts"], summary["timings"]
    verdict = "under" if seconds < TARGET_SECONDS else "OVER"
    lines = [
        f"command: `{command}` (bench/simulate.py)",
        f"machine: {host}",
        f"data: {counts['subjects']:,} subjects ({counts['persons']:,} persons, "
        f"{counts['organisations']:,} organisations), {counts['records']:,} records "
        f"({counts['incidents']:,} incidents, {counts['retractions']:,} retractions, "
        f"{counts['restorations']:,} restorations), {counts['appeals']:,} appeal intents; "
        f"{files} Parquet files, {size / 2**20:,.0f} MiB (zstd)",
        f"time: {seconds:.1f} s from start to exit ({verdict} the {TARGET_SECONDS:.0f} s target): "
        f"generate {timings['generate_s']:.1f} s, write {timings['write_s']:.1f} s, "
        f"the rest start-up and catalogs; {cpu:.1f} s of CPU; peak memory {peak:.1f} GiB; "
        f"{counts['records'] / seconds / 1e6:.2f} M records/s",
    ]
    for line in lines[2:]:
        print(line)
    if args.write_results:
        write_results(f"{SECTION}\n\n" + "\n".join(f"- {line}" for line in lines) + "\n")


if __name__ == "__main__":
    main()
