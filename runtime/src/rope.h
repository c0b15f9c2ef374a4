// Rotary position embedding as Hugging Face Llama applies it: rotate_half pairs (i, i + d/2),
// frequencies from rope_theta with the config's scaling (default, linear, llama3).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::runtime {

// inv_freq[i], i < rotary_dim/2, as HF's ROPE_INIT_FUNCTIONS compute it (fp32), d = rotary_dim
// (head_dim, or GPT-NeoX's int(head_dim * rotary_pct)):
//   default: 1 / theta^(2i/d)
//   linear : default / factor (the same as dividing positions by factor)
//   llama3 : _compute_llama3_parameters (Llama 3.1): low frequencies / factor, high ones kept,
//            a smooth blend between original_max_position_embeddings/low_freq_factor and
//            .../high_freq_factor wavelengths.
// kUnsupported for other types ("dynamic", "yarn", ...), kCorruptFile for bad parameters.
Result<std::vector<float>> rope_inv_freq(const format::ModelConfig& config, size_t rotary_dim);

// cos/sin of pos * inv_freq[i] for i < half (fp32 angle, as HF's fp32 matmul of positions).
void rope_cos_sin(const float* inv_freq, size_t half, int64_t pos, float* cos_out, float* sin_out);

// Rotates the first rotary_dim dims of each of n_heads vectors of x (one token, [n_heads,
// head_dim]) in place: x1' = x1 cos - x2 sin, x2' = x2 cos + x1 sin, x1 = x[:r/2], x2 = x[r/2:r];
// dims r..head_dim pass through (partial rotary).
void apply_rope(float* x, size_t n_heads, size_t head_dim, size_t rotary_dim, const float* cos_half,
                const float* sin_half);

}  // namespace qmodel::runtime
