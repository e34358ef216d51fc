#!/usr/bin/env bash
# Aggregate throughput of `bwla serve` at several concurrencies (continuous
# batching: the decode steps of active slots run as one batched forward).
#   bench/serve_throughput.sh MODEL [BWLA_BIN] [THREADS] [CONCURRENCIES] [MAX_TOKENS]
# e.g. bench/serve_throughput.sh /tmp/tinyllama-packed build/bwla 2 1,4 64
# Greedy completions of short prompts (8..MAX_TOKENS tokens each), 16 requests
# per concurrency unless BWLA_REPORT_REQUESTS says otherwise; prints req/s and
# completion tokens/s per concurrency (and a JSON line). Needs Node.js + npm
# (the official openai client is installed into build/serve-node).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
model=$1 bin=${2:-$root/build/bwla} threads=${3:-2} conc=${4:-1,4} maxtok=${5:-64}
"$root/tests/serve/run.sh" setup "$root/build/serve-node"
exec "$root/tests/serve/run.sh" load.test.mjs "$root/build/serve-node" \
  BWLA_BIN="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" BWLA_MODEL="$model" BWLA_REQUESTS=0 \
  BWLA_REPORT="$conc" BWLA_MAX_TOKENS="$maxtok" BWLA_THREADS="$threads" \
  BWLA_PARALLEL="$(echo "$conc" | tr ',' '\n' | sort -n | tail -1)" BWLA_TIME_LIMIT_S=3000 \
  BWLA_REPORT_REQUESTS="${BWLA_REPORT_REQUESTS:-16}"
