// XXH3-64 checksums and zstd compression: the only code in format/ that touches xxHash and zstd.
// Decompression is bounded: the caller states the exact raw size, and a frame that claims any
// other size (or more than zstd can physically expand to) is refused before anything is allocated.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "qmodel/format/span.h"
#include "qmodel/format/status.h"

namespace qmodel::format {

uint64_t xxh3_64(ByteSpan bytes);

// A reusable compression context (one per writer). Deterministic: single-threaded zstd.
class ZstdCompressor {
 public:
  ZstdCompressor();
  ~ZstdCompressor();
  ZstdCompressor(const ZstdCompressor&) = delete;
  ZstdCompressor& operator=(const ZstdCompressor&) = delete;

  // Compresses `src` into `dst` (resized to the frame). kInvalidArgument for a bad level,
  // kOutOfMemory when the context cannot be created.
  Status compress(ByteSpan src, int level, std::vector<uint8_t>& dst);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

bool is_valid_zstd_level(int level);

// Decompresses `src`, which must be exactly one zstd frame of exactly `raw_size` bytes, into
// `dst` (raw_size bytes). kCorruptFile with a bare message (the caller adds the location).
Status zstd_decompress_exact(ByteSpan src, uint64_t raw_size, uint8_t* dst);

}  // namespace qmodel::format
