// Production CPU kernels: vectorised (SSE2 baseline, AVX2 clone chosen at load time) versions of
// reference kernels that sit on hot paths. Each produces output bit-identical to its _ref twin in
// ref.h, which its tests check on random and edge-case inputs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qmodel/format/quant_blocks.h"

namespace qmodel::kernels {

// Same contract and bytes as quantize_4bit_ref (the converter's NF4/FP4 hot loop).
void quantize_4bit(StorageType storage, const float* w, size_t n, size_t block_size, uint8_t* packed,
                   float* absmax);

// Same contract and bytes as quantize_int8_rows_ref.
void quantize_int8_rows(const float* w, size_t rows, size_t cols, int8_t* q, float* scb);

}  // namespace qmodel::kernels
