// Export of a .qmodel to a bitsandbytes checkpoint folder that transformers + bitsandbytes load
// with AutoModelForCausalLM.from_pretrained(DIR) and no quantization argument: the tensors
// transformers' own save_pretrained writes for that model and quantization (shared reference §3-4):
//   4-bit W:  W (U8 [(n+1)/2, 1]), W.absmax (F32, or U8 when nested), W.quant_map (F32 [16]),
//             W.nested_absmax + W.nested_quant_map (nested only),
//             W.quant_state.bitsandbytes__nf4|fp4 (U8 bytes of bnb's json.dumps of
//             quant_type, blocksize, dtype, shape[, nested_blocksize, nested_dtype, nested_offset])
//   INT8 M.weight: M.weight (I8 [out, in]), M.SCB (F32 [out]), M.weight_format (U8 scalar 0)
//   float tensors: in their source dtype, GPT-2 Conv1D back in [in, out]; a tied lm_head is not
//                  written (transformers ties it again)
// and config.json = the embedded config.json with quantization_config as
// BitsAndBytesConfig.to_dict() gives it (llm_int8_skip_modules listing the Linear modules kept in
// float when they differ from transformers' default), plus every other embedded file (tokenizer,
// generation config) verbatim. The blobs are copied byte for byte: importing the folder again gives
// the same blocks. The folder is written to a temporary sibling and renamed: a failed export leaves
// nothing behind.
#pragma once

#include <cstdint>
#include <string>

#include "qmodel/format/status.h"

namespace qmodel::converter {

struct BnbExportOptions {
  std::string input;   // .qmodel file
  std::string output;  // folder to create
  bool overwrite = false;  // replace an existing folder
};

struct BnbExportSummary {
  size_t n_tensors = 0;    // safetensors entries written
  size_t n_quantized = 0;  // quantized modules
  uint64_t bytes = 0;      // model.safetensors size
};

// kInvalidArgument: output exists (without overwrite) or input has nothing bitsandbytes can
// express (no quantized tensor; NF4 and FP4, or 4-bit and INT8, or nested and plain absmax mixed in
// one file; a quantized tensor whose name does not end in ".weight"; no config.json). kIoError when
// writing fails. The reader's errors for a broken .qmodel.
Result<BnbExportSummary> export_bnb(const BnbExportOptions& options);

// Python's repr() of a double (shortest round-trip digits; exponent form below 1e-4 and from
// 1e16), as json.dumps writes floats: 0.05134176090359688, 1e-05, 6.0.
std::string python_float_repr(double v);

}  // namespace qmodel::converter
