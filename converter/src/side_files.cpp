#include "side_files.h"

#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/hf_config.h"
#include "qmodel/converter/tokenizer_files.h"
#include "text_file.h"

namespace qmodel::converter {
namespace {

// Embedded verbatim when present (config.json is required and always embedded).
constexpr const char* kOptionalFiles[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                                          "special_tokens_map.json"};

}  // namespace

Result<std::string> read_side_files(const std::string& dir, format::ModelHeader& header,
                                    std::vector<std::string>& warnings) {
  Result<std::string> config_file = read_text_file_capped(dir + "/config.json", kMaxSideFileBytes);
  if (!config_file.ok() && config_file.status().code() == StatusCode::kNotFound) {
    return Status(StatusCode::kInvalidArgument, dir + ": no config.json (a Hugging Face model folder needs one)");
  }
  QMODEL_ASSIGN_OR_RETURN(std::string config_text, std::move(config_file));
  QMODEL_ASSIGN_OR_RETURN(header.config, parse_model_config(config_text, dir + "/config.json"));
  QMODEL_ASSIGN_OR_RETURN(header.arch, derive_architecture(config_text, dir + "/config.json", header.config));
  header.files.push_back({"config.json", config_text});
  for (const char* name : kOptionalFiles) {
    Result<std::string> text = read_text_file_capped(dir + "/" + name, kMaxSideFileBytes);
    if (!text.ok()) {
      if (text.status().code() != StatusCode::kNotFound) return text.status();
      continue;
    }
    if (std::string(name) == "generation_config.json") {
      QMODEL_ASSIGN_OR_RETURN(header.generation, parse_generation_config(text.value(), dir + "/" + name));
    }
    header.files.push_back({name, std::move(text).value()});
  }
  if (!header.find_file("tokenizer.json")) {  // vocab.json + merges.txt or tokenizer.model: synthesize one
    QMODEL_ASSIGN_OR_RETURN(SynthesizedTokenizer synthesized, synthesize_tokenizer_json(dir, config_text));
    if (!synthesized.json.empty()) header.files.push_back({"tokenizer.json", std::move(synthesized.json)});
    for (std::string& w : synthesized.warnings) warnings.push_back(std::move(w));
  }
  if (header.generation.eos_token_ids.empty()) header.generation.eos_token_ids = header.config.eos_token_ids;
  return config_text;
}

}  // namespace qmodel::converter
