"""A failed test shows its workers' logs (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import log_tail

pytest_plugins = ["pytester"]


def test_the_tail_leaves_out_the_broker_away_noise_and_counts_it(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    noise = "Unable connect to node with id 1: [Errno 111] Connect call failed"
    log.write_text("\n".join(["start", noise, noise, "crashed: KafkaError", "stopping"]))
    assert log_tail(log).splitlines() == [
        "(2 lines about the broker being away left out)",
        "start",
        "crashed: KafkaError",
        "stopping",
    ]
    assert log_tail(log, lines=1).splitlines()[1:] == ["stopping"]


def test_a_failed_test_shows_the_logs_in_its_folder(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa: F401")
    pytester.makepyfile(
        """
        def test_fails(tmp_path):
            (tmp_path / "worker.log").write_text("the worker said why")
            assert False

        def test_passes(tmp_path):
            (tmp_path / "worker.log").write_text("nothing to see")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*worker.log, last lines*", "the worker said why"])
    assert "nothing to see" not in result.stdout.str()
