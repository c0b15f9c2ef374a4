// Import of a bitsandbytes checkpoint folder (transformers' save_pretrained of a model loaded with
// BitsAndBytesConfig: config.json's quantization_config.quant_method == "bitsandbytes") into a
// .qmodel WITHOUT requantizing: the packed codes, absmax, absmax codes, nested absmax, LLM.int8
// weights and SCB row scales become the .qmodel blobs byte for byte, and the code tables and the
// nested offset are the folder's (quant_map, nested_quant_map, quant_state JSON), not our constants.
//
// Per quantized module weight W (shared reference §3-4):
//   W            U8 [(n+1)/2, 1]           -> blob kData   (NF4/FP4, shape from the quant_state JSON)
//   W.absmax     F32 [ceil(n/bs)]          -> blob kAbsmax
//             or U8 [ceil(n/bs)] (nested)  -> blob kAbsmaxCodes
//   W.nested_absmax F32 [ceil(nb/256)]     -> blob kNestedAbsmax
//   W.quant_map  F32 [16]                  -> QuantParams::code_table
//   W.nested_quant_map F32 [256]           -> QuantParams::nested_code_table
//   W.quant_state.bitsandbytes__nf4|fp4    -> storage, block size, logical shape, source dtype,
//                                             nested block size (256) and nested_offset
//   M.weight I8 [out, in] + M.SCB F32 [out] (+ M.weight_format U8 = 0) -> INT8 kData + kRowScale
// Everything else (norms, embeddings, biases, a kept lm_head) is stored as the normal conversion
// stores it (source dtype; GPT-2 Conv1D transposed to [out, in]). A folder that does not add up
// (missing or duplicated quant_state, unknown quant type, shapes or sizes that disagree with the
// JSON, a U8/I8 tensor no quant_state claims, ...) is refused with kCorruptFile naming the tensor.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "qmodel/converter/convert.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::converter {

// What the caller asked for explicitly. Each given value must agree with the folder (an import
// never requantizes); unset values are taken from the folder.
struct BnbImportRequest {
  std::optional<StorageType> quant;
  std::optional<uint32_t> block_size;
  bool double_quant = false;                  // --double-quant: every 4-bit tensor must be nested
  std::optional<ComputeDType> compute_dtype;  // default: quantization_config.bnb_4bit_compute_dtype
};

// True when `input` is a folder whose config.json has quantization_config.quant_method ==
// "bitsandbytes". False otherwise (no folder, no or unreadable config: the normal conversion
// reports those).
bool is_bnb_folder(const std::string& input);

// Writes options.output from the bitsandbytes folder options.input (atomically, as convert()).
// Uses options.output/overwrite/alignment/compression; options.quant, block_size, double_quant and
// compute_dtype are ignored in favour of `request`; --skip patterns and --quantize-lm-head are
// refused (the folder decides what is quantized). Provenance records the import
// (provenance.options starts with "import=bitsandbytes").
Result<ConvertSummary> import_bnb(const ConvertOptions& options, const BnbImportRequest& request,
                                  const ProgressCallback& progress = {});

}  // namespace qmodel::converter
