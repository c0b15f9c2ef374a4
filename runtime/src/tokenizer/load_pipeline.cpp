// Parses the normalizer, pre_tokenizer, decoder and post_processor sections of tokenizer.json.
// Types this tokenizer does not implement are kUnsupported (never silently ignored).
#include "tokenizer/spec.h"

namespace qmodel::runtime::tok {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenizer regex, which ByteLevel(use_regex=true) uses.
constexpr const char kGpt2Pattern[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string type_of(const json& j) {
  auto it = j.find("type");
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

Status require_object(const json& j, const std::string& path, const JsonErrors& errors) {
  if (!j.is_object()) return errors.error(StatusCode::kCorruptFile, path, "expected an object");
  if (type_of(j).empty()) return errors.error(StatusCode::kCorruptFile, path + ".type", "missing or not a string");
  return Status::ok_status();
}

// {"String": "x"} or {"Regex": "x"} -> compiled pattern.
Status parse_pattern(const json& obj, const std::string& path, const JsonErrors& errors,
                     std::shared_ptr<const Regex>* out) {
  auto it = obj.find("pattern");
  if (it == obj.end() || !it->is_object()) return errors.error(StatusCode::kCorruptFile, path + ".pattern", "expected an object");
  std::string pattern;
  if (it->contains("String") && (*it)["String"].is_string()) {
    pattern = Regex::escape((*it)["String"].get<std::string>());
  } else if (it->contains("Regex") && (*it)["Regex"].is_string()) {
    pattern = (*it)["Regex"].get<std::string>();
  } else {
    return errors.error(StatusCode::kCorruptFile, path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
  }
  auto regex = Regex::compile(pattern);
  if (!regex.ok()) return errors.error(StatusCode::kCorruptFile, path + ".pattern", regex.status().message());
  *out = *regex;
  return Status::ok_status();
}

Status get_list(const json& obj, const char* key, const std::string& path, const JsonErrors& errors, const json** out) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return errors.error(StatusCode::kCorruptFile, path + "." + key, "expected an array");
  *out = &*it;
  return Status::ok_status();
}

Status parse_prepend_scheme(const json& j, const std::string& path, const JsonErrors& errors, PrependScheme* out) {
  if (j.contains("prepend_scheme")) {
    std::string s;
    QMODEL_RETURN_IF_ERROR(get_string(j, "prepend_scheme", path, errors, &s, true));
    if (s == "always") *out = PrependScheme::kAlways;
    else if (s == "first") *out = PrependScheme::kFirst;
    else if (s == "never") *out = PrependScheme::kNever;
    else return errors.error(StatusCode::kCorruptFile, path + ".prepend_scheme", "unknown value '" + s + "'");
    return Status::ok_status();
  }
  bool add_prefix_space = true;  // the legacy form
  QMODEL_RETURN_IF_ERROR(get_bool(j, "add_prefix_space", path, errors, true, &add_prefix_space));
  *out = add_prefix_space ? PrependScheme::kAlways : PrependScheme::kNever;
  return Status::ok_status();
}

}  // namespace

Status get_bool(const json& obj, const char* key, const std::string& path, const JsonErrors& errors, bool fallback,
                bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    *out = fallback;
  } else if (it->is_boolean()) {
    *out = it->get<bool>();
  } else {
    return errors.error(StatusCode::kCorruptFile, (path.empty() ? "" : path + ".") + key, "expected a boolean");
  }
  return Status::ok_status();
}

Status get_string(const json& obj, const char* key, const std::string& path, const JsonErrors& errors,
                  std::string* out, bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return errors.error(StatusCode::kCorruptFile, (path.empty() ? "" : path + ".") + key, "missing");
    return Status::ok_status();
  }
  if (!it->is_string()) return errors.error(StatusCode::kCorruptFile, (path.empty() ? "" : path + ".") + key, "expected a string");
  *out = it->get<std::string>();
  return Status::ok_status();
}

Status parse_normalizer(const json& j, const std::string& path, const JsonErrors& errors,
                        std::vector<NormalizerStep>* out) {
  if (j.is_null()) return Status::ok_status();
  QMODEL_RETURN_IF_ERROR(require_object(j, path, errors));
  const std::string type = type_of(j);
  NormalizerStep step;
  if (type == "Sequence") {
    const json* list = nullptr;
    QMODEL_RETURN_IF_ERROR(get_list(j, "normalizers", path, errors, &list));
    for (size_t i = 0; i < list->size(); ++i) {
      QMODEL_RETURN_IF_ERROR(parse_normalizer((*list)[i], path + ".normalizers[" + std::to_string(i) + "]", errors, out));
    }
    return Status::ok_status();
  } else if (type == "NFC") {
    step.kind = NormalizerStep::Kind::kNfc;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    QMODEL_RETURN_IF_ERROR(get_string(j, "prepend", path, errors, &step.text, true));
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    QMODEL_RETURN_IF_ERROR(parse_pattern(j, path, errors, &step.pattern));
    QMODEL_RETURN_IF_ERROR(get_string(j, "content", path, errors, &step.text, true));
  } else {
    return errors.error(StatusCode::kUnsupported, path + ".type", "normalizer '" + type + "' is not supported");
  }
  out->push_back(std::move(step));
  return Status::ok_status();
}

Status parse_pre_tokenizer(const json& j, const std::string& path, const JsonErrors& errors,
                           std::vector<PreTokenizerStep>* out) {
  if (j.is_null()) return Status::ok_status();
  QMODEL_RETURN_IF_ERROR(require_object(j, path, errors));
  const std::string type = type_of(j);
  PreTokenizerStep step;
  if (type == "Sequence") {
    const json* list = nullptr;
    QMODEL_RETURN_IF_ERROR(get_list(j, "pretokenizers", path, errors, &list));
    for (size_t i = 0; i < list->size(); ++i) {
      QMODEL_RETURN_IF_ERROR(parse_pre_tokenizer((*list)[i], path + ".pretokenizers[" + std::to_string(i) + "]", errors, out));
    }
    return Status::ok_status();
  } else if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::kByteLevel;
    bool use_regex = true;
    QMODEL_RETURN_IF_ERROR(get_bool(j, "add_prefix_space", path, errors, true, &step.add_prefix_space));
    QMODEL_RETURN_IF_ERROR(get_bool(j, "use_regex", path, errors, true, &use_regex));
    if (use_regex) {
      auto regex = Regex::compile(kGpt2Pattern);
      if (!regex.ok()) return regex.status();
      step.pattern = *regex;
    }
  } else if (type == "Split") {
    step.kind = PreTokenizerStep::Kind::kSplit;
    QMODEL_RETURN_IF_ERROR(parse_pattern(j, path, errors, &step.pattern));
    std::string behavior;
    QMODEL_RETURN_IF_ERROR(get_string(j, "behavior", path, errors, &behavior, true));
    if (behavior == "Removed") step.behavior = SplitBehavior::kRemoved;
    else if (behavior == "Isolated") step.behavior = SplitBehavior::kIsolated;
    else if (behavior == "MergedWithPrevious") step.behavior = SplitBehavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext") step.behavior = SplitBehavior::kMergedWithNext;
    else if (behavior == "Contiguous") step.behavior = SplitBehavior::kContiguous;
    else return errors.error(StatusCode::kCorruptFile, path + ".behavior", "unknown behavior '" + behavior + "'");
    QMODEL_RETURN_IF_ERROR(get_bool(j, "invert", path, errors, false, &step.invert));
  } else if (type == "Metaspace") {
    step.kind = PreTokenizerStep::Kind::kMetaspace;
    QMODEL_RETURN_IF_ERROR(get_string(j, "replacement", path, errors, &step.replacement, true));
    if (step.replacement.empty()) return errors.error(StatusCode::kCorruptFile, path + ".replacement", "empty");
    QMODEL_RETURN_IF_ERROR(parse_prepend_scheme(j, path, errors, &step.prepend_scheme));
    QMODEL_RETURN_IF_ERROR(get_bool(j, "split", path, errors, true, &step.split));
    if (step.split) {
      auto regex = Regex::compile(Regex::escape(step.replacement));
      if (!regex.ok()) return errors.error(StatusCode::kCorruptFile, path + ".replacement", regex.status().message());
      step.pattern = *regex;
    }
  } else {
    return errors.error(StatusCode::kUnsupported, path + ".type", "pre-tokenizer '" + type + "' is not supported");
  }
  out->push_back(std::move(step));
  return Status::ok_status();
}

namespace {

Status parse_decoder_step(const json& j, const std::string& path, const JsonErrors& errors, bool* fused,
                          DecoderSpec* out) {
  QMODEL_RETURN_IF_ERROR(require_object(j, path, errors));
  const std::string type = type_of(j);
  using Step = DecoderSpec::TokenStep;
  if (type == "Sequence") {
    const json* list = nullptr;
    QMODEL_RETURN_IF_ERROR(get_list(j, "decoders", path, errors, &list));
    for (size_t i = 0; i < list->size(); ++i) {
      QMODEL_RETURN_IF_ERROR(parse_decoder_step((*list)[i], path + ".decoders[" + std::to_string(i) + "]", errors, fused, out));
    }
  } else if (type == "ByteLevel") {
    out->token_steps.push_back({Step::Kind::kByteLevel, "", ""});
  } else if (type == "Replace") {
    auto p = j.find("pattern");
    if (p == j.end() || !p->is_object() || !p->contains("String") || !(*p)["String"].is_string()) {
      return errors.error(StatusCode::kUnsupported, path + ".pattern", "only {\"String\": ...} patterns are supported in decoders");
    }
    Step step{Step::Kind::kReplace, (*p)["String"].get<std::string>(), ""};
    QMODEL_RETURN_IF_ERROR(get_string(j, "content", path, errors, &step.to, true));
    out->token_steps.push_back(std::move(step));
  } else if (type == "ByteFallback") {
    out->byte_fallback = true;
  } else if (type == "Fuse") {
    *fused = true;
  } else if (type == "Strip") {
    int64_t start = 0, stop = 0;
    if (j.contains("start") && j["start"].is_number_integer()) start = j["start"].get<int64_t>();
    if (j.contains("stop") && j["stop"].is_number_integer()) stop = j["stop"].get<int64_t>();
    if (start < 0 || stop != 0 || !*fused) {
      return errors.error(StatusCode::kUnsupported, path, "only Strip of leading characters after Fuse is supported");
    }
    QMODEL_RETURN_IF_ERROR(get_string(j, "content", path, errors, &out->strip_content, true));
    out->strip_start = static_cast<size_t>(start);
  } else if (type == "Metaspace") {
    std::string replacement;
    QMODEL_RETURN_IF_ERROR(get_string(j, "replacement", path, errors, &replacement, true));
    PrependScheme scheme = PrependScheme::kAlways;
    QMODEL_RETURN_IF_ERROR(parse_prepend_scheme(j, path, errors, &scheme));
    out->token_steps.push_back({Step::Kind::kReplace, replacement, " "});
    if (scheme != PrependScheme::kNever) {  // the space added in front of the first word goes away
      out->strip_content = " ";
      out->strip_start = 1;
    }
  } else {
    return errors.error(StatusCode::kUnsupported, path + ".type", "decoder '" + type + "' is not supported");
  }
  return Status::ok_status();
}

}  // namespace

Status parse_decoder(const json& j, const std::string& path, const JsonErrors& errors, DecoderSpec* out) {
  if (j.is_null()) return Status::ok_status();
  bool fused = false;
  return parse_decoder_step(j, path, errors, &fused, out);
}

Status parse_post_processor(const json& j, const std::string& path, const JsonErrors& errors, TokenizerSpec* spec) {
  if (j.is_null()) return Status::ok_status();
  QMODEL_RETURN_IF_ERROR(require_object(j, path, errors));
  const std::string type = type_of(j);
  if (type == "ByteLevel") return Status::ok_status();  // offsets only
  if (type == "Sequence") {
    const json* list = nullptr;
    QMODEL_RETURN_IF_ERROR(get_list(j, "processors", path, errors, &list));
    for (size_t i = 0; i < list->size(); ++i) {
      QMODEL_RETURN_IF_ERROR(parse_post_processor((*list)[i], path + ".processors[" + std::to_string(i) + "]", errors, spec));
    }
    return Status::ok_status();
  }
  auto checked_id = [&](const json& v, const std::string& at, int32_t* id) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId) {
      return errors.error(StatusCode::kCorruptFile, at, "expected a token id in [0, " + std::to_string(kMaxTokenId) + "]");
    }
    *id = static_cast<int32_t>(v.get<int64_t>());
    return Status::ok_status();
  };
  if (type == "BertProcessing" || type == "RobertaProcessing") {  // [cls] A [sep]
    for (const char* key : {"cls", "sep"}) {
      auto it = j.find(key);
      if (it == j.end() || !it->is_array() || it->size() != 2) {
        return errors.error(StatusCode::kCorruptFile, path + "." + key, "expected [token, id]");
      }
      int32_t id = -1;
      QMODEL_RETURN_IF_ERROR(checked_id((*it)[1], path + "." + key + "[1]", &id));
      (std::string(key) == "cls" ? spec->prefix : spec->suffix).push_back(id);
    }
    return Status::ok_status();
  }
  if (type != "TemplateProcessing") {
    return errors.error(StatusCode::kUnsupported, path + ".type", "post-processor '" + type + "' is not supported");
  }
  const json* single = nullptr;
  QMODEL_RETURN_IF_ERROR(get_list(j, "single", path, errors, &single));
  auto specials = j.find("special_tokens");
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const json& item = (*single)[i];
    const std::string at = path + ".single[" + std::to_string(i) + "]";
    if (item.is_object() && item.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!item.is_object() || !item.contains("SpecialToken") || !item["SpecialToken"].is_object() ||
        !item["SpecialToken"].contains("id") || !item["SpecialToken"]["id"].is_string()) {
      return errors.error(StatusCode::kCorruptFile, at, "expected {\"Sequence\": ...} or {\"SpecialToken\": {\"id\": ...}}");
    }
    const std::string name = item["SpecialToken"]["id"].get<std::string>();
    if (specials == j.end() || !specials->is_object() || !specials->contains(name) || !(*specials)[name].is_object() ||
        !(*specials)[name].contains("ids") || !(*specials)[name]["ids"].is_array()) {
      return errors.error(StatusCode::kCorruptFile, path + ".special_tokens", "no ids for '" + name + "'");
    }
    const json& ids = (*specials)[name]["ids"];
    for (size_t k = 0; k < ids.size(); ++k) {
      int32_t id = -1;
      QMODEL_RETURN_IF_ERROR(checked_id(ids[k], path + ".special_tokens[\"" + name + "\"].ids[" + std::to_string(k) + "]", &id));
      (seen_sequence ? spec->suffix : spec->prefix).push_back(id);
    }
  }
  return Status::ok_status();
}

}  // namespace qmodel::runtime::tok
