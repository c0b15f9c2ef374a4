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
#include "thread_pool.h"

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
  // The result's spans stay valid until the next encode() call.
  Result<EncodedTensor> encode(const TensorEntry& source, StorageType storage);

 private:
  void encode_4bit(const TensorEntry& source, StorageType storage, EncodedTensor& out);
  void encode_int8(const TensorEntry& source, EncodedTensor& out);
  void encode_float(const TensorEntry& source, StorageType storage, EncodedTensor& out);

  const ConvertOptions& options_;
  ThreadPool& pool_;
  std::vector<std::vector<float>> scratch_;  // one float chunk per worker
  std::vector<uint8_t> data_, scales_, absmax_codes_, nested_;
};

}  // namespace qmodel::converter
