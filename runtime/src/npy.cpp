// NPY format 1.0: magic, version, u16 header length, a Python dict literal padded with spaces to
// a 64-byte boundary and ending in '\n', then the raw data.
#include "qmodel/runtime/npy.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace qmodel::runtime {

namespace {
constexpr size_t kPreambleBytes = 10;  // "\x93NUMPY" + 2 version bytes + u16 header length
constexpr size_t kHeaderAlignment = 64;

bool host_is_little_endian() {
  const uint16_t probe = 1;
  uint8_t first;
  std::memcpy(&first, &probe, 1);
  return first == 1;
}
}  // namespace

Status write_npy_f32(const std::string& path, const float* data, size_t rows, size_t cols) {
  if (!host_is_little_endian()) return Status(StatusCode::kUnsupported, path + ": NPY writer needs a little-endian host");
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "), }";
  const size_t unpadded = kPreambleBytes + dict.size() + 1;
  dict.append((kHeaderAlignment - unpadded % kHeaderAlignment) % kHeaderAlignment, ' ');
  dict.push_back('\n');
  if (dict.size() > 0xffff) return Status(StatusCode::kInvalidArgument, path + ": NPY header too long");
  const uint16_t header_len = static_cast<uint16_t>(dict.size());
  const unsigned char preamble[kPreambleBytes] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                                  static_cast<unsigned char>(header_len & 0xff),
                                                  static_cast<unsigned char>(header_len >> 8)};
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Status(StatusCode::kIoError, path + ": cannot create: " + std::strerror(errno));
  const size_t n = rows * cols;
  bool ok = std::fwrite(preamble, 1, kPreambleBytes, f) == kPreambleBytes &&
            std::fwrite(dict.data(), 1, dict.size(), f) == dict.size() &&
            (n == 0 || std::fwrite(data, sizeof(float), n, f) == n);
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) return Status(StatusCode::kIoError, path + ": write failed");
  return Status::ok_status();
}

}  // namespace qmodel::runtime
