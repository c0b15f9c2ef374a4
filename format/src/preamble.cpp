// Little-endian encoding of the 32-byte .qmodel preamble (see preamble.h).
#include "qmodel/format/preamble.h"

#include <cstring>

namespace qmodel::format {
namespace {

void put_le(uint8_t* out, uint64_t value, int n_bytes) {
  for (int i = 0; i < n_bytes; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t get_le(const uint8_t* in, int n_bytes) {
  uint64_t value = 0;
  for (int i = 0; i < n_bytes; ++i) value |= static_cast<uint64_t>(in[i]) << (8 * i);
  return value;
}

}  // namespace

void encode_preamble(const Preamble& preamble, uint8_t* out) {
  std::memcpy(out, kMagic, sizeof(kMagic));
  put_le(out + kPreambleVersionOffset, preamble.format_version, 4);
  put_le(out + kPreambleBytesOffset, preamble.preamble_bytes, 4);
  put_le(out + kPreambleHeaderBytesOffset, preamble.header_bytes, 8);
  put_le(out + kPreambleHeaderXxh3Offset, preamble.header_xxh3, 8);
}

Preamble decode_preamble(const uint8_t* in) {
  Preamble p;
  std::memcpy(p.magic, in, sizeof(p.magic));
  p.format_version = static_cast<uint32_t>(get_le(in + kPreambleVersionOffset, 4));
  p.preamble_bytes = static_cast<uint32_t>(get_le(in + kPreambleBytesOffset, 4));
  p.header_bytes = get_le(in + kPreambleHeaderBytesOffset, 8);
  p.header_xxh3 = get_le(in + kPreambleHeaderXxh3Offset, 8);
  return p;
}

bool has_qmodel_magic(const Preamble& preamble) {
  return std::memcmp(preamble.magic, kMagic, sizeof(kMagic)) == 0;
}

}  // namespace qmodel::format
