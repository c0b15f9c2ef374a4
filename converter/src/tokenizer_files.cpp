// tokenizer.json synthesis for folders without one: vocab.json + merges.txt (+ the special-token
// configs) as transformers' GPT2Tokenizer / RobertaTokenizer build them, and SentencePiece
// tokenizer.model (a minimal, bounds-checked protobuf reader) in the Llama-2 tokenizer.json form.
#include "qmodel/converter/tokenizer_files.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include "strict_json.h"
#include "text_file.h"

namespace qmodel::converter {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Same bound as the runtime's loader (runtime/src/tokenizer/spec.h).
constexpr int64_t kMaxTokenId = (int64_t{1} << 22) - 1;

std::string name_in(const std::string& dir, const char* name) { return dir.empty() ? name : dir + "/" + name; }

Status unsupported(const std::string& what) { return Status(StatusCode::kUnsupported, what); }

// Byte offset of a JSON key in the text it came from (for messages); -1 when it cannot be found
// (the key was written with escapes).
int64_t offset_of_key(std::string_view text, const std::string& key) {
  std::string quoted;
  try {
    quoted = json(key).dump();
  } catch (const std::exception&) {
    return -1;
  }
  const size_t at = text.find(quoted);
  return at == std::string_view::npos ? -1 : static_cast<int64_t>(at);
}

std::string show(const std::string& token) {
  try {
    return json(token).dump();
  } catch (const std::exception&) {
    return "\"?\"";
  }
}

// ---- vocab.json / merges.txt / added tokens --------------------------------------------------

struct Vocab {
  std::unordered_map<std::string, int32_t> ids;
  std::unordered_map<int32_t, const std::string*> tokens;  // id -> token (points into `ids`)
};

Result<Vocab> parse_vocab_json(const std::string& text, const std::string& file) {
  QMODEL_ASSIGN_OR_RETURN(json root, parse_strict_json(text, file, 0));
  if (!root.is_object()) return corrupt_file(file, "", 0, std::string("expected an object of token -> id, got ") + json_type_name(root));
  if (root.empty()) return corrupt_file(file, "", 0, "the vocabulary is empty");
  if (root.size() > static_cast<size_t>(kMaxTokenId) + 1) return corrupt_file(file, "", 0, "more than 2^22 tokens");
  Vocab v;
  v.ids.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    const json& id = it.value();
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
      return corrupt_file(file, "", offset_of_key(text, it.key()),
                          "token " + show(it.key()) + ": expected an id in [0, " + std::to_string(kMaxTokenId) +
                              "], got " + (id.is_number_integer() ? id.dump() : json_type_name(id)));
    }
    const int32_t n = static_cast<int32_t>(id.get<int64_t>());
    auto inserted = v.ids.emplace(it.key(), n).first;
    auto [other, fresh] = v.tokens.emplace(n, &inserted->first);
    if (!fresh) {
      return corrupt_file(file, "", offset_of_key(text, it.key()),
                          "token " + show(it.key()) + ": id " + std::to_string(n) + " is also used by " + show(*other->second));
    }
  }
  return v;
}

struct Merge {
  std::string left, right;
};

Result<std::vector<Merge>> parse_merges_txt(const std::string& text, const Vocab& vocab, const std::string& file) {
  const size_t bad = find_invalid_utf8(text);
  if (bad != text.size()) return corrupt_file(file, "", static_cast<int64_t>(bad), "not valid UTF-8");
  std::vector<Merge> merges;
  size_t pos = 0, line_no = 0, blank_at = std::string::npos;
  while (pos < text.size()) {
    const size_t start = pos;
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    pos = end + 1;
    ++line_no;
    std::string_view line(text.data() + start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::string where = "line " + std::to_string(line_no);
    if (line.rfind("#version", 0) == 0) continue;
    if (line.empty()) {  // allowed only at the end
      if (blank_at == std::string::npos) blank_at = start;
      continue;
    }
    if (blank_at != std::string::npos) {
      return corrupt_file(file, "", static_cast<int64_t>(blank_at), "empty line in the middle of the merges");
    }
    const size_t space = line.find(' ');
    if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string_view::npos) {
      return corrupt_file(file, "", static_cast<int64_t>(start),
                          where + ": expected two tokens separated by one space, got " + show(std::string(line)));
    }
    Merge m{std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
    for (const std::string* token : {&m.left, &m.right}) {
      if (!vocab.ids.count(*token)) {
        return corrupt_file(file, "", static_cast<int64_t>(start), where + ": token " + show(*token) + " is not in vocab.json");
      }
    }
    if (!vocab.ids.count(m.left + m.right)) {
      return corrupt_file(file, "", static_cast<int64_t>(start),
                          where + ": the merged token " + show(m.left + m.right) + " is not in vocab.json");
    }
    merges.push_back(std::move(m));
  }
  return merges;
}

struct AddedTok {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A token value of tokenizer_config.json / special_tokens_map.json: "text" or {"content": ...}.
// nullopt for null.
Result<std::optional<AddedTok>> parse_token_value(const json& v, const std::string& file, const std::string& where,
                                                  bool special) {
  if (v.is_null()) return std::optional<AddedTok>();
  AddedTok t;
  t.special = special;
  t.normalized = !special;
  if (v.is_string()) {
    t.content = v.get<std::string>();
  } else if (v.is_object()) {
    auto c = v.find("content");
    if (c == v.end() || !c->is_string()) return corrupt_file(file, "", -1, where + ": expected a \"content\" string");
    t.content = c->get<std::string>();
    struct Flag { const char* key; bool* out; };
    for (const Flag& f : {Flag{"single_word", &t.single_word}, Flag{"lstrip", &t.lstrip}, Flag{"rstrip", &t.rstrip},
                          Flag{"normalized", &t.normalized}, Flag{"special", &t.special}}) {
      auto it = v.find(f.key);
      if (it == v.end() || it->is_null()) continue;
      if (!it->is_boolean()) return corrupt_file(file, "", -1, where + "." + f.key + ": expected a boolean");
      *f.out = it->get<bool>();
    }
  } else {
    return corrupt_file(file, "", -1, where + ": expected a string, {\"content\": ...} or null, got " + json_type_name(v));
  }
  if (t.content.empty()) return corrupt_file(file, "", -1, where + ": empty token");
  return std::optional<AddedTok>(std::move(t));
}

Result<json> parse_object_file(const std::string& text, const std::string& file) {
  if (text.empty()) return json::object();
  QMODEL_ASSIGN_OR_RETURN(json root, parse_strict_json(text, file, 0));
  if (!root.is_object()) return corrupt_file(file, "", 0, std::string("expected an object, got ") + json_type_name(root));
  return root;
}

enum class BpeClass { kGpt2, kRoberta };

struct ClassInfo {
  BpeClass kind;
  std::string name;
};

Result<ClassInfo> resolve_class(const json& tok_config, const std::string& config_json, const std::string& tok_config_file) {
  std::string cls;
  if (auto it = tok_config.find("tokenizer_class"); it != tok_config.end() && !it->is_null()) {
    if (!it->is_string()) return corrupt_file(tok_config_file, "", -1, "tokenizer_class: expected a string");
    cls = it->get<std::string>();
  }
  if (cls.empty()) {  // AutoTokenizer goes by config.json's model_type
    std::string model_type;
    try {
      const json cfg = json::parse(config_json);
      if (cfg.is_object() && cfg.contains("model_type") && cfg["model_type"].is_string()) model_type = cfg["model_type"].get<std::string>();
    } catch (const std::exception&) {
    }
    for (const char* t : {"roberta", "bart", "longformer", "mvp", "led", "blenderbot"}) {
      if (model_type == t) return ClassInfo{BpeClass::kRoberta, "RobertaTokenizer"};
    }
    return ClassInfo{BpeClass::kGpt2, "GPT2Tokenizer"};  // gpt2, opt, gpt_neo, gptj and the default
  }
  std::string base = cls;
  if (base.size() > 4 && base.compare(base.size() - 4, 4, "Fast") == 0) base.resize(base.size() - 4);
  if (base == "GPT2Tokenizer") return ClassInfo{BpeClass::kGpt2, cls};
  for (const char* r : {"RobertaTokenizer", "BartTokenizer", "LongformerTokenizer", "MvpTokenizer", "LEDTokenizer", "BlenderbotTokenizer"}) {
    if (base == r) return ClassInfo{BpeClass::kRoberta, cls};
  }
  return unsupported("tokenizer_class '" + cls + "' with vocab.json + merges.txt is not supported (GPT2Tokenizer and RobertaTokenizer-like classes are)");
}

// Collects added tokens with transformers' id rules: explicit ids first, then special tokens that
// are in the vocabulary keep their id and new ones get max(vocab size, last added id + 1).
class AddedSet {
 public:
  explicit AddedSet(const Vocab& vocab) : vocab_(vocab) {}

  Status add_explicit(AddedTok t, const std::string& file, const std::string& where) {
    if (auto v = vocab_.ids.find(t.content); v != vocab_.ids.end() && v->second != t.id) {
      return corrupt_file(file, "", -1, where + ": " + show(t.content) + " has id " + std::to_string(t.id) +
                                            " but id " + std::to_string(v->second) + " in vocab.json");
    }
    if (auto v = vocab_.tokens.find(t.id); v != vocab_.tokens.end() && *v->second != t.content) {
      return corrupt_file(file, "", -1, where + ": id " + std::to_string(t.id) + " of " + show(t.content) +
                                            " is token " + show(*v->second) + " in vocab.json");
    }
    if (auto a = by_id_.find(t.id); a != by_id_.end() && list_[a->second].content != t.content) {
      return corrupt_file(file, "", -1, where + ": id " + std::to_string(t.id) + " is used by both " +
                                            show(list_[a->second].content) + " and " + show(t.content));
    }
    if (auto c = by_content_.find(t.content); c != by_content_.end()) {
      AddedTok& have = list_[c->second];
      if (have.id != t.id) {
        return corrupt_file(file, "", -1, where + ": " + show(t.content) + " has ids " + std::to_string(have.id) +
                                              " and " + std::to_string(t.id));
      }
      have.special = have.special || t.special;
      return Status::ok_status();
    }
    insert(std::move(t));
    return Status::ok_status();
  }

  // A special token from the configs (flags from its definition unless already registered).
  void add_special(AddedTok t) {
    if (auto c = by_content_.find(t.content); c != by_content_.end()) {
      list_[c->second].special = true;
      return;
    }
    if (auto v = vocab_.ids.find(t.content); v != vocab_.ids.end()) {
      t.id = v->second;
    } else {
      int64_t next = static_cast<int64_t>(vocab_.ids.size());
      if (max_added_ >= 0 && max_added_ + 1 > next) next = max_added_ + 1;
      while (vocab_.tokens.count(static_cast<int32_t>(next)) || by_id_.count(static_cast<int32_t>(next))) ++next;
      t.id = static_cast<int32_t>(next);
    }
    insert(std::move(t));
  }

  int32_t id_of(const std::string& content) const {
    auto c = by_content_.find(content);
    if (c != by_content_.end()) return list_[c->second].id;
    auto v = vocab_.ids.find(content);
    return v == vocab_.ids.end() ? -1 : v->second;
  }

  std::vector<AddedTok> sorted() const {
    std::vector<AddedTok> out = list_;
    std::sort(out.begin(), out.end(), [](const AddedTok& a, const AddedTok& b) { return a.id < b.id; });
    return out;
  }

 private:
  void insert(AddedTok t) {
    by_content_[t.content] = list_.size();
    by_id_[t.id] = list_.size();
    max_added_ = std::max<int64_t>(max_added_, t.id);
    list_.push_back(std::move(t));
  }

  const Vocab& vocab_;
  std::vector<AddedTok> list_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  int64_t max_added_ = -1;
};

Result<int32_t> parse_id_key(const std::string& key, const std::string& file, const std::string& where) {
  if (key.empty() || key.size() > 8 || !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return corrupt_file(file, "", -1, where + ": key " + show(key) + " is not a token id");
  }
  const int64_t id = std::stoll(key);
  if (id > kMaxTokenId) return corrupt_file(file, "", -1, where + ": id " + key + " is beyond " + std::to_string(kMaxTokenId));
  return static_cast<int32_t>(id);
}

ojson added_token_json(const AddedTok& t) {
  ojson j;
  j["id"] = t.id;
  j["content"] = t.content;
  j["single_word"] = t.single_word;
  j["lstrip"] = t.lstrip;
  j["rstrip"] = t.rstrip;
  j["normalized"] = t.normalized;
  j["special"] = t.special;
  return j;
}

// TemplateProcessing with optional BOS before and EOS after each sequence.
ojson template_processing(const std::string& bos, int32_t bos_id, const std::string& eos, int32_t eos_id) {
  auto special = [](const std::string& t, int type_id) {
    ojson s;
    s["SpecialToken"]["id"] = t;
    s["SpecialToken"]["type_id"] = type_id;
    return s;
  };
  auto sequence = [](const char* id, int type_id) {
    ojson s;
    s["Sequence"]["id"] = id;
    s["Sequence"]["type_id"] = type_id;
    return s;
  };
  ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
  if (!bos.empty()) single.push_back(special(bos, 0));
  single.push_back(sequence("A", 0));
  if (!eos.empty()) single.push_back(special(eos, 0));
  pair = single;
  if (!bos.empty()) pair.push_back(special(bos, 1));
  pair.push_back(sequence("B", 1));
  if (!eos.empty()) pair.push_back(special(eos, 1));
  for (const auto& [t, id] : {std::pair<const std::string&, int32_t>{bos, bos_id}, {eos, eos_id}}) {
    if (t.empty()) continue;
    specials[t]["id"] = t;
    specials[t]["ids"] = ojson::array({id});
    specials[t]["tokens"] = ojson::array({t});
  }
  ojson p;
  p["type"] = "TemplateProcessing";
  p["single"] = std::move(single);
  p["pair"] = std::move(pair);
  p["special_tokens"] = std::move(specials);
  return p;
}

Result<std::string> dump_json(const ojson& j, const std::string& what) {
  try {
    return j.dump();
  } catch (const std::exception& e) {
    return Status(StatusCode::kCorruptFile, what + ": cannot write tokenizer.json: " + e.what());
  }
}

Status get_flag(const json& obj, const char* key, const std::string& file, bool* out) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::ok_status();
  if (!it->is_boolean()) return corrupt_file(file, "", -1, std::string(key) + ": expected a boolean");
  *out = it->get<bool>();
  return Status::ok_status();
}

// ---- SentencePiece ModelProto ------------------------------------------------------------------

// Protobuf wire-format reader over [begin, end) of a buffer; offsets in messages are file offsets.
class ProtoReader {
 public:
  ProtoReader(std::string_view buf, size_t begin, size_t end, const std::string& file)
      : buf_(buf), pos_(begin), end_(end), file_(file) {}
  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }

  Status varint(uint64_t* out) {
    uint64_t v = 0;
    const size_t start = pos_;
    for (int shift = 0; shift < 70; shift += 7) {
      if (pos_ >= end_) return error(start, "truncated varint");
      const uint8_t b = static_cast<uint8_t>(buf_[pos_++]);
      if (shift == 63 && (b & 0x7e) != 0) return error(start, "varint overflows 64 bits");
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return Status::ok_status();
      }
    }
    return error(start, "varint longer than 10 bytes");
  }

  Status key(uint32_t* field, uint32_t* wire) {
    const size_t start = pos_;
    uint64_t k = 0;
    QMODEL_RETURN_IF_ERROR(varint(&k));
    *field = static_cast<uint32_t>(k >> 3);
    *wire = static_cast<uint32_t>(k & 7);
    if (k >> 3 == 0 || k >> 3 > 0x1fffffff) return error(start, "invalid field number");
    return Status::ok_status();
  }

  // Length-delimited payload: [*begin, *end) in the buffer.
  Status bytes(size_t* begin, size_t* end) {
    const size_t start = pos_;
    uint64_t n = 0;
    QMODEL_RETURN_IF_ERROR(varint(&n));
    if (n > end_ - pos_) return error(start, "length " + std::to_string(n) + " runs past the end of the message");
    *begin = pos_;
    *end = pos_ + static_cast<size_t>(n);
    pos_ = *end;
    return Status::ok_status();
  }

  Status fixed32(uint32_t* out) {
    if (end_ - pos_ < 4) return error(pos_, "truncated fixed32");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(buf_[pos_ + static_cast<size_t>(i)])) << (8 * i);
    pos_ += 4;
    *out = v;
    return Status::ok_status();
  }

  Status skip(uint32_t wire, size_t key_at) {
    uint64_t v = 0;
    size_t b = 0, e = 0;
    switch (wire) {
      case 0: return varint(&v);
      case 1:
        if (end_ - pos_ < 8) return error(pos_, "truncated fixed64");
        pos_ += 8;
        return Status::ok_status();
      case 2: return bytes(&b, &e);
      case 5: {
        uint32_t f = 0;
        return fixed32(&f);
      }
      default: return error(key_at, "unsupported wire type " + std::to_string(wire));
    }
  }

  Status expect(uint32_t wire, uint32_t want, size_t key_at, const char* field) const {
    if (wire == want) return Status::ok_status();
    return error(key_at, std::string(field) + ": wire type " + std::to_string(wire) + ", expected " + std::to_string(want));
  }

  Status error(size_t at, const std::string& what) const { return corrupt_file(file_, "", static_cast<int64_t>(at), what); }

 private:
  std::string_view buf_;
  size_t pos_, end_;
  const std::string& file_;
};

struct SpPiece {
  std::string piece;
  float score = 0;
  int type = 1;  // NORMAL=1 UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6
  size_t offset = 0;
};

struct SpModel {
  std::vector<SpPiece> pieces;
  int64_t model_type = 1;  // UNIGRAM=1 BPE=2 WORD=3 CHAR=4
  bool byte_fallback = false;
  int64_t unk_id = 0, bos_id = 1, eos_id = 2;
  std::string normalizer_name;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};

Status parse_piece(ProtoReader& r, std::string_view buf, const std::string& file, SpPiece* out) {
  while (!r.done()) {
    const size_t at = r.pos();
    uint32_t field = 0, wire = 0;
    QMODEL_RETURN_IF_ERROR(r.key(&field, &wire));
    if (field == 1) {
      QMODEL_RETURN_IF_ERROR(r.expect(wire, 2, at, "piece"));
      size_t b = 0, e = 0;
      QMODEL_RETURN_IF_ERROR(r.bytes(&b, &e));
      out->piece.assign(buf.substr(b, e - b));
      if (find_invalid_utf8(out->piece) != out->piece.size()) return corrupt_file(file, "", static_cast<int64_t>(b), "piece is not valid UTF-8");
    } else if (field == 2) {
      QMODEL_RETURN_IF_ERROR(r.expect(wire, 5, at, "score"));
      uint32_t bits = 0;
      QMODEL_RETURN_IF_ERROR(r.fixed32(&bits));
      std::memcpy(&out->score, &bits, 4);
      if (!std::isfinite(out->score)) return r.error(at, "score is not finite");
    } else if (field == 3) {
      QMODEL_RETURN_IF_ERROR(r.expect(wire, 0, at, "type"));
      uint64_t t = 0;
      QMODEL_RETURN_IF_ERROR(r.varint(&t));
      if (t < 1 || t > 6) return r.error(at, "piece type " + std::to_string(t) + " is not one of 1..6");
      out->type = static_cast<int>(t);
    } else {
      QMODEL_RETURN_IF_ERROR(r.skip(wire, at));
    }
  }
  return Status::ok_status();
}

Status parse_submessage(ProtoReader& r, const std::function<Status(uint32_t field, uint32_t wire, size_t at, ProtoReader&)>& on_field) {
  while (!r.done()) {
    const size_t at = r.pos();
    uint32_t field = 0, wire = 0;
    QMODEL_RETURN_IF_ERROR(r.key(&field, &wire));
    QMODEL_RETURN_IF_ERROR(on_field(field, wire, at, r));
  }
  return Status::ok_status();
}

Status read_int(ProtoReader& r, uint32_t wire, size_t at, const char* name, int64_t* out) {
  QMODEL_RETURN_IF_ERROR(r.expect(wire, 0, at, name));
  uint64_t v = 0;
  QMODEL_RETURN_IF_ERROR(r.varint(&v));
  *out = static_cast<int64_t>(v);  // int32 fields: negative values are sign-extended varints
  return Status::ok_status();
}

Status read_bool(ProtoReader& r, uint32_t wire, size_t at, const char* name, bool* out) {
  int64_t v = 0;
  QMODEL_RETURN_IF_ERROR(read_int(r, wire, at, name, &v));
  *out = v != 0;
  return Status::ok_status();
}

Result<SpModel> parse_sentencepiece(std::string_view buf, const std::string& file) {
  SpModel m;
  auto on_trainer = [&](uint32_t f, uint32_t w, size_t a, ProtoReader& r) -> Status {
    switch (f) {
      case 3: return read_int(r, w, a, "trainer_spec.model_type", &m.model_type);
      case 35: return read_bool(r, w, a, "trainer_spec.byte_fallback", &m.byte_fallback);
      case 40: return read_int(r, w, a, "trainer_spec.unk_id", &m.unk_id);
      case 41: return read_int(r, w, a, "trainer_spec.bos_id", &m.bos_id);
      case 42: return read_int(r, w, a, "trainer_spec.eos_id", &m.eos_id);
      default: return r.skip(w, a);
    }
  };
  auto on_normalizer = [&](uint32_t f, uint32_t w, size_t a, ProtoReader& r) -> Status {
    switch (f) {
      case 1: {
        QMODEL_RETURN_IF_ERROR(r.expect(w, 2, a, "normalizer_spec.name"));
        size_t nb = 0, ne = 0;
        QMODEL_RETURN_IF_ERROR(r.bytes(&nb, &ne));
        m.normalizer_name.assign(buf.substr(nb, ne - nb));
        return Status::ok_status();
      }
      case 3: return read_bool(r, w, a, "normalizer_spec.add_dummy_prefix", &m.add_dummy_prefix);
      case 4: return read_bool(r, w, a, "normalizer_spec.remove_extra_whitespaces", &m.remove_extra_whitespaces);
      case 5: return read_bool(r, w, a, "normalizer_spec.escape_whitespaces", &m.escape_whitespaces);
      default: return r.skip(w, a);
    }
  };
  ProtoReader top(buf, 0, buf.size(), file);
  while (!top.done()) {
    const size_t at = top.pos();
    uint32_t field = 0, wire = 0;
    QMODEL_RETURN_IF_ERROR(top.key(&field, &wire));
    if (field != 1 && field != 2 && field != 3) {
      QMODEL_RETURN_IF_ERROR(top.skip(wire, at));
      continue;
    }
    QMODEL_RETURN_IF_ERROR(top.expect(wire, 2, at, field == 1 ? "pieces" : field == 2 ? "trainer_spec" : "normalizer_spec"));
    size_t b = 0, e = 0;
    QMODEL_RETURN_IF_ERROR(top.bytes(&b, &e));
    ProtoReader sub(buf, b, e, file);
    if (field == 1) {
      if (m.pieces.size() > static_cast<size_t>(kMaxTokenId)) return top.error(at, "more than 2^22 pieces");
      SpPiece piece;
      piece.offset = at;
      QMODEL_RETURN_IF_ERROR(parse_piece(sub, buf, file, &piece));
      m.pieces.push_back(std::move(piece));
    } else if (field == 2) {
      QMODEL_RETURN_IF_ERROR(parse_submessage(sub, on_trainer));
    } else {
      QMODEL_RETURN_IF_ERROR(parse_submessage(sub, on_normalizer));
    }
  }
  return m;
}

// Code-point boundaries of valid UTF-8 text (offsets after each code point but the last).
std::vector<size_t> inner_boundaries(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 1; i < s.size(); ++i) {
    if ((static_cast<uint8_t>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  }
  return out;
}

}  // namespace

Result<std::string> bpe_files_to_tokenizer_json(const BpeTokenizerFiles& f) {
  const std::string vocab_file = name_in(f.dir, "vocab.json"), merges_file = name_in(f.dir, "merges.txt");
  const std::string cfg_file = name_in(f.dir, "tokenizer_config.json"), map_file = name_in(f.dir, "special_tokens_map.json");
  const std::string added_file = name_in(f.dir, "added_tokens.json");
  QMODEL_ASSIGN_OR_RETURN(Vocab vocab, parse_vocab_json(f.vocab_json, vocab_file));
  QMODEL_ASSIGN_OR_RETURN(std::vector<Merge> merges, parse_merges_txt(f.merges_txt, vocab, merges_file));
  QMODEL_ASSIGN_OR_RETURN(json cfg, parse_object_file(f.tokenizer_config_json, cfg_file));
  QMODEL_ASSIGN_OR_RETURN(json map, parse_object_file(f.special_tokens_map_json, map_file));
  QMODEL_ASSIGN_OR_RETURN(json added_json, parse_object_file(f.added_tokens_json, added_file));
  QMODEL_ASSIGN_OR_RETURN(ClassInfo cls, resolve_class(cfg, f.config_json, cfg_file));

  AddedSet added(vocab);
  // 1. tokenizer_config.json added_tokens_decoder: {"id": {"content": ..., flags}}.
  if (auto it = cfg.find("added_tokens_decoder"); it != cfg.end() && !it->is_null()) {
    if (!it->is_object()) return corrupt_file(cfg_file, "", -1, "added_tokens_decoder: expected an object");
    std::map<int32_t, AddedTok> ordered;
    for (auto e = it->begin(); e != it->end(); ++e) {
      const std::string where = "added_tokens_decoder[" + show(e.key()) + "]";
      QMODEL_ASSIGN_OR_RETURN(int32_t id, parse_id_key(e.key(), cfg_file, where));
      if (!e.value().is_object()) return corrupt_file(cfg_file, "", -1, where + ": expected an object");
      QMODEL_ASSIGN_OR_RETURN(std::optional<AddedTok> t, parse_token_value(e.value(), cfg_file, where, false));
      t->id = id;
      ordered[id] = std::move(*t);
    }
    for (auto& [id, t] : ordered) {
      QMODEL_RETURN_IF_ERROR(added.add_explicit(std::move(t), cfg_file, "added_tokens_decoder[\"" + std::to_string(id) + "\"]"));
    }
  }
  // 2. added_tokens.json: {"token": id}.
  {
    std::map<int32_t, std::string> ordered;
    for (auto e = added_json.begin(); e != added_json.end(); ++e) {
      const json& id = e.value();
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
        return corrupt_file(added_file, "", offset_of_key(f.added_tokens_json, e.key()),
                            "token " + show(e.key()) + ": expected an id in [0, " + std::to_string(kMaxTokenId) + "]");
      }
      if (e.key().empty()) return corrupt_file(added_file, "", -1, "empty token");
      const int32_t n = static_cast<int32_t>(id.get<int64_t>());
      if (!ordered.emplace(n, e.key()).second) {
        return corrupt_file(added_file, "", offset_of_key(f.added_tokens_json, e.key()),
                            "token " + show(e.key()) + ": id " + std::to_string(n) + " is also used by " + show(ordered[n]));
      }
    }
    for (auto& [id, content] : ordered) {
      AddedTok t;
      t.id = id;
      t.content = content;
      QMODEL_RETURN_IF_ERROR(added.add_explicit(std::move(t), added_file, "token " + show(content)));
    }
  }
  // 3. Special tokens: class defaults, then tokenizer_config.json, then special_tokens_map.json.
  const char* kSpecialKeys[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
  std::map<std::string, json> specials;
  if (cls.kind == BpeClass::kGpt2) {
    for (const char* k : {"bos_token", "eos_token", "unk_token"}) specials[k] = "<|endoftext|>";
  } else {
    specials = {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"sep_token", "</s>"}, {"cls_token", "<s>"},
                {"unk_token", "<unk>"}, {"pad_token", "<pad>"}, {"mask_token", "<mask>"}};
  }
  json additional = json::array();
  std::string additional_file;
  for (const auto& [source, file] : {std::pair<const json&, const std::string&>{cfg, cfg_file}, {map, map_file}}) {
    for (const char* k : kSpecialKeys) {
      if (source.contains(k)) specials[k] = source[k];
    }
    if (source.contains("additional_special_tokens") && !source["additional_special_tokens"].is_null()) {
      additional = source["additional_special_tokens"];
      additional_file = file;
      if (!additional.is_array()) return corrupt_file(file, "", -1, "additional_special_tokens: expected an array");
    }
  }
  std::map<std::string, std::string> special_content;  // key -> content
  for (const char* k : kSpecialKeys) {
    auto it = specials.find(k);
    if (it == specials.end()) continue;
    const std::string file = map.contains(k) ? map_file : cfg_file;
    QMODEL_ASSIGN_OR_RETURN(std::optional<AddedTok> t, parse_token_value(it->second, file, k, true));
    if (!t) continue;
    // RobertaTokenizer makes a plain-string mask token strip the space before it.
    if (cls.kind == BpeClass::kRoberta && std::string(k) == "mask_token" && it->second.is_string()) t->lstrip = true;
    special_content[k] = t->content;
    added.add_special(std::move(*t));
  }
  for (size_t i = 0; i < additional.size(); ++i) {
    QMODEL_ASSIGN_OR_RETURN(std::optional<AddedTok> t,
                            parse_token_value(additional[i], additional_file, "additional_special_tokens[" + std::to_string(i) + "]", true));
    if (t) added.add_special(std::move(*t));
  }

  bool add_prefix_space = false, add_bos = false, add_eos = false;
  QMODEL_RETURN_IF_ERROR(get_flag(cfg, "add_prefix_space", cfg_file, &add_prefix_space));
  QMODEL_RETURN_IF_ERROR(get_flag(cfg, "add_bos_token", cfg_file, &add_bos));
  QMODEL_RETURN_IF_ERROR(get_flag(cfg, "add_eos_token", cfg_file, &add_eos));

  ojson out;
  out["version"] = "1.0";
  out["truncation"] = nullptr;
  out["padding"] = nullptr;
  out["added_tokens"] = ojson::array();
  for (const AddedTok& t : added.sorted()) out["added_tokens"].push_back(added_token_json(t));
  out["normalizer"] = nullptr;
  ojson byte_level;
  byte_level["type"] = "ByteLevel";
  byte_level["add_prefix_space"] = add_prefix_space;
  byte_level["trim_offsets"] = true;
  byte_level["use_regex"] = true;
  out["pre_tokenizer"] = byte_level;
  if (cls.kind == BpeClass::kRoberta) {
    auto need = [&](const char* key) -> Result<std::string> {
      auto c = special_content.find(key);
      if (c == special_content.end()) return corrupt_file(cfg_file, "", -1, cls.name + " needs " + key + " (it is null)");
      return c->second;
    };
    QMODEL_ASSIGN_OR_RETURN(std::string sep, need("sep_token"));
    QMODEL_ASSIGN_OR_RETURN(std::string cls_token, need("cls_token"));
    ojson p;
    p["type"] = "RobertaProcessing";
    p["sep"] = ojson::array({sep, added.id_of(sep)});
    p["cls"] = ojson::array({cls_token, added.id_of(cls_token)});
    p["trim_offsets"] = true;
    p["add_prefix_space"] = add_prefix_space;
    out["post_processor"] = std::move(p);
  } else {
    std::string bos, eos;
    for (const auto& [add, key, dest] : {std::tuple<bool, std::string, std::string*>{add_bos, "bos_token", &bos},
                                         {add_eos, "eos_token", &eos}}) {
      if (!add) continue;
      auto c = special_content.find(key);
      if (c == special_content.end()) {
        return corrupt_file(cfg_file, "", -1, "add_" + key + " is set but " + key + " is null");
      }
      *dest = c->second;
    }
    out["post_processor"] = template_processing(bos, bos.empty() ? -1 : added.id_of(bos), eos, eos.empty() ? -1 : added.id_of(eos));
  }
  ojson decoder = byte_level;
  decoder["add_prefix_space"] = true;
  out["decoder"] = std::move(decoder);

  ojson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = "";
  model["end_of_word_suffix"] = "";
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  model["ignore_merges"] = false;
  std::vector<std::pair<int32_t, const std::string*>> by_id;
  by_id.reserve(vocab.ids.size());
  for (const auto& [token, id] : vocab.ids) by_id.emplace_back(id, &token);
  std::sort(by_id.begin(), by_id.end());
  ojson v = ojson::object();
  for (const auto& [id, token] : by_id) v[*token] = id;
  model["vocab"] = std::move(v);
  ojson m = ojson::array();
  for (Merge& merge : merges) m.push_back(ojson::array({std::move(merge.left), std::move(merge.right)}));
  model["merges"] = std::move(m);
  out["model"] = std::move(model);
  return dump_json(out, vocab_file);
}

Result<std::string> sentencepiece_to_tokenizer_json(std::string_view model_proto, const std::string& file,
                                                    const std::string& tokenizer_config_json) {
  if (model_proto.size() > kMaxTokenizerFileBytes) {
    return corrupt_file(file, "", -1, "larger than the " + std::to_string(kMaxTokenizerFileBytes) + "-byte limit");
  }
  QMODEL_ASSIGN_OR_RETURN(SpModel sp, parse_sentencepiece(model_proto, file));
  if (sp.pieces.empty()) return corrupt_file(file, "", 0, "no pieces (not a SentencePiece model?)");
  if (sp.model_type != 2) {
    const char* names[] = {"?", "unigram", "BPE", "word", "char"};
    const std::string name = sp.model_type >= 1 && sp.model_type <= 4 ? names[sp.model_type] : std::to_string(sp.model_type);
    return unsupported(file + ": SentencePiece model type " + name + " is not supported (only BPE)");
  }
  if (!sp.normalizer_name.empty() && sp.normalizer_name != "identity") {
    return unsupported(file + ": SentencePiece normalizer '" + sp.normalizer_name + "' is not supported (only identity)");
  }
  if (sp.remove_extra_whitespaces) return unsupported(file + ": SentencePiece remove_extra_whitespaces is not supported");
  if (!sp.escape_whitespaces) return unsupported(file + ": SentencePiece without escape_whitespaces is not supported");

  std::unordered_map<std::string, int32_t> vocab;
  vocab.reserve(sp.pieces.size());
  for (size_t i = 0; i < sp.pieces.size(); ++i) {
    const SpPiece& p = sp.pieces[i];
    if (p.piece.empty()) return corrupt_file(file, "", static_cast<int64_t>(p.offset), "piece " + std::to_string(i) + " is empty");
    if (!vocab.emplace(p.piece, static_cast<int32_t>(i)).second) {
      return corrupt_file(file, "", static_cast<int64_t>(p.offset),
                          "piece " + std::to_string(i) + " " + show(p.piece) + " duplicates piece " + std::to_string(vocab[p.piece]));
    }
  }
  auto piece_at = [&](int64_t id, const char* what) -> Result<std::string> {
    if (id < 0) return std::string();
    if (id >= static_cast<int64_t>(sp.pieces.size())) {
      return corrupt_file(file, "", -1, std::string("trainer_spec.") + what + " " + std::to_string(id) + " is beyond the " +
                                            std::to_string(sp.pieces.size()) + " pieces");
    }
    return sp.pieces[static_cast<size_t>(id)].piece;
  };
  QMODEL_ASSIGN_OR_RETURN(std::string unk, piece_at(sp.unk_id, "unk_id"));
  QMODEL_ASSIGN_OR_RETURN(std::string bos, piece_at(sp.bos_id, "bos_id"));
  QMODEL_ASSIGN_OR_RETURN(std::string eos, piece_at(sp.eos_id, "eos_id"));

  // Merges as transformers' SentencePieceExtractor makes them: every split of a piece into two
  // pieces, ordered by (left id, right id) within the piece, then all by piece score, descending
  // and stable.
  struct Cand {
    int32_t left, right;
    float score;
  };
  std::vector<Cand> cands;
  for (size_t i = 0; i < sp.pieces.size(); ++i) {
    const std::string& s = sp.pieces[i].piece;
    std::vector<Cand> local;
    for (size_t cut : inner_boundaries(s)) {
      auto l = vocab.find(s.substr(0, cut));
      auto r = vocab.find(s.substr(cut));
      if (l != vocab.end() && r != vocab.end()) local.push_back({l->second, r->second, sp.pieces[i].score});
    }
    std::sort(local.begin(), local.end(), [](const Cand& a, const Cand& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    cands.insert(cands.end(), local.begin(), local.end());
  }
  std::stable_sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.score > b.score; });

  bool add_bos = true, add_eos = false;  // LlamaTokenizer's defaults
  if (!tokenizer_config_json.empty()) {
    const size_t slash = file.rfind('/');
    const std::string cfg_file = (slash == std::string::npos ? std::string() : file.substr(0, slash + 1)) + "tokenizer_config.json";
    QMODEL_ASSIGN_OR_RETURN(json cfg, parse_object_file(tokenizer_config_json, cfg_file));
    QMODEL_RETURN_IF_ERROR(get_flag(cfg, "add_bos_token", cfg_file, &add_bos));
    QMODEL_RETURN_IF_ERROR(get_flag(cfg, "add_eos_token", cfg_file, &add_eos));
  }
  if (add_bos && bos.empty()) return corrupt_file(file, "", -1, "add_bos_token is set but the model has no bos piece");
  if (add_eos && eos.empty()) return corrupt_file(file, "", -1, "add_eos_token is set but the model has no eos piece");

  ojson out;
  out["version"] = "1.0";
  out["truncation"] = nullptr;
  out["padding"] = nullptr;
  out["added_tokens"] = ojson::array();
  for (size_t i = 0; i < sp.pieces.size(); ++i) {
    const SpPiece& p = sp.pieces[i];
    if (p.type != 2 && p.type != 3 && p.type != 4) continue;
    AddedTok t;
    t.id = static_cast<int32_t>(i);
    t.content = p.piece;
    t.normalized = false;
    t.special = p.type != 4;
    out["added_tokens"].push_back(added_token_json(t));
  }
  auto replace = [](const char* from, const char* to) {
    ojson r;
    r["type"] = "Replace";
    r["pattern"]["String"] = from;
    r["content"] = to;
    return r;
  };
  ojson normalizers = ojson::array();
  if (sp.add_dummy_prefix) {
    ojson prepend;
    prepend["type"] = "Prepend";
    prepend["prepend"] = "\xE2\x96\x81";
    normalizers.push_back(std::move(prepend));
  }
  normalizers.push_back(replace(" ", "\xE2\x96\x81"));
  out["normalizer"]["type"] = "Sequence";
  out["normalizer"]["normalizers"] = std::move(normalizers);
  out["pre_tokenizer"] = nullptr;
  out["post_processor"] = template_processing(add_bos ? bos : std::string(), static_cast<int32_t>(sp.bos_id),
                                              add_eos ? eos : std::string(), static_cast<int32_t>(sp.eos_id));
  ojson decoders = ojson::array();
  decoders.push_back(replace("\xE2\x96\x81", " "));
  if (sp.byte_fallback) decoders.push_back(ojson{{"type", "ByteFallback"}});
  decoders.push_back(ojson{{"type", "Fuse"}});
  if (sp.add_dummy_prefix) {
    ojson strip;
    strip["type"] = "Strip";
    strip["content"] = " ";
    strip["start"] = 1;
    strip["stop"] = 0;
    decoders.push_back(std::move(strip));
  }
  out["decoder"]["type"] = "Sequence";
  out["decoder"]["decoders"] = std::move(decoders);

  ojson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = unk.empty() ? ojson(nullptr) : ojson(unk);
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = true;
  model["byte_fallback"] = sp.byte_fallback;
  ojson v = ojson::object();
  for (size_t i = 0; i < sp.pieces.size(); ++i) v[sp.pieces[i].piece] = static_cast<int32_t>(i);
  model["vocab"] = std::move(v);
  ojson merges = ojson::array();
  for (const Cand& c : cands) {
    merges.push_back(ojson::array({sp.pieces[static_cast<size_t>(c.left)].piece, sp.pieces[static_cast<size_t>(c.right)].piece}));
  }
  model["merges"] = std::move(merges);
  out["model"] = std::move(model);
  return dump_json(out, file);
}

Result<SynthesizedTokenizer> synthesize_tokenizer_json(const std::string& dir, const std::string& config_json) {
  SynthesizedTokenizer out;
  auto read = [&](const char* name, std::string* text) -> Result<bool> {
    Result<std::string> r = read_text_file_capped(name_in(dir, name), kMaxTokenizerFileBytes);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) return false;
      return r.status();
    }
    *text = std::move(r).value();
    return true;
  };
  BpeTokenizerFiles files;
  files.dir = dir;
  files.config_json = config_json;
  QMODEL_ASSIGN_OR_RETURN(bool has_vocab, read("vocab.json", &files.vocab_json));
  QMODEL_ASSIGN_OR_RETURN(bool has_merges, read("merges.txt", &files.merges_txt));
  std::string tokenizer_config;
  QMODEL_ASSIGN_OR_RETURN(bool has_config, read("tokenizer_config.json", &tokenizer_config));
  (void)has_config;
  if (has_vocab && has_merges) {
    files.tokenizer_config_json = tokenizer_config;
    QMODEL_ASSIGN_OR_RETURN(bool has_map, read("special_tokens_map.json", &files.special_tokens_map_json));
    QMODEL_ASSIGN_OR_RETURN(bool has_added, read("added_tokens.json", &files.added_tokens_json));
    (void)has_map;
    (void)has_added;
    Result<std::string> synthesized = bpe_files_to_tokenizer_json(files);
    if (synthesized.ok()) {
      out.json = std::move(synthesized).value();
      out.from = "vocab.json + merges.txt";
      out.warnings.push_back("no tokenizer.json in " + dir + ": synthesized one from vocab.json + merges.txt");
      return out;
    }
    if (synthesized.status().code() != StatusCode::kUnsupported) return synthesized.status();
    out.warnings.push_back(dir + ": vocab.json + merges.txt: " + synthesized.status().message() +
                           "; the model will run from token ids only");
    return out;
  }
  if (has_vocab != has_merges) {
    out.warnings.push_back(dir + (has_vocab ? ": vocab.json without merges.txt" : ": merges.txt without vocab.json") +
                           " is not a tokenizer this converter can read");
  }
  std::string spm;
  QMODEL_ASSIGN_OR_RETURN(bool has_spm, read("tokenizer.model", &spm));
  if (has_spm) {
    Result<std::string> synthesized = sentencepiece_to_tokenizer_json(spm, name_in(dir, "tokenizer.model"), tokenizer_config);
    if (synthesized.ok()) {
      out.json = std::move(synthesized).value();
      out.from = "tokenizer.model";
      out.warnings.push_back("no tokenizer.json in " + dir + ": synthesized one from tokenizer.model (SentencePiece BPE)");
      return out;
    }
    if (synthesized.status().code() != StatusCode::kUnsupported) return synthesized.status();
    out.warnings.push_back("tokenizer.model (SentencePiece) alone is not supported yet: " + synthesized.status().message() +
                           "; the model runs from token ids");
    return out;
  }
  out.warnings.push_back("no tokenizer.json in " + dir + ": the model will run from token ids only");
  return out;
}

}  // namespace qmodel::converter
