#!/usr/bin/env bash
# Installs what is missing, builds everything (host code with AddressSanitizer + UBSan, CUDA code
# for sm_90a when nvcc is present) and runs every test. GPU tests skip without a GPU.
#   tools/test.sh            # build dir: build/test
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/install_deps.sh
BUILD=${QMODEL_TEST_BUILD_DIR:-build/test}
JOBS=$(nproc)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQMODEL_SANITIZE=address,undefined -DQMODEL_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES=90a
cmake --build "$BUILD" -j"$JOBS"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$BUILD" --output-on-failure -j"$JOBS" --timeout 900
