#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for SECONDS (default 60).
#   tools/fuzz.sh [SECONDS] [TARGET...]   targets: fuzz_qmodel_reader fuzz_safetensors fuzz_hf_config fuzz_tokenizer
# Corpora and crash files go to build/fuzz/corpus/<target>/ and build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/install_deps.sh
command -v clang++ >/dev/null || { apt-get install -y -qq clang libclang-rt-dev >/dev/null 2>&1 || apt-get install -y -qq clang; }
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -eq 0 ]] && TARGETS=(fuzz_qmodel_reader fuzz_safetensors fuzz_hf_config fuzz_tokenizer)
BUILD=build/fuzz
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DQMODEL_ENABLE_CUDA=OFF -DQMODEL_BUILD_FUZZERS=ON -DQMODEL_SANITIZE=address,undefined >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"
for t in "${TARGETS[@]}"; do
  mkdir -p "$BUILD/corpus/$t"
  echo "== $t for ${SECONDS_EACH}s"
  "$BUILD/tests/fuzz/$t" -max_total_time="$SECONDS_EACH" -artifact_prefix="$BUILD/$t-" "$BUILD/corpus/$t"
done
