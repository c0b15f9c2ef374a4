#!/usr/bin/env bash
# Installs the Debian packages qmodel builds against, only those missing. Sourced or run.
set -euo pipefail
QMODEL_DEBIAN_PACKAGES=(
  cmake ninja-build g++ pkg-config
  libflatbuffers-dev flatbuffers-compiler   # the .qmodel header schema
  libzstd-dev libxxhash-dev                 # per-blob compression, checksums
  libcli11-dev                              # command lines
  libeigen3-dev                             # CPU backend
  nlohmann-json3-dev libpcre2-dev           # JSON (safetensors headers, configs, tokenizer.json), tokenizer regexes
  libsodium-dev                             # Ed25519 signatures of .qmodel files
  libgtest-dev libbenchmark-dev             # tests, CPU benchmarks
)
missing=()
for p in "${QMODEL_DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install_deps: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
