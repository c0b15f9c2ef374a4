#!/usr/bin/env bash
# End-to-end benchmark of qrun on the GPU machine against Hugging Face transformers, on one
# synthetic Llama-3-8B-shaped BF16 checkpoint (random weights: speed does not depend on values).
#
#   tools/bench_e2e.sh [--bin DIR] [--work DIR] [--quants "nf4 nf4-dq fp4 int8 bf16"]
#                      [--layers N] [--device cuda|cpu] [--skip-hf] [--bandwidth-gbs 3100]
#
# For each quantization: qconvert the checkpoint, `qrun --bench` it (load, prefill 128/512/2048,
# decode 256, memory, bytes per token, % of the bandwidth roofline), delete the file (64 GB disk:
# the checkpoint is 16 GB). Then tools/bench_hf.py times transformers bf16 (and bitsandbytes NF4 /
# NF4+DQ / FP4 / INT8 when the package imports). Writes $OUT/e2e.md (the table for the README and
# docs/PERF.md) and the raw JSON lines to $OUT/e2e.jsonl. --device cpu --layers 1 is a plumbing
# check that runs anywhere. Binaries come from --bin (default build/gpu-stage/bin, as staged by
# tools/gpu-check.sh prepare).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=build/gpu-stage/bin
WORK=${TMPDIR:-/tmp}/qmodel-e2e
QUANTS="nf4 nf4-dq fp4 int8 bf16"
LAYERS=""
DEVICE=cuda
SKIP_HF=0
BANDWIDTH=3100
PREFILL=128,512,2048
DECODE=256
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --quants) QUANTS=$2; shift 2 ;;
    --layers) LAYERS=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --skip-hf) SKIP_HF=1; shift ;;
    --bandwidth-gbs) BANDWIDTH=$2; shift 2 ;;
    --prefill) PREFILL=$2; shift 2 ;;
    --decode) DECODE=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench_e2e: unknown argument $1" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-out/e2e}
mkdir -p "$OUT" "$WORK"
for tool in make_synthetic_model qconvert qrun; do
  [ -x "$BIN/$tool" ] || { echo "bench_e2e: $BIN/$tool missing (tools/gpu-check.sh prepare)" >&2; exit 2; }
done

CKPT="$WORK/llama3-8b-bf16"
if [ ! -f "$CKPT/config.json" ]; then
  echo "== synthetic checkpoint -> $CKPT"
  "$BIN/make_synthetic_model" --preset llama3-8b --dtype bf16 ${LAYERS:+--layers $LAYERS} "$CKPT"
fi
cat "$CKPT"/*.safetensors >/dev/null  # warm page cache, as for every figure below

JSONL="$OUT/e2e.jsonl"
: >"$JSONL"
for q in $QUANTS; do
  file="$WORK/model-$q.qmodel"
  case "$q" in
    nf4-dq) args=(--quant nf4 --double-quant) ;;
    *) args=(--quant "$q") ;;
  esac
  echo "== qconvert $q"
  "$BIN/qconvert" "$CKPT" -o "$file" "${args[@]}" --force
  cat "$file" >/dev/null
  echo "== qrun --bench $q"
  "$BIN/qrun" "$file" --device "$DEVICE" --bench --bench-prefill "$PREFILL" --bench-decode "$DECODE" \
    --bandwidth-gbs "$BANDWIDTH" --bench-json "$WORK/bench-$q.json" | tee "$OUT/qrun-$q.txt"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["system"]="qmodel "+sys.argv[2]; d["file_bytes"]=int(sys.argv[3]); print(json.dumps(d))' \
    "$WORK/bench-$q.json" "$q" "$(stat -c %s "$file")" >>"$JSONL"
  rm -f "$file"
done

if [ "$SKIP_HF" = 0 ]; then
  for q in bf16 nf4 nf4-dq fp4 int8; do
    echo "== transformers $q"
    if python3 tools/bench_hf.py "$CKPT" --quant "$q" --prefill "$PREFILL" --decode "$DECODE" \
        --json "$WORK/hf-$q.json" >"$OUT/hf-$q.log" 2>&1; then
      cat "$WORK/hf-$q.json" >>"$JSONL"
    else
      echo "transformers $q: not run ($(tail -1 "$OUT/hf-$q.log"))" | tee -a "$OUT/hf-skipped.txt"
    fi
  done
fi

python3 - "$JSONL" "$OUT/e2e.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def pf(d, n):
    for p in d.get("prefill", []):
        if p["tokens"] == n:
            return f'{p["tokens_per_second"]:,.0f}'
    return "-"
out = ["| system | decode tok/s | prefill 128 | prefill 512 | prefill 2048 | load s | GPU memory GB | decode roofline |",
       "|---|---|---|---|---|---|---|---|"]
for d in rows:
    mem = d.get("device_allocated_bytes") or d.get("peak_gpu_bytes") or 0
    roof = f'{100 * d["roofline_fraction"]:.0f}%' if d.get("roofline_fraction") else "-"
    out.append(f'| {d["system"]} | {d["decode_tokens_per_second"]:.1f} | {pf(d,128)} | {pf(d,512)} | {pf(d,2048)} '
               f'| {d["load_seconds"]:.2f} | {mem / 1e9:.2f} | {roof} |')
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
