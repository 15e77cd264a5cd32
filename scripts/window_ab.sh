#!/usr/bin/env bash
# `bash scripts/window_ab.sh`: which window wait sets freshness below capacity. Runs
# `bench e2e` (no ceiling) with INTEREST_WINDOW_MS set to each of WINDOWS (default "250 100"),
# alternating, ROUNDS times (default 2), on a broker started here, and prints one line per
# run: the window, events/s (and with 10% reviews), freshness p50/p99 at RATE events/s
# (default 400, 10% reviews) and at half the measured capacity with reviews.
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOWS=${WINDOWS:-"250 100"}
ROUNDS=${ROUNDS:-2}
RATE=${RATE:-400}
EVENTS=${EVENTS:-20000}
FOR_S=${FOR_S:-30}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
.venv/bin/interest-stream kafka start >/dev/null
for round in $(seq "$ROUNDS"); do
    for w in $WINDOWS; do
        INTEREST_WINDOW_MS=$w .venv/bin/interest-stream bench e2e --events "$EVENTS" \
            --rate "$RATE" --seconds "$FOR_S" --no-ceiling --json >"$out" 2>/dev/null
        .venv/bin/python - "$out" "$round" <<'PY'
import sys, orjson
r = orjson.loads(open(sys.argv[1], "rb").read())
print(
    f"round {sys.argv[2]} window {r['window_ms']:.0f} ms: {r['events_per_s']} events/s, "
    f"{r['events_per_s_with_reviews']} with reviews; at {r['freshness_rate']:.0f}/s p50 "
    f"{r['freshness_p50_ms']:.0f} ms p99 {r['freshness_p99_ms']:.0f} ms; at half capacity "
    f"({r['freshness_half_capacity_rate']:.0f}/s) p50 {r['freshness_half_capacity_p50_ms']:.0f} "
    f"ms p99 {r['freshness_half_capacity_p99_ms']:.0f} ms",
    flush=True,
)
PY
    done
done
