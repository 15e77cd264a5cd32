#!/usr/bin/env bash
# `make train`: the learned interest head beside popularity, zero-shot and SASRec (each
# trained row over 3 seeds, epochs chosen on validation), with the cold-start rows, on
# MovieLens; writes the best seed's head as a model version (made current with
# SET_CURRENT=1, which `make results` then evaluates), then docs/train.json and the
# README's learned-head section. Needs the train extra (torch).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-../shared/data/movielens-latest-small}
SEEDS=${SEEDS:-3}
SASREC_SEEDS=${SASREC_SEEDS:-$SEEDS}
SASREC_EPOCHS=${SASREC_EPOCHS:-400}
CLI=.venv/bin/interest-stream
CURRENT_FLAG=()
[ "${SET_CURRENT:-0}" = 1 ] && CURRENT_FLAG=(--set-current)

[ -f data/models/CURRENT ] || $CLI export --out data/models
mkdir -p docs
$CLI train --dataset movielens --path "$DATASET" --seeds "$SEEDS" --sasrec-seeds "$SASREC_SEEDS" \
    --sasrec-epochs "$SASREC_EPOCHS" --write "${CURRENT_FLAG[@]}" --json \
    >docs/train.json.new
mv docs/train.json.new docs/train.json
.venv/bin/python -m streams.evaluation.report --readme README.md --train docs/train.json \
    --command "make train (SEEDS=$SEEDS SASREC_SEEDS=$SASREC_SEEDS SASREC_EPOCHS=$SASREC_EPOCHS)"
