#!/usr/bin/env bash
# `make finetune-curve`: fine-tuning rounds on MovieLens, from the current model version, in a
# scratch copy of the models root (data/finetune-curve, so the serving version stays as it
# is); writes docs/finetune_curve.json and the fine-tuning table in docs/finetuning.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-../shared/data/movielens-latest-small}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-100}
CLI=.venv/bin/interest-stream

[ -f data/models/CURRENT ] || $CLI export --out data/models
current=$(cat data/models/CURRENT)
scratch=data/finetune-curve
rm -rf "$scratch" && mkdir -p "$scratch"
cp -r "data/models/$current" "$scratch/" && cp data/models/CURRENT "$scratch/"
mkdir -p docs
$CLI finetune --dataset movielens --path "$DATASET" --model "$scratch" \
    --rounds "$ROUNDS" --steps "$STEPS" --json >docs/finetune_curve.json.new
mv docs/finetune_curve.json.new docs/finetune_curve.json
.venv/bin/python -m streams.evaluation.report --readme docs/finetuning.md \
    --curve docs/finetune_curve.json --command "make finetune-curve"
