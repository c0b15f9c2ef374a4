// Looks config.json keys up (with aliases; null = absent) and converts them with range checks, so
// every error names the file and the key. Shared by the config and architecture readers.
#pragma once

#include <cfloat>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "qmodel/format/status.h"
#include "strict_json.h"

namespace qmodel::converter {

using nlohmann::json;

class KeyReader {
 public:
  KeyReader(const json& object, const std::string& file, std::string prefix = "")
      : object_(object), file_(file), prefix_(std::move(prefix)) {}

  // The first of `keys` present with a non-null value, or nullptr; `*key` gets its name.
  const json* find(std::initializer_list<const char*> keys, std::string* key) const {
    for (const char* k : keys) {
      const auto it = object_.find(k);
      if (it != object_.end() && !it->is_null()) {
        *key = k;
        return &*it;
      }
    }
    *key = *keys.begin();
    return nullptr;
  }

  Status missing(const std::string& key) const {
    return Status(StatusCode::kCorruptFile, file_ + ": missing required key '" + prefix_ + key + "'");
  }
  Status wrong(const std::string& key, const char* expected, const json& value) const {
    return Status(StatusCode::kCorruptFile, file_ + ": key '" + prefix_ + key + "' must be " + expected + ", got " +
                                                json_type_name(value));
  }
  Status invalid(const std::string& key, const std::string& what) const {
    return Status(StatusCode::kCorruptFile, file_ + ": key '" + prefix_ + key + "' " + what);
  }

  // Unsigned 32-bit. Leaves *out unchanged when absent and not required.
  Status get_u32(std::initializer_list<const char*> keys, bool required, uint32_t* out) const {
    std::string key;
    const json* v = find(keys, &key);
    if (!v) return required ? missing(key) : Status::ok_status();
    if (!v->is_number_unsigned()) return wrong(key, "a non-negative integer", *v);
    const uint64_t x = v->get<uint64_t>();
    if (x > std::numeric_limits<uint32_t>::max()) return invalid(key, "is out of range (" + std::to_string(x) + ")");
    *out = static_cast<uint32_t>(x);
    return Status::ok_status();
  }

  Status get_positive_u32(std::initializer_list<const char*> keys, bool required, uint32_t* out) const {
    QMODEL_RETURN_IF_ERROR(get_u32(keys, required, out));
    std::string key;
    if (find(keys, &key) && *out == 0) return invalid(key, "must be > 0");
    return Status::ok_status();
  }

  Status get_float(std::initializer_list<const char*> keys, float* out) const {
    std::string key;
    const json* v = find(keys, &key);
    if (!v) return Status::ok_status();
    if (!v->is_number()) return wrong(key, "a number", *v);
    const double x = v->get<double>();
    if (!std::isfinite(x) || std::fabs(x) > FLT_MAX) return invalid(key, "is not a finite float32");
    *out = static_cast<float>(x);
    return Status::ok_status();
  }

  Status get_bool(std::initializer_list<const char*> keys, bool* out) const {
    std::string key;
    const json* v = find(keys, &key);
    if (!v) return Status::ok_status();
    if (!v->is_boolean()) return wrong(key, "a boolean", *v);
    *out = v->get<bool>();
    return Status::ok_status();
  }

  Status get_string(std::initializer_list<const char*> keys, std::string* out) const {
    std::string key;
    const json* v = find(keys, &key);
    if (!v) return Status::ok_status();
    if (!v->is_string()) return wrong(key, "a string", *v);
    *out = v->get<std::string>();
    return Status::ok_status();
  }

  Status token_id(const std::string& key, const json& v, int32_t* out) const {
    if (!v.is_number_unsigned()) return wrong(key, "a non-negative integer token id", v);
    const uint64_t x = v.get<uint64_t>();
    if (x > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) return invalid(key, "is out of range");
    *out = static_cast<int32_t>(x);
    return Status::ok_status();
  }

  Status get_token_id(const char* key, int32_t* out) const {
    std::string found;
    const json* v = find({key}, &found);
    return v ? token_id(found, *v, out) : Status::ok_status();
  }

  // An id or a list of ids (eos_token_id); absent/null leaves *out empty.
  Status get_token_ids(const char* key, std::vector<int32_t>* out) const {
    std::string found;
    const json* v = find({key}, &found);
    if (!v) return Status::ok_status();
    out->clear();
    if (!v->is_array()) {
      out->emplace_back();
      return token_id(found, *v, &out->back());
    }
    for (const json& item : *v) {
      out->emplace_back();
      QMODEL_RETURN_IF_ERROR(token_id(found, item, &out->back()));
    }
    return Status::ok_status();
  }

  const json& object() const { return object_; }

 private:
  const json& object_;
  const std::string& file_;
  std::string prefix_;
};

}  // namespace qmodel::converter
