// The small files of a Hugging Face folder that go into a .qmodel besides the tensors: config.json
// (required), tokenizer.json (synthesized from vocab.json + merges.txt or tokenizer.model when
// absent), tokenizer_config.json, generation_config.json, special_tokens_map.json. Shared by the
// conversion and the bitsandbytes import, so both embed the same files.
#pragma once

#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "qmodel/format/types.h"

namespace qmodel::converter {

// tokenizer.json of large vocabularies is 7-11 MB; anything past this is not a side file.
inline constexpr uint64_t kMaxSideFileBytes = 64ull << 20;

// Reads `dir`'s side files into header.files, parses config.json into header.config and the
// architecture into header.arch, generation_config.json into header.generation (eos ids default to
// the config's), and returns config.json's text. Warnings (no tokenizer, synthesized tokenizer) go
// to `warnings`. Errors: kInvalidArgument without config.json; the parsers' errors.
Result<std::string> read_side_files(const std::string& dir, format::ModelHeader& header,
                                    std::vector<std::string>& warnings);

}  // namespace qmodel::converter
