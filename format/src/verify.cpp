// The reader's verification pipeline (see verify.h). Each step has its own message; nothing is
// decoded before the bytes it reads have been checked.
#include "verify.h"

#include <cstdint>
#include <cstring>
#include <new>
#include <unordered_set>
#include <vector>

#include "codec.h"
#include "fb_convert.h"
#include "qmodel/format/tensor_roles.h"
#include "qmodel/format/preamble.h"
#include "verify_semantics.h"

namespace qmodel::format {
namespace {

// Bounds on embedded files (config.json, tokenizer.json ~ 10 MB): caps on what a hostile header can
// make the reader allocate.
constexpr uint64_t kMaxEmbeddedFileBytes = uint64_t{256} << 20;
constexpr uint64_t kMaxEmbeddedTotalBytes = uint64_t{512} << 20;
constexpr size_t kFlatBufferAlignment = 8;  // largest scalar in the schema (ulong)
// Bound on what compressed blobs decompress to, tied to the file size: model weights compress
// by less than 2x; only small all-zero tensors (biases) come near zstd's ~32000x, and the slack
// covers those. Without it a few MB of zstd frames could claim (and make the reader allocate)
// terabytes.
constexpr uint64_t kMaxCompressionRatio = 256;
constexpr uint64_t kCompressionSlackBytes = uint64_t{64} << 20;

// Sum of raw sizes of the compressed blobs against kMaxCompressionRatio x their stored sizes.
Status check_decompressed_total(const std::string& name, const ModelHeader& header) {
  uint64_t raw = 0, stored = 0;  // stored blobs lie inside the file (verified): that sum cannot wrap
  bool raw_overflows = false;
  for (const TensorInfo& t : header.tensors) {
    for (const BlobRef& b : t.blobs) {
      if (b.compression == Compression::kNone) continue;
      raw_overflows = raw_overflows || __builtin_add_overflow(raw, b.raw_size, &raw);
      stored += b.stored_size;
    }
  }
  if (raw_overflows || raw > stored * kMaxCompressionRatio + kCompressionSlackBytes) {
    return corrupt_file(name, "", -1, "compressed blobs claim " + std::to_string(raw) + " bytes from " +
                                          std::to_string(stored) + " stored, beyond the " +
                                          std::to_string(kMaxCompressionRatio) +
                                          "x (+64 MiB) a real model can reach");
  }
  return Status();
}

std::string supported_versions() {
  std::string s;
  for (uint32_t v : kSupportedVersions) s += (s.empty() ? "" : ", ") + std::to_string(v);
  return s;
}

bool is_supported(uint32_t version) {
  for (uint32_t v : kSupportedVersions) {
    if (v == version) return true;
  }
  return false;
}

// Steps 1-5: preamble, version, header bounds and checksum. On success `header` views the header.
Status verify_preamble(const std::string& name, ByteSpan file, Preamble* out, ByteSpan* header) {
  if (file.size() < kPreambleBytes) {
    return corrupt_file(name, "", 0, "truncated: file is " + std::to_string(file.size()) +
                                         " bytes, smaller than the 32-byte preamble");
  }
  const Preamble p = decode_preamble(file.data());
  if (!has_qmodel_magic(p)) return corrupt_file(name, "", 0, "bad magic (not a .qmodel file)");
  if (!is_supported(p.format_version)) {
    return Status(StatusCode::kUnsupported, error_location(name, "", kPreambleVersionOffset) +
                                                ": format version " + std::to_string(p.format_version) +
                                                " not supported (supported: " + supported_versions() + ")");
  }
  if (p.preamble_bytes != kPreambleBytes) {
    return corrupt_file(name, "", kPreambleBytesOffset,
                        "preamble_bytes is " + std::to_string(p.preamble_bytes) + ", expected 32");
  }
  if (p.header_bytes > kMaxHeaderBytes) {
    return corrupt_file(name, "", kPreambleHeaderBytesOffset,
                        "header length " + std::to_string(p.header_bytes) + " exceeds the 64 MiB cap");
  }
  if (p.header_bytes > file.size() - kPreambleBytes) {
    return corrupt_file(name, "", kPreambleHeaderBytesOffset,
                        "header length past end of file (" + std::to_string(p.header_bytes) +
                            " header bytes at offset 32, file is " + std::to_string(file.size()) + " bytes)");
  }
  *header = file.subspan(kPreambleBytes, static_cast<size_t>(p.header_bytes));
  const uint64_t actual = xxh3_64(*header);
  if (actual != p.header_xxh3) {
    return Status(StatusCode::kChecksumMismatch, error_location(name, "", kPreambleBytes) +
                                                     ": header checksum mismatch (stored " +
                                                     std::to_string(p.header_xxh3) + ", computed " +
                                                     std::to_string(actual) + ")");
  }
  *out = p;
  return Status();
}

// Decompresses the embedded files once the rest of the header is known to be sound.
Status decode_files(const std::string& name, const std::vector<StoredFile>& stored, std::vector<EmbeddedFile>& out) {
  std::unordered_set<std::string> seen;
  uint64_t total = 0;
  for (const StoredFile& f : stored) {
    const int64_t at = static_cast<int64_t>(kPreambleBytes + f.header_offset);
    const std::string label = "embedded file '" + f.name + "'";
    if (f.name.empty()) return corrupt_file(name, "", at, "embedded file with an empty name");
    if (!seen.insert(f.name).second) return corrupt_file(name, "", at, "duplicate " + label);
    if (static_cast<uint8_t>(f.compression) > kMaxCompression) {
      return corrupt_file(name, "", at, label + " compression enum value " +
                                            std::to_string(static_cast<int>(f.compression)) + " out of range");
    }
    total += f.raw_size;  // each term is capped below, so the sum cannot wrap
    if (f.raw_size > kMaxEmbeddedFileBytes || total > kMaxEmbeddedTotalBytes) {
      return corrupt_file(name, "", at, label + " raw size " + std::to_string(f.raw_size) +
                                            " exceeds the embedded file limits (256 MiB each, 512 MiB total)");
    }
    EmbeddedFile file;
    file.name = f.name;
    if (f.compression == Compression::kNone) {
      if (f.data.size() != f.raw_size) {
        return corrupt_file(name, "", at, label + " holds " + std::to_string(f.data.size()) +
                                              " bytes, raw size says " + std::to_string(f.raw_size));
      }
      file.contents.assign(reinterpret_cast<const char*>(f.data.data()), f.data.size());
    } else {
      file.contents.resize(static_cast<size_t>(f.raw_size));
      const Status st = zstd_decompress_exact(f.data, f.raw_size, reinterpret_cast<uint8_t*>(&file.contents[0]));
      if (!st.ok()) return corrupt_file(name, "", at, label + ": " + st.message());
    }
    out.push_back(std::move(file));
  }
  return Status();
}

// v1 files predate the architecture description: they hold Llama-family models, whose
// description follows from the config and whose tensor roles from the Llama name table.
void upgrade_v1_header(ModelHeader& h) {
  h.arch = llama_arch(h.config.head_dim, h.config.hidden_size, h.config.rms_norm_eps);
  for (TensorInfo& t : h.tensors) {
    const RoleMatch m = match_tensor_role("llama", t.name);
    t.role = m.role;
    t.layer = m.layer;
  }
}

Result<ModelHeader> verify_model_impl(const std::string& name, ByteSpan file) {
  Preamble preamble;
  ByteSpan header;
  QMODEL_RETURN_IF_ERROR(verify_preamble(name, file, &preamble, &header));

  // FlatBuffers reads scalars in place, so the header must be aligned; a mapping always is
  // (offset 32), caller memory may not be.
  std::vector<uint64_t> aligned_copy;
  if (reinterpret_cast<uintptr_t>(header.data()) % kFlatBufferAlignment != 0) {
    aligned_copy.resize(header.size() / sizeof(uint64_t) + 1);
    std::memcpy(aligned_copy.data(), header.data(), header.size());
    header = ByteSpan(reinterpret_cast<const uint8_t*>(aligned_copy.data()), header.size());
  }
  if (!verify_flatbuffer(header)) {
    return corrupt_file(name, "", kPreambleBytes, "FlatBuffer verification failed (header is not a valid QMDL buffer)");
  }
  auto decoded = decode_header(header);
  if (!decoded.ok()) return corrupt_file(name, "", kPreambleBytes, decoded.status().message());
  DecodedHeader& d = decoded.value();
  for (uint64_t& offset : d.tensor_offsets) offset += kPreambleBytes;

  FileGeometry geometry;
  geometry.name = name;
  geometry.file_bytes = file.size();
  geometry.header_end = kPreambleBytes + preamble.header_bytes;
  geometry.preamble_version = preamble.format_version;
  if (!d.has_architecture) {
    if (preamble.format_version >= 2) {
      return corrupt_file(name, "", kPreambleBytes, "format version " + std::to_string(preamble.format_version) +
                                                        " header without an architecture");
    }
    upgrade_v1_header(d.header);
  }
  QMODEL_RETURN_IF_ERROR(verify_header_semantics(geometry, d.header, d.tensor_offsets));
  QMODEL_RETURN_IF_ERROR(check_decompressed_total(name, d.header));
  QMODEL_RETURN_IF_ERROR(decode_files(name, d.stored_files, d.header.files));
  return std::move(d.header);
}

}  // namespace

Result<ModelHeader> verify_model(const std::string& name, ByteSpan file) {
  try {
    return verify_model_impl(name, file);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, name + ": out of memory while reading the header");
  } catch (const std::exception& e) {
    return corrupt_file(name, "", -1, std::string("unexpected error while reading the header: ") + e.what());
  }
}

}  // namespace qmodel::format
