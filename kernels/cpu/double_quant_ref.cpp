// Double quantization of first-level absmax (bnb quantize_4bit(compress_statistics=True)):
// offset = mean(absmax), then quantize_blockwise(absmax - offset, blocksize=256) with the signed
// dynamic map, i.e. kQuantizeBlockwise<General8bit> with dQuantize<0> per element.
#include <algorithm>
#include <cmath>

#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {

float absmax_mean_ref(const float* absmax, size_t n_blocks) {
  QMODEL_ASSERT(n_blocks > 0);
  // bnb takes torch's float32 mean (pairwise/vectorised summation, order-dependent in the last
  // bits); a double accumulator gives the correctly rounded mean in almost all cases and does not
  // depend on thread count or SIMD width, which the file's determinism rule needs.
  double sum = 0.0;
  for (size_t i = 0; i < n_blocks; ++i) sum += absmax[i];
  return static_cast<float>(sum / static_cast<double>(n_blocks));
}

void quantize_nested_absmax_ref(const float* absmax, size_t n_blocks, const float* code, float offset,
                                uint8_t* absmax_codes, float* nested_absmax) {
  const uint8_t zero_code = quantize_dynamic_value_ref(code, 0.0f);  // 127 for the signed map
  for (size_t start = 0, b = 0; start < n_blocks; start += kNestedBlockSize, ++b) {
    const size_t len = std::min<size_t>(kNestedBlockSize, n_blocks - start);
    float amax = 0.0f;
    for (size_t i = 0; i < len; ++i) amax = std::fmax(amax, std::fabs(absmax[start + i] - offset));
    nested_absmax[b] = amax;
    // Every absmax equal to the offset: CUDA would encode NaN (code 0, value -0.99 * 0 = -0);
    // we write the zero code. Both dequantize to exactly `offset`.
    if (amax == 0.0f) {
      std::fill(absmax_codes + start, absmax_codes + start + len, zero_code);
      continue;
    }
    const float inv = 1.0f / amax;
    for (size_t i = 0; i < len; ++i) {
      absmax_codes[start + i] = quantize_dynamic_value_ref(code, (absmax[start + i] - offset) * inv);
    }
  }
}

void double_quantize_absmax_ref(const float* absmax, size_t n_blocks, const float* code,
                                uint8_t* absmax_codes, float* nested_absmax, float* offset) {
  *offset = absmax_mean_ref(absmax, n_blocks);
  quantize_nested_absmax_ref(absmax, n_blocks, code, *offset, absmax_codes, nested_absmax);
}

}  // namespace qmodel::kernels
