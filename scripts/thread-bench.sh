#!/usr/bin/env bash
# Epoch time of the seed model, idle and beside one busy process, at vaekit's default
# thread count and at each fixed count: the BENCHMARKS.md "shared CPU" table.
#   scripts/thread-bench.sh [DATA_DIR] [LIMIT]
# Prints one line per case: competitors, --threads, threads used, seconds per epoch.
set -euo pipefail
DATA=${1:-../shared/data/mnist}
LIMIT=${2:-12000}
VAEKIT=${VAEKIT:-.venv/bin/vaekit}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
unset VAEKIT_THREADS
run() {  # $1: label, $2...: extra flags
    local label=$1; shift
    local out="$WORK/$label-$RANDOM"
    "$VAEKIT" train --data-dir "$DATA" --limit "$LIMIT" --epochs 2 --no-pictures --no-plots \
        --no-progress --out "$out" "$@" > /dev/null
    python3 - "$out" <<'PY'
import json, sys
records = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
config = json.load(open(sys.argv[1] + "/config.json"))
print(config["train"]["threads"], records[-1]["epoch_seconds"])
PY
}
for busy in 0 1; do
    if [ "$busy" = 1 ]; then python3 -c "while True: pass" & sleep 1; fi
    for threads in default 1 2; do
        flags=(); [ "$threads" = default ] || flags=(--threads "$threads")
        read -r used seconds < <(run "b$busy-t$threads" "${flags[@]}")
        echo "competitors=$busy --threads=$threads used=$used epoch_seconds=$seconds"
    done
    if [ "$busy" = 1 ]; then kill %1; wait 2>/dev/null || true; fi
done
