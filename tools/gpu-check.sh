#!/usr/bin/env bash
# One device-tool call for the CUDA kernels: GPU tests (the ctest label "gpu" = every tests/gpu
# executable), the kernel benchmark (bin/bench_kernels) and the PyTorch int4 peer benchmark, with
# logs and a summary table under $OUT. FlatBuffers is absent on the GPU machine, so the binaries
# are built HERE and carried:
#
#   1. here (no GPU needed):   tools/gpu-check.sh prepare
#        Release build for sm_90a in build/gpu (ignored by .gitignore's /build*/), then copies the
#        GPU executables into build/gpu-stage (about 25 MB; the carry limit is 64 MiB in all).
#   2. device tool:            run(command="tools/gpu-check.sh", carry=["build/gpu-stage"],
#                                  timeout_s=600)
#        add " --quick" to the command for a smoke run (fewer timing replays).
#   3. device tool, end to end: run(command="tools/gpu-check.sh e2e", carry=["build/gpu-stage"])
#        tools/bench_e2e.sh with the staged qrun / qconvert / make_synthetic_model: qmodel NF4,
#        NF4+DQ, FP4, INT8, bf16 and transformers on one Llama-3-8B-shaped checkpoint ($OUT/e2e.md).
#        Split it over calls with e.g. "tools/gpu-check.sh e2e --quants 'nf4 nf4-dq' --skip-hf" when
#        one call would pass the 10-minute limit.
#
# Writes to $OUT (at most 8 files, flat): summary.md, tests.log, bench.md, peer.md, env.txt.
# Exit status: non-zero when a test failed or a benchmark could not run.
set -uo pipefail
cd "$(dirname "$0")/.."

STAGE=build/gpu-stage
BUILD=build/gpu

prepare() {
  set -e
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DQMODEL_BUILD_FUZZERS=OFF
  local targets=(bench_kernels qrun qconvert make_synthetic_model)
  for src in tests/gpu/test_*.cpp tests/gpu/test_*.cu; do
    [ -e "$src" ] && targets+=("$(basename "${src%.*}")")
  done
  cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}"
  rm -rf "$STAGE"
  mkdir -p "$STAGE/tests" "$STAGE/bin"
  for t in "${targets[@]:0:4}"; do cp "$BUILD/bin/$t" "$STAGE/bin/"; done
  for t in "${targets[@]:4}"; do cp "$BUILD/tests/$t" "$STAGE/tests/"; done
  du -sh "$STAGE"
  echo "now: device run(command=\"tools/gpu-check.sh\", carry=[\"$STAGE\"], timeout_s=600)"
}

run() {
  local quick=""
  [ "${1:-}" = "--quick" ] && quick="--quick"
  OUT=${OUT:-out/gpu-check}
  mkdir -p "$OUT"
  local status=0
  local summary="$OUT/summary.md"

  { date -u; uname -a; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu \
      --format=csv 2>&1; nvcc --version 2>&1 | tail -2; } >"$OUT/env.txt"

  local test_dir bench_bin
  if [ -d "$STAGE/tests" ]; then
    test_dir="$STAGE/tests"; bench_bin="$STAGE/bin/bench_kernels"
  elif [ -d "$BUILD/tests" ]; then
    test_dir="$BUILD/tests"; bench_bin="$BUILD/bin/bench_kernels"
  else
    echo "gpu-check: no $STAGE (run 'tools/gpu-check.sh prepare' here, then carry $STAGE)" | tee "$summary"
    return 2
  fi

  # ---- tests: ctest -L gpu when a carried build folder's recorded paths are valid here, else the
  # same executables directly, each split into 8 gtest shards run in parallel (16 cores).
  local tests_rc=0
  : >"$OUT/tests.log"
  if [ -f "$BUILD/CTestTestfile.cmake" ] && grep -q "$(pwd)/$BUILD" "$BUILD/CTestTestfile.cmake"; then
    timeout 270 ctest --test-dir "$BUILD" -L gpu -j8 --output-on-failure --timeout 260 >>"$OUT/tests.log" 2>&1 || tests_rc=$?
  else
    local shards=8
    for exe in "$test_dir"/test_*; do
      local pids=()
      for ((i = 0; i < shards; i++)); do
        GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i timeout 270 "$exe" \
          >"$OUT/shard_$i.log" 2>&1 &
        pids+=($!)
      done
      for ((i = 0; i < shards; i++)); do
        wait "${pids[$i]}" || tests_rc=1
        { echo "== $(basename "$exe") shard $i"; cat "$OUT/shard_$i.log"; } >>"$OUT/tests.log"
        rm -f "$OUT/shard_$i.log"
      done
    done
  fi
  # Counts from gtest's per-case lines (direct run) or ctest's summary line (ctest run).
  local n_ok n_fail n_skip
  n_ok=$(grep -c '^\[       OK \] ' "$OUT/tests.log" || true)
  n_fail=$(grep -c '^\[  FAILED  \] .*(' "$OUT/tests.log" || true)
  n_skip=$(grep -c '^\[  SKIPPED \] .*(' "$OUT/tests.log" || true)
  [ "$tests_rc" -ne 0 ] && status=1

  # ---- benchmarks
  local bench_rc=0 peer_rc=0
  timeout 170 "$bench_bin" $quick >"$OUT/bench.md" 2>&1 || bench_rc=$?
  local read_gbs
  read_gbs=$(sed -n 's/^device read bandwidth.*: \([0-9]*\) GB\/s.*/\1/p' "$OUT/bench.md")
  PYTHONUNBUFFERED=1 timeout 130 python3 tools/bench_peer_int4.py $quick ${read_gbs:+--read-gbs "$read_gbs"} \
    >"$OUT/peer.md" 2>&1 || peer_rc=$?
  [ "$bench_rc" -ne 0 ] && status=1
  [ "$peer_rc" -ne 0 ] && status=1

  {
    echo "# gpu-check $(date -u +%F) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
    echo
    echo "tests: exit $tests_rc; gtest cases passed $n_ok, failed $n_fail, skipped $n_skip (log: tests.log)"
    grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1
    grep '^\[  FAILED  \] .*(' "$OUT/tests.log" | sort -u | head -20
    echo
    echo "bench_kernels: exit $bench_rc; bench_peer_int4.py: exit $peer_rc"
    echo
    cat "$OUT/bench.md"
    echo
    cat "$OUT/peer.md"
  } >"$summary"
  cat "$summary"
  return $status
}

case "${1:-run}" in
  prepare) prepare ;;
  run) shift || true; run "$@" ;;
  e2e) shift; exec tools/bench_e2e.sh --bin "$STAGE/bin" "$@" ;;
  --quick) run --quick ;;
  *) echo "usage: tools/gpu-check.sh [prepare | run [--quick] | --quick | e2e [bench_e2e.sh options]]" >&2; exit 2 ;;
esac
