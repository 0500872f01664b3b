"""Background upkeep: a loop that outlives its failed rounds, counts them and logs each outage once."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY

from credo.store import upkeep
from credo.store.upkeep import Upkeep


class Outage(Upkeep):
    """Three rounds fail (the database went away), then rounds complete again."""

    task = "test-outage"

    def __init__(self) -> None:
        super().__init__(interval=0.001)
        self.calls = 0
        self.closed_on: str | None = None
        self.recovered = threading.Event()

    def round(self) -> None:
        self.calls += 1
        if self.calls <= 3:
            raise ConnectionError("server closed the connection unexpectedly")
        if self.calls == 5:
            self.recovered.set()

    def closing(self) -> None:
        self.closed_on = threading.current_thread().name


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"task": "test-outage"}) or 0.0


def test_a_loop_goes_on_after_failed_rounds_and_logs_the_outage_once_at_each_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failed, completed = _sample("credo_upkeep_failures_total"), _sample("credo_upkeep_rounds_total")
    outage = Outage()
    outage.start()
    try:
        assert outage.recovered.wait(10)
    finally:
        outage.stop()
    assert outage.closed_on == "test-outage"  # on the loop's own thread, once it stopped
    health = outage.health
    assert (health.failed, health.streak) == (3, 0)
    assert health.completed >= 2
    assert health.last_error == "ConnectionError: server closed the connection unexpectedly"
    assert _sample("credo_upkeep_failures_total") == failed + 3
    assert _sample("credo_upkeep_rounds_total") == completed + health.completed
    ours = [r for r in caplog.records if r.name == "credo.upkeep"]
    lines = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in ours]
    assert lines == [
        ("WARNING", "test-outage: a round failed; the next tries again", True),
        ("WARNING", "test-outage: a round completed after 3 that failed", False),
    ]


def test_the_module_example() -> None:
    import doctest

    result = doctest.testmod(upkeep)
    assert result.attempted > 0 and result.failed == 0
