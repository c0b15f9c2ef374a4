#!/usr/bin/env bash
# Converter benchmark (not a test): throughput and peak memory converting a synthetic BF16
# checkpoint with Llama-3-8B shapes (generated here, never committed).
#   tools/bench_convert.sh [WORK_DIR] [QUANT...]      default quants: nf4 nf4-dq fp4 int8
# Prints one line per run: wall seconds, GB/s of BF16 input, peak anonymous and total RSS.
# Run it twice if the first run's input was not yet in the page cache.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-build/bench}
shift || true
QUANTS=("$@")
[[ ${#QUANTS[@]} -eq 0 ]] && QUANTS=(nf4 nf4-dq fp4 int8)
BUILD=${QMODEL_BUILD_DIR:-build/release}
source tools/install_deps.sh
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQMODEL_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target qconvert make_synthetic_model >/dev/null
MODEL="$WORK/llama3-8b-bf16"
mkdir -p "$WORK"
if [[ ! -f "$MODEL/model.safetensors.index.json" ]]; then
  echo "generating $MODEL (Llama-3-8B shapes, BF16, ~16 GB)"
  "$BUILD/bin/make_synthetic_model" "$MODEL" --preset llama3-8b --dtype bf16 --shards 4
fi
# Warm the page cache so the figure is the converter's, not the disk's.
cat "$MODEL"/*.safetensors >/dev/null

# Runs a command and samples its RssAnon / VmRSS peak from /proc every 50 ms.
measure() {
  "$@" &
  local pid=$! anon=0 rss=0 a r
  while kill -0 "$pid" 2>/dev/null; do
    a=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [[ -n $a && $a -gt $anon ]] && anon=$a
    [[ -n $r && $r -gt $rss ]] && rss=$r
    sleep 0.05
  done
  wait "$pid"
  PEAK_ANON_MIB=$((anon / 1024))
  PEAK_RSS_MIB=$((rss / 1024))
}

INPUT_BYTES=$(cat "$MODEL"/*.safetensors | wc -c)
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "input: $INPUT_BYTES bytes of BF16 safetensors"
printf "%-8s %10s %10s %14s %12s %10s\n" quant seconds "GB/s in" "peak anon MiB" "peak RSS MiB" "bits/p"
for qt in "${QUANTS[@]}"; do
  args=(--quant "${qt%-dq}")
  [[ $qt == *-dq ]] && args+=(--double-quant)
  out="$WORK/out-$qt.qmodel"
  start=$(date +%s.%N)
  measure "$BUILD/bin/qconvert" "$MODEL" -o "$out" --force -q "${args[@]}" >"$WORK/summary-$qt.txt"
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')
  bpp=$(awk '/bits\/param/ {print $2}' "$WORK/summary-$qt.txt")
  printf "%-8s %10.2f %10.3f %14d %12d %10s\n" "$qt" "$secs" "$(awk -v n="$INPUT_BYTES" -v s="$secs" 'BEGIN {print n / s / 1e9}')" \
    "$PEAK_ANON_MIB" "$PEAK_RSS_MIB" "$bpp"
  rm -f "$out"
done
