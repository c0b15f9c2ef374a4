// Streaming, atomic .qmodel writer. Usage:
//   auto w = ModelWriter::create(path, options, skeleton);  // skeleton: the final header with
//                                                           // placeholder blob numbers
//   for each tensor: for each blob: BlobRef ref = w->append_blob(role, bytes)
//   w->finish(header);  // header patched in, signed if asked, fsync, rename over `path`
// The header is reserved up front from the skeleton (every vector and string already its final
// length; scalars are serialised with force_defaults so their values do not change the size).
// Until finish() succeeds the bytes live in a temporary file beside `path`, removed by the
// destructor, so a failed or interrupted conversion never leaves an output file.
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

struct WriterOptions {
  uint64_t alignment = kDefaultAlignment;  // power of two >= 64
  Compression compression = Compression::kNone;
  int zstd_level = 3;
  bool overwrite = false;  // refuse an existing `path` unless set
  // Sign the finished file with this key (signing.h): finish() reads the file back, hashes it
  // and appends the 128-byte signature trailer before publishing it.
  std::optional<SecretKey> signing_key;
};

class ModelWriter {
 public:
  static Result<std::unique_ptr<ModelWriter>> create(const std::string& path,
                                                     const WriterOptions& options,
                                                     const ModelHeader& skeleton);
  ~ModelWriter();  // removes the temporary file unless finish() succeeded
  ModelWriter(const ModelWriter&) = delete;
  ModelWriter& operator=(const ModelWriter&) = delete;

  // Appends one blob at the next aligned offset (compressing it when the options say so and it
  // saves space) and returns where it went and its checksum. Not thread-safe.
  Result<BlobRef> append_blob(BlobRole role, ByteSpan bytes);
  // Serialises `header` (its alignment and format_version are set by the writer), checks it fits
  // the reservation, writes preamble + header, fsyncs, renames. After an error the writer is dead.
  Status finish(ModelHeader header);

  uint64_t bytes_written() const;  // data section bytes so far, padding included

 private:
  struct Impl;
  explicit ModelWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmodel::format
