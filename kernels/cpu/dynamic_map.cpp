// bitsandbytes' signed 8-bit dynamic map (create_dynamic_map(signed=True, max_exponent_bits=7,
// total_bits=8)) reproduced in float32 as torch computes it, and dQuantize<0>, the CUDA
// binary-search encoder used by quantize_blockwise (double quantization of absmax).
#include <algorithm>
#include <cmath>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

constexpr int kMaxExponentBits = 7;   // one decade per exponent: 1e-6 ... [0.1, 1)
constexpr float kLinspaceStart = 0.1f;
constexpr float kLinspaceEnd = 1.0f;

// torch.linspace(0.1, 1, steps, dtype=float32) on CPU: step = (end - start) / (steps - 1) in
// float32; the first half is start + step*i, the second half end - step*(steps-1-i). The x86
// wheels build this kernel with -mfma and GCC contracts both expressions into one fused
// multiply-add: a published dump of bnb's map matches the fused results in all 256 entries and
// the unfused formula differs in 42 of them, so fmaf is used deliberately.
std::vector<float> torch_linspace_f32(int steps) {
  const float step = (kLinspaceEnd - kLinspaceStart) / static_cast<float>(steps - 1);
  const int halfway = steps / 2;
  std::vector<float> out(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) {
    out[static_cast<size_t>(i)] =
        i < halfway ? std::fmaf(step, static_cast<float>(i), kLinspaceStart)
                    : std::fmaf(-step, static_cast<float>(steps - 1 - i), kLinspaceEnd);
  }
  return out;
}

}  // namespace

std::array<float, kDynamicMapSize> dynamic_map_signed() {
  std::vector<float> data;
  data.reserve(kDynamicMapSize);
  for (int i = 0; i < kMaxExponentBits; ++i) {
    const std::vector<float> bounds = torch_linspace_f32((1 << i) + 1);
    // The python scalar 10**(i-6) multiplies a float32 tensor: torch casts it to float32 first.
    const float scale = static_cast<float>(std::pow(10.0, i - (kMaxExponentBits - 1)));
    for (size_t k = 0; k + 1 < bounds.size(); ++k) {
      const float mean = (bounds[k] + bounds[k + 1]) / 2.0f;
      data.push_back(scale * mean);
      data.push_back(-(scale * mean));  // (-s)*m == -(s*m) exactly
    }
  }
  data.push_back(0.0f);
  data.push_back(1.0f);
  QMODEL_ASSERT(data.size() == kDynamicMapSize);
  std::sort(data.begin(), data.end());
  std::array<float, kDynamicMapSize> code{};
  std::copy(data.begin(), data.end(), code.begin());
  return code;
}

uint8_t quantize_dynamic_value_ref(const float* code, float x) {
  // Mirrors dQuantize<0>: the pivot walks 127 +/- 64 +/- 32 ... +/- 1 (always ending on an even
  // index); lower/upper remember the last pivots passed on either side. The initial bounds are
  // -1 and +1 and are replaced by code[0] / code[255] only when never updated, as in CUDA.
  int pivot = 127, lower_pivot = 0, upper_pivot = 255;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[upper_pivot];
  if (lower_pivot == 0) lower = code[lower_pivot];

  // A value exactly on the midpoint keeps `pivot`, whichever side it came from.
  if (x > val) {
    const float midpoint = (upper + val) * 0.5f;
    return static_cast<uint8_t>(x > midpoint ? upper_pivot : pivot);
  }
  const float midpoint = (lower + val) * 0.5f;
  return static_cast<uint8_t>(x < midpoint ? lower_pivot : pivot);
}

}  // namespace qmodel::kernels
