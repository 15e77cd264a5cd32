# One command for checks, the same locally and in CI (.ci/run calls `make setup lint test`).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MODELS ?= data/models

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

.PHONY: setup
setup: $(PY) ## create .venv and install the package with the train and dev extras
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev]'
	touch $(VENV)/.installed

# A fresh clone's `make test` sets up first (the suite starts the broker it needs itself).
$(VENV)/.installed:
	$(MAKE) setup

.PHONY: test
test: $(VENV)/.installed ## run the whole test suite (sets up first on a fresh clone)
	$(PY) -m pytest

.PHONY: lint
lint: ## ruff (lint + format check) and mypy
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

.PHONY: model
model: ## export the default model (fp32) into $(MODELS)
	$(VENV)/bin/interest-stream export --out $(MODELS)

.PHONY: demo
demo: ## set up, export, start Kafka and a worker, replay MovieLens, recommend, stop
	bash scripts/demo.sh

.PHONY: results
results: ## MovieLens quality, offline and through the pipeline: README table + docs/ plot
	bash scripts/results.sh

.PHONY: train
train: ## the learned interest head beside zero-shot and SASRec (3 seeds): README table
	bash scripts/train.sh

.PHONY: soak
soak: ## 30 minutes at 500 events/s (10% reviews): the worker's memory and the lag, sampled
	$(VENV)/bin/interest-stream bench soak --minutes 30 --rate 500 --json >data/soak.json
	$(PY) -c "import json; r = json.load(open('data/soak.json')); [print(k, r[k]) for k in r if k != 'samples']"

.PHONY: recovery
recovery: ## kill -9 and restart, 5 runs each with dynamic and static membership: recovery times
	bash scripts/recovery.sh

.PHONY: reliability
reliability: ## the fault scenarios against the local broker: README reliability table
	bash scripts/reliability.sh

.PHONY: feedback-round
feedback-round: ## MovieLens replayed with feedback through a worker, then one feedback round
	bash scripts/feedback_round.sh

.PHONY: finetune-curve
finetune-curve: ## MovieLens fine-tuning rounds in a scratch models root: curve table in docs/finetuning.md
	bash scripts/finetune_curve.sh

.PHONY: compose-smoke
compose-smoke: $(VENV)/.installed ## docker/compose.yml run for real with podman on local images: checks table
	$(PY) -m pip install --quiet 'podman-compose==1.6.0'
	$(PY) scripts/compose_smoke.py $(if $(README),--readme)

.PHONY: bench-e2e
bench-e2e: ## broker + worker + producer: sustained events/s and freshness
	$(VENV)/bin/interest-stream bench e2e

.PHONY: bench-encoder
bench-encoder: ## raw ONNX Runtime vs the runtime encoder, on the current model
	$(VENV)/bin/interest-stream bench encoder --model $(MODELS)
