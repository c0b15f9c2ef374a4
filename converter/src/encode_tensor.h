// Turns one source tensor into the blobs of its storage type (types.h lists them per type), in
// parallel over fixed element chunks so the bytes do not depend on the thread count. Buffers are
// reused from tensor to tensor: memory stays bounded by the largest tensor's output.
#pragma once

#include <cstdint>
#include <vector>

#include "qmodel/converter/convert.h"
#include "qmodel/converter/safetensors.h"
#include "qmodel/format/span.h"
#include "qmodel/format/types.h"
#include "qmodel/thread_pool.h"

namespace qmodel::converter {

struct EncodedTensor {
  struct Part {
    format::BlobRole role;
    ByteSpan bytes;  // into the buffers below, or straight into the source mapping
  };
  format::QuantParams quant;
  std::vector<Part> parts;
};

class TensorEncoder {
 public:
  TensorEncoder(const ConvertOptions& options, ThreadPool& pool);
  // The result's spans stay valid until the encode() call after next: two buffer sets alternate,
  // so one tensor can be written out while the next is encoded.
  Result<EncodedTensor> encode(const TensorEntry& source, StorageType storage);

 private:
  // Non-finite weights (or, for INT8, weights beyond the fp16 range) are an error naming the
  // file, the tensor and the byte offset of the first such element.
  Status encode_4bit(const TensorEntry& source, StorageType storage, EncodedTensor& out);
  Status encode_int8(const TensorEntry& source, EncodedTensor& out);
  static Status bad_value_error(const TensorEntry& source, uint64_t index, const char* what);
  void encode_float(const TensorEntry& source, StorageType storage, EncodedTensor& out);

  const ConvertOptions& options_;
  ThreadPool& pool_;
  std::vector<std::vector<float>> scratch_;  // one float chunk per worker
  struct Buffers {
    std::vector<uint8_t> data, scales, absmax_codes, nested;
  };
  Buffers buffers_[2];
  unsigned current_ = 0;  // the set the running encode() fills
};

}  // namespace qmodel::converter
