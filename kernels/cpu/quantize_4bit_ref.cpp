// NF4 / FP4 blockwise quantization with bnb kQuantizeBlockwise semantics: absmax per block over
// its valid elements, x = w * (1/absmax) (a reciprocal multiply, as CUDA), nearest code with ties
// to the lower code, element 2j in the high nibble of byte j.
#include <algorithm>
#include <cmath>

#include "four_bit_codec.h"
#include "qmodel/format/status.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::kernels {
namespace {

template <typename Codec>
void quantize_blocks(const Codec& codec, uint8_t zero_code, const float* w, size_t n,
                     size_t block_size, uint8_t* packed, float* absmax) {
  for (size_t start = 0, b = 0; start < n; start += block_size, ++b) {
    const size_t len = std::min(block_size, n - start);
    const float* blk = w + start;
    float amax = 0.0f;
    for (size_t i = 0; i < len; ++i) amax = std::fmax(amax, std::fabs(blk[i]));
    absmax[b] = amax;

    // All-zero block: bnb-CUDA computes 0 * (1/0) = NaN, every comparison fails and it writes
    // code 0 (NF4 -1.0 * 0 = -0.0); we write the zero code (NF4 7, FP4 0) like bnb's CPU path.
    // Both dequantize to +-0, only the nibbles differ.
    const bool all_zero = amax == 0.0f;
    const float inv = all_zero ? 0.0f : 1.0f / amax;
    auto encode = [&](float v) { return all_zero ? zero_code : codec.encode(v * inv); };

    // start is a multiple of the (even) block size, so the block begins on a byte boundary.
    uint8_t* out = packed + start / 2;
    size_t i = 0;
    for (; i + 1 < len; i += 2) {
      out[i / 2] = static_cast<uint8_t>((encode(blk[i]) << 4) | encode(blk[i + 1]));
    }
    // Only the final block of an odd count gets here: its low nibble is the zero-code pad.
    if (i < len) out[i / 2] = static_cast<uint8_t>((encode(blk[i]) << 4) | zero_code);
  }
}

}  // namespace

void quantize_4bit_ref(StorageType storage, const float* w, size_t n, size_t block_size,
                       uint8_t* packed, float* absmax) {
  QMODEL_ASSERT(is_4bit(storage));
  QMODEL_ASSERT(block_size >= 2 && block_size % 2 == 0);
  if (storage == StorageType::kNF4) {
    quantize_blocks(nf4_codec(), kNf4ZeroCode, w, n, block_size, packed, absmax);
  } else {
    quantize_blocks(fp4_codec(), kFp4ZeroCode, w, n, block_size, packed, absmax);
  }
}

}  // namespace qmodel::kernels
