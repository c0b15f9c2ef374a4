// The fixed 32-byte preamble at offset 0 of every .qmodel file (docs/FORMAT.md §1), little-endian:
//   magic[8] | u32 format_version | u32 preamble_bytes (32) | u64 header_bytes | u64 header_xxh3
// followed by the FlatBuffers header. Encoding is explicit byte by byte, so it is host-independent.
#pragma once

#include <cstdint>

namespace qmodel::format {

inline constexpr uint8_t kMagic[8] = {0x89, 'Q', 'M', 'O', 'D', 'E', 'L', '\n'};
inline constexpr uint64_t kPreambleBytes = 32;
inline constexpr uint64_t kMaxHeaderBytes = uint64_t{64} << 20;  // readers refuse larger headers

// Byte offsets of the preamble fields (used in error messages and by tests that corrupt them).
inline constexpr uint64_t kPreambleVersionOffset = 8;
inline constexpr uint64_t kPreambleBytesOffset = 12;
inline constexpr uint64_t kPreambleHeaderBytesOffset = 16;
inline constexpr uint64_t kPreambleHeaderXxh3Offset = 24;

struct Preamble {
  uint8_t magic[8] = {};
  uint32_t format_version = 0;
  uint32_t preamble_bytes = 0;
  uint64_t header_bytes = 0;  // length of the FlatBuffers header that starts at offset 32
  uint64_t header_xxh3 = 0;   // XXH3-64 (seed 0) of those header bytes
};

// Writes the 32 preamble bytes to `out` with kMagic (the `magic` member is ignored).
void encode_preamble(const Preamble& preamble, uint8_t* out);
// Reads 32 bytes from `in`; checks nothing (the reader verifies each field in turn).
Preamble decode_preamble(const uint8_t* in);
bool has_qmodel_magic(const Preamble& preamble);

}  // namespace qmodel::format
