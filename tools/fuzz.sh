#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and fuzzes each for SECONDS (default 60),
# starting from the committed seed corpus tests/fuzz/corpus/<target>/.
#   tools/fuzz.sh [--merge] [SECONDS] [TARGET...]      default targets: every tests/fuzz/fuzz_*.cpp
# Per target: the working corpus is $BUILD/corpus/<target>/, crashes go to $BUILD/<target>-crash-*,
# the libFuzzer log to $BUILD/<target>.log, and one row (executions, edges, features, corpus size,
# duration, CPU seconds) is appended to $BUILD/campaign.tsv. --merge then adds the inputs that
# reach new coverage to the committed seed corpus (minimised by libFuzzer's -merge=1).
# BUILD defaults to build/fuzz; set BUILD=... to use an already configured build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
MERGE=0
if [[ ${1:-} == --merge ]]; then MERGE=1; shift; fi
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  for f in tests/fuzz/fuzz_*.cpp; do TARGETS+=("$(basename "$f" .cpp)"); done
fi
BUILD=${BUILD:-build/fuzz}
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
  source tools/install_deps.sh
  command -v clang++ >/dev/null || { apt-get install -y -qq clang libclang-rt-dev >/dev/null 2>&1 || apt-get install -y -qq clang; }
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DQMODEL_ENABLE_CUDA=OFF -DQMODEL_CUDA_EMULATION=OFF -DQMODEL_BUILD_FUZZERS=ON -DQMODEL_SANITIZE=address,undefined >/dev/null
fi
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"
[[ -f $BUILD/campaign.tsv ]] || printf 'target\tdate\tcommit\tseconds\tcpu_seconds\texecutions\texec_per_s\tedges\tfeatures\tcorpus\tcrashes\n' > "$BUILD/campaign.tsv"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
for t in "${TARGETS[@]}"; do
  seeds=tests/fuzz/corpus/$t
  work=$BUILD/corpus/$t
  mkdir -p "$seeds" "$work"
  echo "== $t for ${SECONDS_EACH}s (seeds: $(ls "$seeds" | wc -l) files in $seeds)"
  start=$(date +%s)
  # -fork keeps fuzzing after a crash (each is saved as an artifact); new inputs go to $work only.
  /usr/bin/time -f '%U %S' -o "$BUILD/$t.time" \
    "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=30 -fork=1 -ignore_crashes=1 \
    -artifact_prefix="$BUILD/$t-" "$work" "$seeds" > "$BUILD/$t.log" 2>&1 || true
  wall=$(( $(date +%s) - start ))
  cpu=$(awk '{printf "%.0f", $1 + $2}' "$BUILD/$t.time")
  # Fork mode sums the children's executions into "#N" status lines; take the last one.
  last=$(grep -E '^#[0-9]+' "$BUILD/$t.log" | tail -1)
  execs=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
  edges=$(grep -oE 'cov: [0-9]+' <<<"$last" | awk '{print $2}')
  feats=$(grep -oE 'ft: [0-9]+' <<<"$last" | awk '{print $2}')
  corpus=$(ls "$work" | wc -l)
  crashes=$(ls "$BUILD" | grep -c "^$t-crash-" || true)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$(date -u +%F)" "$commit" "$wall" "$cpu" "${execs:-0}" \
    "$(( ${execs:-0} / (wall > 0 ? wall : 1) ))" "${edges:-?}" "${feats:-?}" "$corpus" "$crashes" | tee -a "$BUILD/campaign.tsv"
  if ((MERGE)); then
    "$BUILD/tests/fuzz/$t" -merge=1 "$seeds" "$work" > "$BUILD/$t.merge.log" 2>&1
    echo "   seed corpus now $(ls "$seeds" | wc -l) files"
  fi
done
