#!/usr/bin/env bash
# `make recovery`: the kill -9 scenario RUNS times in a row (default 5) with dynamic and with
# static group membership (INTEREST_CONSUMER_INSTANCE_ID); prints each run's recovery time
# (restart -> every event committed) and nothing lost or duplicated, from the same oracle
# check as the reliability table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
report=data/recovery.jsonl
mkdir -p data && rm -f "$report"
.venv/bin/interest-stream kafka start >/dev/null
for n in $(seq "$RUNS"); do
    INTEREST_RELIABILITY_REPORT="$report" .venv/bin/python -m pytest -q \
        "tests/streams/worker/test_worker.py::test_a_killed_worker_recovers_its_state_and_counts_nothing_twice[memory]" \
        "tests/streams/worker/test_worker.py::test_a_killed_worker_recovers_its_state_and_counts_nothing_twice[memory, static]" \
        >/dev/null
    echo "run $n of $RUNS done" >&2
done
.venv/bin/python - "$report" <<'PY'
import sys, orjson
rows = [orjson.loads(line) for line in open(sys.argv[1], "rb")]
for scenario in dict.fromkeys(r["scenario"] for r in rows):
    mine = [r for r in rows if r["scenario"] == scenario]
    times = [r["recovery_s"] for r in mine]
    print(f"{scenario}: recovery {', '.join(f'{t:.1f}' for t in times)} s "
          f"(max {max(times):.1f}); lost {sum(r['lost'] for r in mine)}, "
          f"duplicated {sum(r['duplicated'] for r in mine)}, over {len(mine)} runs")
PY
