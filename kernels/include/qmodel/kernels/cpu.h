// Production CPU kernels: vectorised (SSE2 baseline, AVX2 clone chosen at load time) versions of
// reference kernels that sit on hot paths. Each produces output bit-identical to its _ref twin in
// ref.h, which its tests check on random and edge-case inputs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "qmodel/format/quant_blocks.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {

// Same contract and bytes as quantize_4bit_ref (the converter's NF4/FP4 hot loop).
void quantize_4bit(StorageType storage, const float* w, size_t n, size_t block_size, uint8_t* packed,
                   float* absmax);

// Same contract and bytes as quantize_int8_rows_ref.
void quantize_int8_rows(const float* w, size_t rows, size_t cols, int8_t* q, float* scb);

// Same contract and values as dequantize_ref (bit-identical): AVX2 for 4-bit ranges that start on
// a multiple of 8 and for bf16, the reference otherwise.
void dequantize(const WeightView& w, size_t first, size_t count, float* out);

// matmul_ref for fp32 activations (x [m, cols], y [m, rows]), the CPU runtime's linear: the same
// dequantized weights, dot products with AVX2+FMA, so results differ from matmul_ref only by fp32
// summation order (tests bound it).
void matmul(const float* x, size_t m, const WeightView& w, const float* bias, float* y, size_t row_begin,
            size_t row_end);

}  // namespace qmodel::kernels
