// Unvalidated .qmodel image assembly for tests and fuzz seeds (see raw_file.h).
#include "raw_file.h"

#include <algorithm>
#include <cstring>

#include "codec.h"
#include "fb_convert.h"
#include "qmodel/format/preamble.h"

namespace qmodel::format::internal {

std::vector<uint8_t> serialize_header_unchecked(const ModelHeader& header) {
  auto bytes = serialize_header(header);
  QMODEL_ASSERT(bytes.ok());
  return std::move(bytes).value();
}

std::vector<uint8_t> build_raw_file(ByteSpan header_bytes, const std::vector<RawBlob>& blobs,
                                    uint32_t format_version) {
  uint64_t size = kPreambleBytes + header_bytes.size();
  for (const RawBlob& b : blobs) size = std::max<uint64_t>(size, b.offset + b.bytes.size());
  std::vector<uint8_t> out(static_cast<size_t>(size), 0);
  Preamble p;
  p.format_version = format_version;
  p.preamble_bytes = static_cast<uint32_t>(kPreambleBytes);
  p.header_bytes = header_bytes.size();
  p.header_xxh3 = xxh3_64(header_bytes);
  encode_preamble(p, out.data());
  if (!header_bytes.empty()) std::memcpy(out.data() + kPreambleBytes, header_bytes.data(), header_bytes.size());
  for (const RawBlob& b : blobs) {
    if (!b.bytes.empty()) std::memcpy(out.data() + b.offset, b.bytes.data(), b.bytes.size());
  }
  return out;
}

uint64_t xxh3_of(ByteSpan bytes) { return xxh3_64(bytes); }

}  // namespace qmodel::format::internal
