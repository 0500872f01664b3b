"""bench/client_gc.py: the load generators make no full collection inside a timed phase."""

from __future__ import annotations

import gc
from typing import Any

from helpers import bench_module


class _Sample:  # like bench/load.py's: one tracked object per request, kept to the end
    def __init__(self, n: int) -> None:
        self.n = n


def _full_collections_while(work: Any) -> int:
    full = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(info)

    gc.callbacks.append(seen)
    try:
        work()
    finally:
        gc.callbacks.remove(seen)
    return len(full)


def test_a_phase_keeping_a_sample_per_request_runs_no_full_collection() -> None:
    no_full_collections = bench_module("client_gc").no_full_collections
    thresholds = gc.get_threshold()

    def phase() -> None:
        samples = [_Sample(i) for i in range(300_000)]
        assert len(samples) == 300_000

    assert _full_collections_while(phase) > 0  # what a phase did before

    def quiet() -> None:
        with no_full_collections():
            phase()

    assert _full_collections_while(quiet) == 1  # its own, before the phase starts
    assert gc.get_threshold() == thresholds
