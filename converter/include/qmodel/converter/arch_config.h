// config.json -> the normalised architecture description (format/architecture.h). One mapping per
// family; together with the family's name table (format/tensor_roles.h) it is all a new family
// needs. Unknown architectures are refused with the list of supported ones.
#pragma once

#include <string>

#include "qmodel/format/architecture.h"
#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::converter {

// "LlamaForCausalLM, MistralForCausalLM, ..." for messages and --help.
std::string supported_architectures();

// Derives the description from config.json text (already parsed into `config` by
// parse_model_config) and corrects `config` where a family's keys mean something else than the
// generic reading (Falcon's kv heads, GPT-NeoX's rotary base and partial rotary). kUnsupported
// names an unknown architecture or a setting the runtime does not implement; kCorruptFile a bad key.
Result<format::ArchSpec> derive_architecture(const std::string& config_text, const std::string& file,
                                             format::ModelConfig& config);

}  // namespace qmodel::converter
