// tokenizer.json -> TokenizerSpec: the BPE model (vocab, merges in both encodings, options), the
// added tokens and, through load_pipeline.cpp, the text pipeline. tokenizer_config.json decides
// BOS/EOS. Every rejection names the JSON path.
#include <unordered_set>

#include "tokenizer/spec.h"

namespace qmodel::runtime::tok {
namespace {

using nlohmann::json;

Result<json> parse_text(const std::string& text, const JsonErrors& errors) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    return errors.error(StatusCode::kCorruptFile, "", std::string("not valid JSON (byte ") + std::to_string(e.byte) + ")");
  }
}

Status checked_id(const json& v, const std::string& path, const JsonErrors& errors, int32_t* id) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId) {
    return errors.error(StatusCode::kCorruptFile, path, "expected a token id in [0, " + std::to_string(kMaxTokenId) + "]");
  }
  *id = static_cast<int32_t>(v.get<int64_t>());
  return Status::ok_status();
}

Status parse_vocab(const json& model, const JsonErrors& errors, TokenizerSpec* spec) {
  auto it = model.find("vocab");
  if (it == model.end() || !it->is_object()) return errors.error(StatusCode::kCorruptFile, "model.vocab", "expected an object");
  std::vector<const std::string*> by_id(it->size(), nullptr);  // grows only for sparse ids
  spec->vocab.reserve(it->size());
  for (auto entry = it->begin(); entry != it->end(); ++entry) {
    int32_t id = -1;
    QMODEL_RETURN_IF_ERROR(checked_id(entry.value(), "model.vocab[\"" + entry.key() + "\"]", errors, &id));
    if (static_cast<size_t>(id) >= by_id.size()) by_id.resize(static_cast<size_t>(id) + 1, nullptr);
    if (by_id[static_cast<size_t>(id)] != nullptr) {
      return errors.error(StatusCode::kCorruptFile, "model.vocab[\"" + entry.key() + "\"]",
                          "id " + std::to_string(id) + " is also used by \"" + *by_id[static_cast<size_t>(id)] + "\"");
    }
    by_id[static_cast<size_t>(id)] = &entry.key();
    spec->vocab.emplace(entry.key(), id);
  }
  return Status::ok_status();
}

// A legacy "a b" merge whose halves may themselves contain spaces (TinyLlama has "   "): take the
// split where both halves and their concatenation are vocab tokens.
bool split_legacy_merge(const std::string& line, const std::unordered_map<std::string, int32_t>& vocab,
                        std::string* a, std::string* b) {
  for (size_t pos = line.find(' '); pos != std::string::npos; pos = line.find(' ', pos + 1)) {
    std::string left = line.substr(0, pos), right = line.substr(pos + 1);
    if (vocab.count(left) && vocab.count(right) && vocab.count(left + right)) {
      *a = std::move(left);
      *b = std::move(right);
      return true;
    }
  }
  const size_t pos = line.find(' ');
  if (pos == std::string::npos) return false;
  *a = line.substr(0, pos);  // no valid split: report this one's unknown token
  *b = line.substr(pos + 1);
  return true;
}

Status parse_merges(const json& model, const JsonErrors& errors, TokenizerSpec* spec) {
  auto it = model.find("merges");
  if (it == model.end() || it->is_null()) return Status::ok_status();
  if (!it->is_array()) return errors.error(StatusCode::kCorruptFile, "model.merges", "expected an array");
  spec->merges.reserve(it->size());
  std::string a, b, merged;
  auto lookup = [&](const std::string& token, size_t i, int32_t* id) -> Status {
    auto found = spec->vocab.find(token);
    if (found == spec->vocab.end()) {
      return errors.error(StatusCode::kCorruptFile, "model.merges[" + std::to_string(i) + "]",
                          "token \"" + token + "\" is not in the vocabulary");
    }
    *id = found->second;
    return Status::ok_status();
  };
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (m.is_string()) {
      if (!split_legacy_merge(m.get_ref<const std::string&>(), spec->vocab, &a, &b)) {
        return errors.error(StatusCode::kCorruptFile, "model.merges[" + std::to_string(i) + "]", "expected \"left right\"");
      }
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get_ref<const std::string&>();
      b = m[1].get_ref<const std::string&>();
    } else {
      return errors.error(StatusCode::kCorruptFile, "model.merges[" + std::to_string(i) + "]",
                          "expected [\"left\", \"right\"] or \"left right\"");
    }
    merged.assign(a).append(b);
    BpeModel::Merge merge{};
    QMODEL_RETURN_IF_ERROR(lookup(a, i, &merge.left));
    QMODEL_RETURN_IF_ERROR(lookup(b, i, &merge.right));
    QMODEL_RETURN_IF_ERROR(lookup(merged, i, &merge.merged));
    spec->merges.push_back(merge);
  }
  return Status::ok_status();
}

Status parse_model(const json& root, const JsonErrors& errors, TokenizerSpec* spec) {
  auto it = root.find("model");
  if (it == root.end() || !it->is_object()) return errors.error(StatusCode::kCorruptFile, "model", "missing or not an object");
  const json& model = *it;
  std::string type;
  QMODEL_RETURN_IF_ERROR(get_string(model, "type", "model", errors, &type, false));
  if (type.empty() && !(model.contains("vocab") && model.contains("merges"))) {
    return errors.error(StatusCode::kCorruptFile, "model.type", "missing");
  }
  if (!type.empty() && type != "BPE") {
    return errors.error(StatusCode::kUnsupported, "model.type", "model '" + type + "' is not supported (only BPE)");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    std::string affix;
    QMODEL_RETURN_IF_ERROR(get_string(model, key, "model", errors, &affix, false));
    if (!affix.empty()) return errors.error(StatusCode::kUnsupported, std::string("model.") + key, "subword affixes are not supported");
  }
  QMODEL_RETURN_IF_ERROR(parse_vocab(model, errors, spec));
  QMODEL_RETURN_IF_ERROR(parse_merges(model, errors, spec));
  QMODEL_RETURN_IF_ERROR(get_bool(model, "byte_fallback", "model", errors, false, &spec->bpe.byte_fallback));
  QMODEL_RETURN_IF_ERROR(get_bool(model, "fuse_unk", "model", errors, false, &spec->bpe.fuse_unk));
  QMODEL_RETURN_IF_ERROR(get_bool(model, "ignore_merges", "model", errors, false, &spec->bpe.ignore_merges));
  std::string unk;
  QMODEL_RETURN_IF_ERROR(get_string(model, "unk_token", "model", errors, &unk, false));
  if (!unk.empty()) {
    auto u = spec->vocab.find(unk);
    if (u == spec->vocab.end()) return errors.error(StatusCode::kCorruptFile, "model.unk_token", "\"" + unk + "\" is not in the vocabulary");
    spec->bpe.unk_id = u->second;
  }
  return Status::ok_status();  // "dropout" only matters for training and is ignored
}

Status parse_added_tokens(const json& root, const JsonErrors& errors, TokenizerSpec* spec) {
  auto it = root.find("added_tokens");
  if (it == root.end() || it->is_null()) return Status::ok_status();
  if (!it->is_array()) return errors.error(StatusCode::kCorruptFile, "added_tokens", "expected an array");
  std::unordered_set<int32_t> ids;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    if (!t.is_object()) return errors.error(StatusCode::kCorruptFile, path, "expected an object");
    AddedToken token;
    QMODEL_RETURN_IF_ERROR(checked_id(t.contains("id") ? t["id"] : json(), path + ".id", errors, &token.id));
    QMODEL_RETURN_IF_ERROR(get_string(t, "content", path, errors, &token.content, true));
    if (token.content.empty()) return errors.error(StatusCode::kCorruptFile, path + ".content", "empty");
    QMODEL_RETURN_IF_ERROR(get_bool(t, "special", path, errors, false, &token.special));
    QMODEL_RETURN_IF_ERROR(get_bool(t, "lstrip", path, errors, false, &token.lstrip));
    QMODEL_RETURN_IF_ERROR(get_bool(t, "rstrip", path, errors, false, &token.rstrip));
    QMODEL_RETURN_IF_ERROR(get_bool(t, "single_word", path, errors, false, &token.single_word));
    QMODEL_RETURN_IF_ERROR(get_bool(t, "normalized", path, errors, !token.special, &token.normalized));
    if (!ids.insert(token.id).second) {
      return errors.error(StatusCode::kCorruptFile, path + ".id", "id " + std::to_string(token.id) + " is used by another added token");
    }
    spec->added.push_back(std::move(token));
  }
  return Status::ok_status();
}

// A tokenizer_config.json token: "text", {"content": "text", ...} or null.
Status config_token(const json& cfg, const char* key, const JsonErrors& errors, bool* present, std::string* content) {
  auto it = cfg.find(key);
  *present = it != cfg.end();
  if (!*present || it->is_null()) return Status::ok_status();
  if (it->is_string()) {
    *content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    *content = (*it)["content"].get<std::string>();
  } else {
    return errors.error(StatusCode::kCorruptFile, key, "expected a string, {\"content\": ...} or null");
  }
  return Status::ok_status();
}

int32_t find_token(const TokenizerSpec& spec, const std::string& content) {
  for (const AddedToken& t : spec.added) if (t.content == content) return t.id;
  auto it = spec.vocab.find(content);
  return it == spec.vocab.end() ? -1 : it->second;
}

}  // namespace

Result<TokenizerSpec> parse_tokenizer_json(const std::string& text, const JsonErrors& errors) {
  QMODEL_ASSIGN_OR_RETURN(json root, parse_text(text, errors));
  if (!root.is_object()) return errors.error(StatusCode::kCorruptFile, "", "top level is not an object");
  TokenizerSpec spec;
  QMODEL_RETURN_IF_ERROR(parse_model(root, errors, &spec));
  QMODEL_RETURN_IF_ERROR(parse_added_tokens(root, errors, &spec));
  static const json kNull;
  auto section = [&](const char* key) -> const json& { return root.contains(key) ? root[key] : kNull; };
  QMODEL_RETURN_IF_ERROR(parse_normalizer(section("normalizer"), "normalizer", errors, &spec.normalizer));
  QMODEL_RETURN_IF_ERROR(parse_pre_tokenizer(section("pre_tokenizer"), "pre_tokenizer", errors, &spec.pre_tokenizer));
  QMODEL_RETURN_IF_ERROR(parse_decoder(section("decoder"), "decoder", errors, &spec.decoder));
  QMODEL_RETURN_IF_ERROR(parse_post_processor(section("post_processor"), "post_processor", errors, &spec));

  int64_t max_id = -1;
  for (const auto& [token, id] : spec.vocab) max_id = std::max<int64_t>(max_id, id);
  for (const AddedToken& t : spec.added) max_id = std::max<int64_t>(max_id, t.id);
  spec.vocab_size = static_cast<size_t>(max_id + 1);
  for (const std::vector<int32_t>* ids : {&spec.prefix, &spec.suffix}) {
    for (int32_t id : *ids) {
      if (id > max_id) return errors.error(StatusCode::kCorruptFile, "post_processor", "id " + std::to_string(id) + " is out of range");
    }
  }
  // Defaults before tokenizer_config.json: the post-processor's specials, then well-known names.
  spec.bos_id = !spec.prefix.empty() ? spec.prefix.front() : -1;
  spec.eos_id = !spec.suffix.empty() ? spec.suffix.back() : -1;
  for (const char* name : {"<s>", "<|begin_of_text|>", "<bos>", "<|endoftext|>"}) {
    if (spec.bos_id < 0) spec.bos_id = find_token(spec, name);
  }
  for (const char* name : {"</s>", "<|end_of_text|>", "<eos>", "<|endoftext|>"}) {
    if (spec.eos_id < 0) spec.eos_id = find_token(spec, name);
  }
  return spec;
}

Status apply_tokenizer_config(const std::string& text, const JsonErrors& errors, TokenizerSpec* spec) {
  if (text.empty()) return Status::ok_status();
  QMODEL_ASSIGN_OR_RETURN(json cfg, parse_text(text, errors));
  if (!cfg.is_object()) return errors.error(StatusCode::kCorruptFile, "", "top level is not an object");
  struct Which { const char* token_key; const char* add_key; int32_t* id; std::vector<int32_t>* ids; };
  for (const Which& w : {Which{"bos_token", "add_bos_token", &spec->bos_id, &spec->prefix},
                         Which{"eos_token", "add_eos_token", &spec->eos_id, &spec->suffix}}) {
    bool present = false;
    std::string content;
    QMODEL_RETURN_IF_ERROR(config_token(cfg, w.token_key, errors, &present, &content));
    if (present) *w.id = content.empty() ? -1 : find_token(*spec, content);
    if (!cfg.contains(w.add_key) || cfg[w.add_key].is_null()) continue;  // the post-processor decides
    bool add = false;
    QMODEL_RETURN_IF_ERROR(get_bool(cfg, w.add_key, "", errors, false, &add));
    if (add && *w.id < 0) {
      return errors.error(StatusCode::kCorruptFile, w.add_key, std::string("set, but ") + w.token_key + " is not a known token");
    }
    w.ids->clear();
    if (add) w.ids->push_back(*w.id);
  }
  return Status::ok_status();
}

}  // namespace qmodel::runtime::tok
