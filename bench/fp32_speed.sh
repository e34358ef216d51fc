#!/usr/bin/env bash
# fp32-path speed on random SmolLM2-135M / TinyLlama-1.1B shapes at 1 and 2
# threads, beside the decode memory-bandwidth bound and (when available)
# llama.cpp F16 on the same shapes, measured in the same run. A thin wrapper
# of bench/compare_llamacpp.py restricted to bwla fp32 and llama.cpp F16
# (that script exports the GGUF itself with `bwla export-gguf`).
#
#   bench/fp32_speed.sh [--bwla BIN] [--cache DIR] [--models smollm2-135m,tinyllama-1.1b]
#                       [--threads 1,2] [--pp 128] [--tg 64] [--reps 3]
#                       [--llama-cpp DIR] [--out FILE]
#
# llama.cpp: DIR (or env LLAMA_CPP_DIR) must hold llama-bench and llama-quantize
# (directly, in bin/ or in build/bin/). Without them the llama.cpp rows say
# "skipped". Benchmark only: nothing here asserts a speed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
args=(--variants fp32,f16 --no-write --work /tmp/bwla-bench --tg 64)
OUT=""
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bwla|--models|--threads|--pp|--tg|--reps|--llama-cpp) args+=("$1" "$2"); shift 2 ;;
    --cache) args+=(--work "$2"); shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done
table="$(python3 "$here/bench/compare_llamacpp.py" "${args[@]}")"
echo "$table"
[[ -n "$OUT" ]] && echo "$table" >"$OUT"
exit 0
