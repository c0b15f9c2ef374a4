// xxHash and zstd wrappers (see codec.h).
#include "codec.h"

#include <xxhash.h>
#include <zstd.h>

#include <string>

namespace qmodel::format {
namespace {

// A zstd block expands to at most 128 KiB and takes at least 4 bytes (an RLE block), so no valid
// frame decompresses to more than 32768x its size; larger claims are refused before allocating.
constexpr uint64_t kMaxZstdExpansion = 32768;

}  // namespace

uint64_t xxh3_64(ByteSpan bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

struct ZstdCompressor::Ctx {
  ZSTD_CCtx* cctx = nullptr;
};

ZstdCompressor::ZstdCompressor() : ctx_(std::make_unique<Ctx>()) {}

ZstdCompressor::~ZstdCompressor() { ZSTD_freeCCtx(ctx_->cctx); }

bool is_valid_zstd_level(int level) {
  return level != 0 && level >= ZSTD_minCLevel() && level <= ZSTD_maxCLevel();
}

Status ZstdCompressor::compress(ByteSpan src, int level, std::vector<uint8_t>& dst) {
  if (!is_valid_zstd_level(level)) {
    return Status(StatusCode::kInvalidArgument, "zstd level " + std::to_string(level) + " out of range [" +
                                                    std::to_string(ZSTD_minCLevel()) + ", " +
                                                    std::to_string(ZSTD_maxCLevel()) + "]");
  }
  if (ctx_->cctx == nullptr) ctx_->cctx = ZSTD_createCCtx();
  if (ctx_->cctx == nullptr) return Status(StatusCode::kOutOfMemory, "cannot create a zstd context");
  dst.resize(ZSTD_compressBound(src.size()));
  const size_t n = ZSTD_compressCCtx(ctx_->cctx, dst.data(), dst.size(), src.data(), src.size(), level);
  if (ZSTD_isError(n)) {
    return Status(StatusCode::kInvalidArgument, std::string("zstd compression failed: ") + ZSTD_getErrorName(n));
  }
  dst.resize(n);
  return Status();
}

Status zstd_decompress_exact(ByteSpan src, uint64_t raw_size, uint8_t* dst) {
  if (src.empty()) return Status(StatusCode::kCorruptFile, "empty zstd frame");
  if (raw_size / kMaxZstdExpansion > src.size()) {
    return Status(StatusCode::kCorruptFile, "raw size " + std::to_string(raw_size) +
                                                " is impossible for a zstd frame of " +
                                                std::to_string(src.size()) + " bytes");
  }
  const size_t frame_bytes = ZSTD_findFrameCompressedSize(src.data(), src.size());
  if (ZSTD_isError(frame_bytes) || frame_bytes != src.size()) {
    return Status(StatusCode::kCorruptFile, "not exactly one zstd frame");
  }
  const unsigned long long content = ZSTD_getFrameContentSize(src.data(), src.size());
  if (content != raw_size) {
    return Status(StatusCode::kCorruptFile, "zstd frame content size does not match raw size " +
                                                std::to_string(raw_size));
  }
  const size_t n = ZSTD_decompress(dst, static_cast<size_t>(raw_size), src.data(), src.size());
  if (ZSTD_isError(n)) {
    return Status(StatusCode::kCorruptFile, std::string("zstd decompression failed: ") + ZSTD_getErrorName(n));
  }
  if (n != raw_size) {
    return Status(StatusCode::kCorruptFile, "zstd frame decompressed to " + std::to_string(n) +
                                                " bytes, expected " + std::to_string(raw_size));
  }
  return Status();
}

}  // namespace qmodel::format
