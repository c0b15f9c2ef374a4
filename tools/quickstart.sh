#!/usr/bin/env bash
# Installs what is missing, builds qmodel, converts a model and generates text with it:
#   tools/quickstart.sh                  # a built-in default: a small synthetic Llama generated here
#                                        # (random weights: the text it generates is gibberish)
#   tools/quickstart.sh MODEL_DIR [ARGS] # a Hugging Face folder; ARGS go to qconvert (default: --quant nf4 --double-quant)
# It prints the conversion summary, the verified qinspect table, then qrun's output for a prompt
# (QMODEL_PROMPT, default "Once upon a time").
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/install_deps.sh
BUILD=${QMODEL_BUILD_DIR:-build/release}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DQMODEL_BUILD_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j"$(nproc)"
BIN="$BUILD/bin"
OUT=${QMODEL_QUICKSTART_OUT:-build/quickstart}
mkdir -p "$OUT"

if [[ $# -ge 1 ]]; then
  MODEL_DIR=$1; shift
else
  MODEL_DIR="$OUT/synthetic-tiny-llama"
  echo "== no model given: generating the built-in synthetic Llama in $MODEL_DIR"
  "$BIN/make_synthetic_model" "$MODEL_DIR" --preset tiny --dtype bf16
fi
ARGS=("$@")
[[ ${#ARGS[@]} -eq 0 ]] && ARGS=(--quant nf4 --double-quant)
QMODEL_FILE="$OUT/$(basename "$MODEL_DIR").qmodel"

echo "== qconvert $MODEL_DIR -o $QMODEL_FILE ${ARGS[*]}"
"$BIN/qconvert" "$MODEL_DIR" -o "$QMODEL_FILE" --force "${ARGS[@]}"
echo
echo "== qinspect --verify $QMODEL_FILE"
"$BIN/qinspect" --verify "$QMODEL_FILE"
echo
PROMPT=${QMODEL_PROMPT:-Once upon a time}
echo "== qrun $QMODEL_FILE --prompt \"$PROMPT\" --max-new-tokens 64"
"$BIN/qrun" "$QMODEL_FILE" --prompt "$PROMPT" --max-new-tokens 64
