// Hugging Face folder -> one .qmodel. Streams tensor by tensor (bounded memory whatever the model
// size), quantizes with a thread pool, writes atomically (no output file unless it succeeds), and
// is deterministic: the same input and options give a byte-identical file at any thread count.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"
#include "qmodel/format/writer.h"

namespace qmodel::converter {

struct ConvertOptions {
  std::string input;   // Hugging Face folder (or a single .safetensors inside one)
  std::string output;  // .qmodel path
  StorageType quant = StorageType::kNF4;  // kNF4, kFP4, kINT8, or kBF16/kF16/kF32 (no quantization)
  uint32_t block_size = kDefaultBlockSize;
  bool double_quant = false;
  ComputeDType compute_dtype = ComputeDType::kBF16;
  std::vector<std::string> skip_patterns;  // substring or glob (*, ?) on tensor/module names
  bool quantize_lm_head = false;
  format::Compression compression = format::Compression::kNone;
  unsigned n_threads = 0;  // 0 = hardware concurrency
  bool overwrite = false;
  uint64_t alignment = format::kDefaultAlignment;
  std::optional<format::SecretKey> signing_key;  // sign the output (format/signing.h)
  // Polled between tensors: once true, the conversion stops with kCancelled and writes nothing
  // (qconvert sets it from SIGINT/SIGTERM).
  const std::atomic<bool>* cancel = nullptr;
};

struct ConvertProgress {
  uint64_t input_bytes_done = 0, input_bytes_total = 0;
  size_t tensors_done = 0, tensors_total = 0;
  const std::string* current_tensor = nullptr;
};

struct ConvertSummary {
  size_t n_tensors = 0, n_quantized = 0;
  uint64_t n_params = 0;
  uint64_t input_bytes = 0;   // tensor bytes read from the checkpoint
  uint64_t output_bytes = 0;  // file size
  uint64_t data_bytes = 0;    // blob bytes (no padding): bits per parameter counts these
  double bits_per_param = 0;  // 8 * data_bytes / n_params
  double seconds = 0;
  std::vector<std::string> warnings;  // e.g. "no tokenizer.json: the model runs from token ids only"
};

using ProgressCallback = std::function<void(const ConvertProgress&)>;

Result<ConvertSummary> convert(const ConvertOptions& options, const ProgressCallback& progress = {});

// The writer settings a conversion (or a bitsandbytes import) uses for `options`.
format::WriterOptions writer_options(const ConvertOptions& options);
// kCancelled once options.cancel is set; called between tensors.
Status check_cancelled(const ConvertOptions& options);

}  // namespace qmodel::converter
