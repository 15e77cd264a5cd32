#!/usr/bin/env bash
# `make results`: evaluate on MovieLens under the published protocol, offline and through the
# pipeline (Kafka, a worker, Qdrant), then rewrite docs/results.json, docs/recall_at_10.png
# and the README's results section. Stops the broker if it started it.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-../shared/data/movielens-latest-small}
CLI=.venv/bin/interest-stream

[ -f data/models/CURRENT ] || $CLI export --out data/models
started=no
if ! $CLI kafka status >/dev/null; then
    $CLI kafka start
    started=yes
fi
cleanup() { [ "$started" = no ] || $CLI kafka stop >/dev/null; }
trap cleanup EXIT

mkdir -p docs
$CLI eval --dataset movielens --path "$DATASET" --through-pipeline --json >docs/results.json.new
mv docs/results.json.new docs/results.json
.venv/bin/python -m streams.evaluation.report --readme README.md \
    --results docs/results.json --plot docs/recall_at_10.png --command "make results"
