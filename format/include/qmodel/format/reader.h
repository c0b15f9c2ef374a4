// The only way to get at a .qmodel: open() maps the file and verifies everything before returning
// (preamble, version, header bounds and checksum, FlatBuffers verifier, then every semantic rule:
// enums, shapes, checked size arithmetic, alignment, blobs inside the data section, no overlap,
// unique names). There is no unverified access path.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "qmodel/format/signing.h"
#include "qmodel/format/span.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::format {

struct OpenOptions {
  bool verify_checksums = false;  // also hash every blob and check that all padding is zero (reads the whole file)
  // Require an Ed25519 signature by this key over every byte of the file (reads the whole file):
  // an unsigned file, another signer or a changed byte is kChecksumMismatch. Unset: signatures
  // are not required (a signed file still opens; verify_checksums then checks the signature
  // under the key it names).
  std::optional<PublicKey> trusted_key;
};

class ModelFile {
 public:
  // Errors name the file, the tensor and the byte offset of the first broken rule.
  static Result<std::unique_ptr<ModelFile>> open(const std::string& path,
                                                 const OpenOptions& options = {});
  // Same checks over bytes already in memory (tests, fuzzing). `bytes` must outlive the result.
  static Result<std::unique_ptr<ModelFile>> open_memory(const std::string& name, ByteSpan bytes,
                                                        const OpenOptions& options = {});
  ~ModelFile();

  const std::string& path() const;
  const ModelHeader& header() const;
  ByteSpan file_bytes() const;  // the whole mapping
  // The signature trailer, when the file ends with one. Trusted only if open() was given the key.
  const std::optional<SignatureInfo>& signature() const;

  // The raw (decompressed) bytes of a blob of this file: a view into the mapping when stored
  // uncompressed; otherwise decompressed once and kept for the ModelFile's lifetime. Thread-safe.
  Result<ByteSpan> blob_bytes(const BlobRef& blob) const;
  // Hashes every blob and compares with the stored XXH3-64 (the error names the tensor), then checks
  // that every byte outside the blobs after the header is zero (the error names the offset).
  Status verify_checksums() const;

 private:
  struct Impl;
  explicit ModelFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmodel::format
