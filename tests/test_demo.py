"""`make demo`'s own housekeeping, with a stand-in for the CLI (the demo itself is a
5-minute run): it stops only a broker it started, and removes earlier runs' folders."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Logs each call; `kafka status` answers as BROKER says; `replay` fails, which ends the demo
# early (its cleanup still runs).
STAND_IN = """#!/usr/bin/env bash
echo "$*" >>"$CALLS"
case "$1 $2" in
  "kafka status") [ "$BROKER" = running ] ;;
  "replay "*) exit 3 ;;
  *) exit 0 ;;
esac
"""


def run_demo(tmp_path: Path, broker: str) -> tuple[int, list[str]]:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo.sh", tmp_path / "scripts" / "demo.sh")
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "data" / "models" / "CURRENT").write_text("v\n")
    (tmp_path / "data" / "demo1700000000").mkdir()  # an earlier run's folder
    cli = tmp_path / "cli"
    cli.write_text(STAND_IN)
    cli.chmod(0o755)
    calls = tmp_path / "calls"
    env = os.environ | {
        "CLI": str(cli),
        "SETUP": "true",
        "CALLS": str(calls),
        "BROKER": broker,
        "DATASET": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "demo.sh")], env=env, capture_output=True, timeout=60
    )
    return done.returncode, calls.read_text().splitlines()


@pytest.mark.parametrize("broker", ["running", "stopped"])
def test_the_demo_stops_only_a_broker_it_started_and_clears_earlier_runs(
    tmp_path: Path, broker: str
) -> None:
    code, calls = run_demo(tmp_path, broker)
    assert code == 3  # the stand-in's replay failed: the demo stopped there
    assert any(c.startswith("replay") for c in calls)
    started = "kafka start" in calls
    stopped = "kafka stop" in calls
    assert started == stopped == (broker == "stopped"), calls
    folders = sorted(p.name for p in (tmp_path / "data").glob("demo*"))
    assert len(folders) == 1 and folders[0] != "demo1700000000"  # only this run's
