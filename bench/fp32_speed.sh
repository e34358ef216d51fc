#!/usr/bin/env bash
# fp32-path speed on random SmolLM2-135M / TinyLlama-1.1B shapes at 1 and 2
# threads, beside the decode memory-bandwidth bound and (when available)
# llama.cpp F16 on the same shapes, measured in the same run.
#
#   bench/fp32_speed.sh [--bwla BIN] [--cache DIR] [--models smollm2-135m,tinyllama-1.1b]
#                       [--threads 1,2] [--pp 128] [--tg 64] [--reps 3]
#                       [--llama-cpp DIR] [--gguf-smollm FILE] [--gguf-tinyllama FILE]
#                       [--out FILE]
#
# llama.cpp: DIR (or env LLAMA_CPP_DIR) must hold llama-bench (directly or in
# bin/); the GGUF files (F16, same shapes) are supplied by the caller, since
# converting checkpoints is not this repository's business. Without them the
# llama.cpp columns say "skipped". Benchmark only: nothing here asserts a speed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BWLA="${BWLA:-}"
CACHE=/tmp/bwla-bench
MODELS=smollm2-135m,tinyllama-1.1b
THREADS=1,2
PP=128
TG=64
REPS=3
LLAMA_DIR="${LLAMA_CPP_DIR:-}"
GGUF_SMOLLM=""
GGUF_TINYLLAMA=""
OUT=""

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --bwla) BWLA="$2"; shift 2 ;;
    --cache) CACHE="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --pp) PP="$2"; shift 2 ;;
    --tg) TG="$2"; shift 2 ;;
    --reps) REPS="$2"; shift 2 ;;
    --llama-cpp) LLAMA_DIR="$2"; shift 2 ;;
    --gguf-smollm) GGUF_SMOLLM="$2"; shift 2 ;;
    --gguf-tinyllama) GGUF_TINYLLAMA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done

if [[ -z "$BWLA" ]]; then
  for c in "$here/build-bench/bwla" "$here/build/bwla"; do
    [[ -x "$c" ]] && { BWLA="$c"; break; }
  done
fi
[[ -x "$BWLA" ]] || { echo "bwla binary not found (use --bwla BIN)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to read JSON" >&2; exit 1; }

# JSON field reader: jget FILE EXPR (python expression over j).
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

LLAMA_BENCH=""
if [[ -n "$LLAMA_DIR" ]]; then
  for c in "$LLAMA_DIR/llama-bench" "$LLAMA_DIR/bin/llama-bench" "$LLAMA_DIR/build/bin/llama-bench"; do
    [[ -x "$c" ]] && { LLAMA_BENCH="$c"; break; }
  done
  [[ -n "$LLAMA_BENCH" ]] || echo "llama.cpp: no llama-bench under $LLAMA_DIR; skipped" >&2
else
  echo "llama.cpp: no --llama-cpp DIR / LLAMA_CPP_DIR given; skipped" >&2
fi

mkdir -p "$CACHE"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

rows=()
IFS=, read -ra model_list <<<"$MODELS"
IFS=, read -ra thread_list <<<"$THREADS"
for preset in "${model_list[@]}"; do
  dir="$CACHE/$preset-bf16"
  if [[ ! -f "$dir/config.json" || ! -f "$dir/model.safetensors" ]]; then
    echo "making random checkpoint $dir ..." >&2
    "$BWLA" make-random --preset "$preset" --dtype bf16 -o "$dir" >&2
  fi
  gguf=""
  case "$preset" in
    smollm2-135m) gguf="$GGUF_SMOLLM" ;;
    tinyllama-1.1b) gguf="$GGUF_TINYLLAMA" ;;
  esac
  for t in "${thread_list[@]}"; do
    echo "bwla bench $preset -t $t ..." >&2
    j="$work/$preset-$t.json"
    # --bandwidth: the read-bandwidth probe runs right after the model bench, in the same process.
    "$BWLA" bench "$dir" -t "$t" --pp "$PP" --tg "$TG" --reps "$REPS" --bandwidth --json >"$j"
    pp_tps=$(jget "$j" "'%.1f' % j['pp${PP}_tps']")
    tg_tps=$(jget "$j" "'%.2f' % j['tg${TG}_tps']")
    bw=$(jget "$j" "'%.1f' % j['bandwidth_${t}t_gbps']")
    bound=$(jget "$j" "'%.2f' % j['tg_bound_tps']")
    ratio=$(jget "$j" "'%.2f' % (j['tg${TG}_tps'] / j['tg_bound_tps'])")
    mib=$(jget "$j" "'%.0f' % (j['decode_bytes_per_token'] / 2**20)")
    lpp="skipped"; ltg="skipped"
    if [[ -n "$LLAMA_BENCH" && -n "$gguf" && -f "$gguf" ]]; then
      echo "llama-bench $gguf -t $t ..." >&2
      lj="$work/llama-$preset-$t.json"
      if "$LLAMA_BENCH" -m "$gguf" -p "$PP" -n "$TG" -t "$t" -r "$REPS" -o json >"$lj" 2>"$work/llama.err"; then
        lpp=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(' '.join('%.1f'%x['avg_ts'] for x in r if x.get('n_prompt',0)>0 and x.get('n_gen',0)==0) or 'n/a')" "$lj")
        ltg=$(python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(' '.join('%.2f'%x['avg_ts'] for x in r if x.get('n_gen',0)>0 and x.get('n_prompt',0)==0) or 'n/a')" "$lj")
      else
        lpp="failed"; ltg="failed"; cat "$work/llama.err" >&2
      fi
    elif [[ -n "$LLAMA_BENCH" ]]; then
      echo "llama.cpp: no GGUF for $preset (--gguf-smollm / --gguf-tinyllama); skipped" >&2
    fi
    rows+=("| $preset | $t | $pp_tps | $tg_tps | $mib | $bw | $bound | $ratio | $lpp | $ltg |")
  done
done

{
  echo "| model (random, fp32 compute) | threads | bwla pp$PP t/s | bwla tg$TG t/s | MiB read / token | read GB/s | bandwidth bound t/s | tg / bound | llama.cpp F16 pp$PP t/s | llama.cpp F16 tg$TG t/s |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "read GB/s: \`bwla bench --bandwidth\` (1 GiB buffer, 4 streams per thread, median), measured in the same process right after the row's model bench."
  echo "Bandwidth bound = read GB/s at that thread count / bytes streamed per decode step (fp32 parameters except the embedding table; the KV cache is ignored)."
} >"$work/table.md"
cat "$work/table.md"
[[ -n "$OUT" ]] && cp "$work/table.md" "$OUT"
exit 0
