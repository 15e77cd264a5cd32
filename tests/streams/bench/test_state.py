"""bench state: its option check, and a small run of both stores against the broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli import main
from streams.settings import Settings


def test_state_refuses_no_users(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "state", "--users", "0"]) == 2
    assert "--users must be at least 1" in capsys.readouterr().err


@pytest.mark.kafka
@pytest.mark.slow
def test_both_stores_hold_every_user_and_restore_after_a_restart(
    kafka_broker, tiny_model_dir: Path
) -> None:
    """30 users, a click each, in memory and in RocksDB: each run returns only once the
    group committed every click, and again the probe after the restart."""
    from streams.bench.state import run_state

    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap, model_dir=tiny_model_dir, window_ms=50
    )
    result = run_state(settings, users=30, items=5, progress=False)
    assert set(result["stores"]) == {"memory", "rocksdb"}
    for store, figures in result["stores"].items():
        assert figures["fold_s"] > 0 and figures["restart_s"] > 0, store
        assert figures["rss_mb_restarted"] > 10, store
    assert result["stores"]["rocksdb"]["disk_mb"] > 0  # its states were on disk
    assert result["stores"]["memory"]["disk_mb"] == 0
