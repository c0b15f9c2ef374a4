// LLM.int8 weight quantization (bnb Int8Params / int8_vectorwise_quant): weights rounded to fp16
// first, SCB = max|w| per row in float32, q = round-half-even(w * (127 / SCB)).
#include <cmath>

#include "qmodel/format/half.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

constexpr float kInt8Max = 127.0f;

float round_to_f16(float v) { return f16_to_float(float_to_f16(v)); }

}  // namespace

void quantize_int8_rows_ref(const float* w, size_t rows, size_t cols, int8_t* q, float* scb) {
  for (size_t r = 0; r < rows; ++r) {
    const float* row = w + r * cols;
    int8_t* qrow = q + r * cols;
    float amax = 0.0f;
    for (size_t c = 0; c < cols; ++c) amax = std::fmax(amax, std::fabs(round_to_f16(row[c])));
    // The converter rejects weights beyond the fp16 range before calling (bnb would overflow
    // to inf there too); a non-finite SCB would make the rounding below undefined.
    QMODEL_ASSERT(std::isfinite(amax));
    scb[r] = amax;
    if (amax == 0.0f) {  // CUDA: 0 * (127/0) = NaN, __float2int_rn(NaN) = 0
      for (size_t c = 0; c < cols; ++c) qrow[c] = 0;
      continue;
    }
    // CUDA uses __fdividef(127, SCB) (approximate, <= 2 ulp); IEEE division here, so a product
    // within an ulp or two of a .5 tie may round the other way on the GPU.
    const float scale = kInt8Max / amax;
    for (size_t c = 0; c < cols; ++c) {
      // nearbyint rounds half to even under the default rounding mode (as __float2int_rn);
      // |w * scale| <= 127 * (1 + 2^-23) < 127.5, so the cast is always in range.
      qrow[c] = static_cast<int8_t>(std::nearbyint(round_to_f16(row[c]) * scale));
    }
  }
}

}  // namespace qmodel::kernels
