#!/usr/bin/env bash
# `make demo`: set up, export the default model, start Kafka and a worker, replay MovieLens,
# print recommendations with concepts for a few users and the measured freshness, and stop
# everything it started (a broker already running is left running). Each run uses its own
# topics, consumer group and folder under data/; the previous runs' folders are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-../shared/data/movielens-latest-small}
USERS=${USERS:-"1 414 599"}
CLI=${CLI:-.venv/bin/interest-stream}  # tests put a stand-in here
SETUP=${SETUP:-make setup}

$SETUP
[ -f data/models/CURRENT ] || $CLI export --out data/models
started=no  # stop at the end only a broker this run started
if ! $CLI kafka status >/dev/null; then
    $CLI kafka start
    started=yes
fi

# Each run's own folder; the folders of earlier runs are removed first (KEEP=1 keeps them).
[ "${KEEP:-0}" = 1 ] || rm -rf data/demo[0-9]*
run="demo$(date +%s)"
export INTEREST_TOPIC_PREFIX="$run." INTEREST_CONSUMER_GROUP="$run"
export INTEREST_DATA_DIR="data/$run" INTEREST_MODEL_DIR=data/models
export INTEREST_STATS_FILE="data/$run/stats.json"
mkdir -p "data/$run"

$CLI topics >/dev/null  # create the topics before the worker subscribes
$CLI worker >"data/$run/worker.log" 2>&1 &
worker=$!
cleanup() {
    kill "$worker" 2>/dev/null && wait "$worker" 2>/dev/null || true
    [ "$started" = no ] || $CLI kafka stop >/dev/null
}
trap cleanup EXIT

echo "== replaying $DATASET (worker log: data/$run/worker.log)"
$CLI replay --path "$DATASET" --wait-items 900  # events after the worker has the items
echo "== waiting for the worker to catch up"
.venv/bin/python - <<PY
from streams.settings import Settings
from streams.kafka.groups import wait_caught_up
s = Settings()
wait_caught_up(s, s.consumer_group, [s.topic(t) for t in ("items", "clicks", "views", "reviews")], 1800)
PY
sleep 1.5  # the worker writes its stats every second
kill "$worker" && wait "$worker" 2>/dev/null || true  # the embedded Qdrant is one process's

echo "== recommendations"
for user in $USERS; do $CLI recommend "$user" -k 5; echo; done

echo "== freshness (Qdrant acknowledged - produced), replay at full speed"
.venv/bin/python - <<PY
import orjson, numpy as np
stats = orjson.loads(open("$INTEREST_STATS_FILE", "rb").read())
pairs = np.array(stats["freshness"])  # (produced ms, freshness ms) per event
f = pairs[:, 1]
span_s = ((pairs[:, 0] + f).max() - pairs[:, 0].min()) / 1000
print(f"events {len(f)}  p50 {np.percentile(f, 50):.0f} ms  p99 {np.percentile(f, 99):.0f} ms"
      "  (queueing included: the replay outruns the worker)")
print(f"throughput {len(f) / span_s:.0f} events/s (first produced to last acknowledged by Qdrant)")
print("counts", stats["counts"])
PY
