#!/usr/bin/env bash
# `make feedback-round`: the feedback loop on MovieLens, end to end. A worker takes the
# replayed events and the feedback derived from the ratings (`replay --feedback`), its
# feedback agent stores the examples, then one `finetune --feedback` round trains, exports
# and gates a candidate. Everything runs in a scratch copy of the models root
# (data/feedback-round) on its own topics, so the serving version stays as it is; the
# round's record is written to docs/feedback_round.json.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-../shared/data/movielens-latest-small}
STEPS=${STEPS:-100}
CLI=.venv/bin/interest-stream

[ -f data/models/CURRENT ] || $CLI export --out data/models
current=$(cat data/models/CURRENT)
scratch=data/feedback-round
rm -rf "$scratch" && mkdir -p "$scratch/models"
cp -r "data/models/$current" "$scratch/models/" && cp data/models/CURRENT "$scratch/models/"
$CLI kafka start

run="feedback$(date +%s)"
export INTEREST_TOPIC_PREFIX="$run." INTEREST_CONSUMER_GROUP="$run"
export INTEREST_DATA_DIR="$scratch" INTEREST_MODEL_DIR="$scratch/models" INTEREST_METRICS_PORT=0
$CLI topics >/dev/null
$CLI worker >"$scratch/worker.log" 2>&1 &
worker=$!
trap 'kill "$worker" 2>/dev/null || true' EXIT

echo "== replaying $DATASET with feedback (worker log: $scratch/worker.log)"
$CLI replay --path "$DATASET" --wait-items 900 --feedback
.venv/bin/python - <<PY
from streams.settings import Settings
from streams.kafka.groups import wait_caught_up
s = Settings()
topics = [s.topic(t) for t in ("items", "clicks", "views", "reviews", "feedback")]
wait_caught_up(s, s.consumer_group, topics, 3600)
PY
kill "$worker" && wait "$worker" 2>/dev/null || true

if [ "${SWEEP:-0}" = 1 ]; then
  echo "== the warm start at other settings, against the served head"
  .venv/bin/python scripts/feedback_sweep.py
fi

echo "== one fine-tuning round on the stored examples"
mkdir -p docs
/usr/bin/time -f "%e s" $CLI finetune --feedback --steps "$STEPS" --json >docs/feedback_round.json
.venv/bin/python -c "
import json; r = json.load(open('docs/feedback_round.json'))
print(r['decision'], r['data'], 'hold-out', r['hold_out'], r['seconds'], 's')"
