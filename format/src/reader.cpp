// ModelFile: a verified .qmodel, mapped or in caller memory (see reader.h). Construction goes through
// verify_model() only, so there is no unverified path to a header.
#include "qmodel/format/reader.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "codec.h"
#include "mapped_file.h"
#include "qmodel/format/preamble.h"
#include "qmodel/format/signing.h"
#include "verify.h"

namespace qmodel::format {

struct ModelFile::Impl {
  struct BlobEntry {
    uint64_t offset;
    const TensorInfo* tensor;
    const BlobRef* blob;
  };

  std::string path;
  MappedFile mapping;  // empty for open_memory()
  ByteSpan bytes;
  ModelHeader header;
  std::vector<BlobEntry> blobs;  // every blob, sorted by offset (verified not to overlap)
  std::optional<SignatureInfo> signature;  // a signature trailer at the end, not yet trusted
  bool signature_checked = false;           // verified at open against a trusted key

  mutable std::mutex mutex;
  mutable std::map<uint64_t, std::vector<uint8_t>> decompressed;  // by blob offset

  void index_blobs() {
    for (const TensorInfo& t : header.tensors) {
      for (const BlobRef& b : t.blobs) blobs.push_back({b.offset, &t, &b});
    }
    std::sort(blobs.begin(), blobs.end(), [](const BlobEntry& a, const BlobEntry& b) { return a.offset < b.offset; });
  }

  // The entry for a BlobRef of this file, or nullptr for anything else.
  const BlobEntry* find(const BlobRef& ref) const {
    auto it = std::lower_bound(blobs.begin(), blobs.end(), ref.offset,
                               [](const BlobEntry& e, uint64_t offset) { return e.offset < offset; });
    if (it == blobs.end() || it->offset != ref.offset) return nullptr;
    const BlobRef& b = *it->blob;
    const bool same = b.stored_size == ref.stored_size && b.raw_size == ref.raw_size &&
                      b.compression == ref.compression && b.role == ref.role;
    return same ? &*it : nullptr;
  }

  // Runs the verification pipeline over `bytes`; the header exists only if it passes.
  Status verify(const OpenOptions& options) {
    QMODEL_ASSIGN_OR_RETURN(header, verify_model(path, bytes));
    index_blobs();
    signature = find_signature(bytes, data_end());
    if (options.trusted_key) {
      QMODEL_RETURN_IF_ERROR(verify_signature(path, bytes, data_end(), *options.trusted_key));
      signature_checked = true;
    }
    return options.verify_checksums ? checksum_all() : Status();
  }

  // End of the header and of every blob: a signature trailer can only start here or later.
  uint64_t data_end() const {
    uint64_t end = kPreambleBytes + decode_preamble(bytes.data()).header_bytes;  // verified at open
    if (!blobs.empty()) end = std::max(end, blobs.back().offset + blobs.back().blob->stored_size);
    return end;
  }

  Status checksum_all() const {
    for (const TensorInfo& t : header.tensors) {
      for (const BlobRef& b : t.blobs) {
        const uint64_t actual =
            xxh3_64(bytes.subspan(static_cast<size_t>(b.offset), static_cast<size_t>(b.stored_size)));
        if (actual != b.xxh3) {
          return Status(StatusCode::kChecksumMismatch,
                        error_location(path, t.name, static_cast<int64_t>(b.offset)) +
                            ": blob checksum mismatch (stored " + std::to_string(b.xxh3) + ", computed " +
                            std::to_string(actual) + ")");
        }
      }
    }
    QMODEL_RETURN_IF_ERROR(check_padding());
    // A trailer no key was asked for still has to be a valid signature under the key it names, so
    // its bytes cannot carry anything else either.
    // (One hash pass is enough: a trusted key already checked it at open.)
    return signature && !signature_checked ? verify_signature(path, bytes, data_end(), signature->signer) : Status();
  }

  // Every byte of the data section outside the blobs (alignment padding, trailing bytes) must be
  // zero, as the writer writes it: no hidden payload can ride in a valid file, and a flipped
  // padding byte is caught like a flipped blob byte.
  Status check_padding() const {
    const Preamble preamble = decode_preamble(bytes.data());  // verified at open
    uint64_t pos = kPreambleBytes + preamble.header_bytes;
    auto zero_until = [&](uint64_t end) -> Status {
      const uint64_t bad = first_non_zero(pos, end);
      if (bad != end) {
        return Status(StatusCode::kChecksumMismatch,
                      error_location(path, "", static_cast<int64_t>(bad)) + ": non-zero byte 0x" +
                          hex_byte(bytes[static_cast<size_t>(bad)]) +
                          " in padding outside every blob (padding must be zero)");
      }
      return Status();
    };
    for (const BlobEntry& e : blobs) {  // sorted, verified not to overlap
      QMODEL_RETURN_IF_ERROR(zero_until(e.offset));
      pos = std::max(pos, e.offset + e.blob->stored_size);
    }
    return zero_until(signature ? signature->trailer_offset : bytes.size());
  }

  uint64_t first_non_zero(uint64_t begin, uint64_t end) const {
    const uint8_t* p = bytes.data();
    uint64_t i = begin;
    for (; i < end && i % 8 != 0; ++i) {
      if (p[i] != 0) return i;
    }
    for (; i + 8 <= end; i += 8) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word != 0) break;
    }
    for (; i < end; ++i) {
      if (p[i] != 0) return i;
    }
    return end;
  }

  static std::string hex_byte(uint8_t b) {
    static const char kDigits[] = "0123456789abcdef";
    return std::string{kDigits[b >> 4], kDigits[b & 15]};
  }
};

namespace {

Status out_of_memory(const std::string& path, const std::string& what) {
  return Status(StatusCode::kOutOfMemory, path + ": out of memory " + what);
}

}  // namespace

ModelFile::ModelFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ModelFile::~ModelFile() = default;

Result<std::unique_ptr<ModelFile>> ModelFile::open(const std::string& path, const OpenOptions& options) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    QMODEL_ASSIGN_OR_RETURN(impl->mapping, MappedFile::open(path));
    impl->bytes = impl->mapping.bytes();
    QMODEL_RETURN_IF_ERROR(impl->verify(options));
    return std::unique_ptr<ModelFile>(new ModelFile(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return out_of_memory(path, "while opening");
  }
}

Result<std::unique_ptr<ModelFile>> ModelFile::open_memory(const std::string& name, ByteSpan bytes,
                                                          const OpenOptions& options) {
  try {
    auto impl = std::make_unique<Impl>();
    impl->path = name;
    impl->bytes = bytes;
    QMODEL_RETURN_IF_ERROR(impl->verify(options));
    return std::unique_ptr<ModelFile>(new ModelFile(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return out_of_memory(name, "while opening");
  }
}

const std::string& ModelFile::path() const { return impl_->path; }
const ModelHeader& ModelFile::header() const { return impl_->header; }
ByteSpan ModelFile::file_bytes() const { return impl_->bytes; }
const std::optional<SignatureInfo>& ModelFile::signature() const { return impl_->signature; }

Result<ByteSpan> ModelFile::blob_bytes(const BlobRef& blob) const {
  const Impl::BlobEntry* entry = impl_->find(blob);
  if (entry == nullptr) {
    return Status(StatusCode::kInvalidArgument, error_location(impl_->path, "", static_cast<int64_t>(blob.offset & INT64_MAX)) +
                                                    ": not a blob of this file");
  }
  const BlobRef& b = *entry->blob;
  const ByteSpan stored = impl_->bytes.subspan(static_cast<size_t>(b.offset), static_cast<size_t>(b.stored_size));
  if (b.compression == Compression::kNone) return stored;

  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->decompressed.find(b.offset);
  if (it != impl_->decompressed.end()) return ByteSpan(it->second.data(), it->second.size());
  try {
    std::vector<uint8_t> raw(static_cast<size_t>(b.raw_size));
    const Status st = zstd_decompress_exact(stored, b.raw_size, raw.data());
    if (!st.ok()) {
      return corrupt_file(impl_->path, entry->tensor->name, static_cast<int64_t>(b.offset), "compressed blob: " + st.message());
    }
    it = impl_->decompressed.emplace(b.offset, std::move(raw)).first;
    return ByteSpan(it->second.data(), it->second.size());
  } catch (const std::bad_alloc&) {
    return out_of_memory(impl_->path, "decompressing the blob of tensor '" + entry->tensor->name + "'");
  }
}

Status ModelFile::verify_checksums() const {
  try {
    return impl_->checksum_all();
  } catch (const std::bad_alloc&) {
    return out_of_memory(impl_->path, "while verifying checksums");
  }
}

}  // namespace qmodel::format
