// Private: the NF4 / FP4 encoders, built once from the code tables in quant_blocks.h. Thresholds
// are the float32 midpoints of adjacent sorted code values (never hand-copied constants), and a
// code is the number of thresholds strictly below x, mapped back from sorted rank to table index.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "qmodel/format/quant_blocks.h"

namespace qmodel::kernels {

struct Nf4Codec {
  std::array<float, 15> thresholds;     // ascending
  std::array<uint8_t, 16> rank_to_code; // sorted position -> table index

  uint8_t encode(float x) const {
    unsigned rank = 0;
    for (float t : thresholds) rank += x > t ? 1u : 0u;  // NaN: rank 0 -> code 0, as the CUDA tree
    return rank_to_code[rank];
  }
};

struct Fp4Codec {
  std::array<float, 7> thresholds;      // on |x|, ascending
  std::array<uint8_t, 8> rank_to_code;  // magnitude rank -> code without the sign bit

  uint8_t encode(float x) const {
    // Sign first, on x itself: -0.0 is not < 0 and gets code 0; a tiny negative gets 8 (-0).
    const uint8_t sign = x < 0.0f ? 8 : 0;
    const float a = std::fabs(x);
    unsigned rank = 0;
    for (float t : thresholds) rank += a > t ? 1u : 0u;
    return static_cast<uint8_t>(rank_to_code[rank] + sign);
  }
};

const Nf4Codec& nf4_codec();
const Fp4Codec& fp4_codec();

}  // namespace qmodel::kernels
