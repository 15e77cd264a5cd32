#!/usr/bin/env bash
# `make reliability`: run the fault scenarios (tests marked `reliability`) against the local
# broker and write their figures into the README's reliability table (tests/reliability.py).
set -euo pipefail
cd "$(dirname "$0")/.."
report=data/reliability.jsonl
mkdir -p data && rm -f "$report"
.venv/bin/interest-stream kafka start
INTEREST_RELIABILITY_REPORT="$report" .venv/bin/python -m pytest -m reliability -q
.venv/bin/python -m tests.reliability "$report" --readme README.md
