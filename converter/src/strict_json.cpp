// parse_strict_json: UTF-8 check, then nlohmann-json with a parser callback that tracks the keys
// of every open object (duplicates) and the depth.
#include "strict_json.h"

#include <new>
#include <set>
#include <vector>

namespace qmodel::converter {

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte (RFC 3629 table)
    if (c >= 0xc2 && c <= 0xdf) { len = 2; }
    else if (c == 0xe0) { len = 3; lo = 0xa0; }
    else if (c >= 0xe1 && c <= 0xec) { len = 3; }
    else if (c == 0xed) { len = 3; hi = 0x9f; }  // no UTF-16 surrogates
    else if (c >= 0xee && c <= 0xef) { len = 3; }
    else if (c == 0xf0) { len = 4; lo = 0x90; }
    else if (c >= 0xf1 && c <= 0xf3) { len = 4; }
    else if (c == 0xf4) { len = 4; hi = 0x8f; }  // nothing above U+10FFFF
    else { return i; }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
    }
    i += len;
  }
  return n;
}

Result<nlohmann::json> parse_strict_json(std::string_view text, const std::string& file, int64_t base_offset) {
  const size_t bad = find_invalid_utf8(text);
  if (bad != text.size()) {
    return corrupt_file(file, "", base_offset + static_cast<int64_t>(bad), "not valid UTF-8");
  }
  // The callback cannot stop the parser without throwing, so it records the first problem and
  // the result is discarded afterwards.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  bool too_deep = false;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (depth > kMaxJsonDepth) too_deep = true;
    switch (event) {
      case Event::object_start: open_objects.emplace_back(); break;
      case Event::object_end: if (!open_objects.empty()) open_objects.pop_back(); break;
      case Event::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get_ref<const std::string&>()).second &&
            duplicate.empty()) {
          duplicate = parsed.get_ref<const std::string&>();
        }
        break;
      default: break;
    }
    return true;
  };
  try {
    nlohmann::json value = nlohmann::json::parse(text.begin(), text.end(), callback);
    if (too_deep) {
      return corrupt_file(file, "", base_offset,
                          "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    if (!duplicate.empty()) return corrupt_file(file, "", base_offset, "duplicate key '" + duplicate + "'");
    return value;
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based (the byte where the parser stopped).
    const int64_t at = base_offset + (e.byte > 0 ? static_cast<int64_t>(e.byte) - 1 : 0);
    return corrupt_file(file, "", at, std::string("not valid JSON: ") + e.what());
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, file + ": out of memory parsing JSON");
  } catch (const std::exception& e) {
    return corrupt_file(file, "", base_offset, std::string("not valid JSON: ") + e.what());
  }
}

const char* json_type_name(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "object";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "integer";
    case nlohmann::json::value_t::number_float: return "number";
    case nlohmann::json::value_t::binary: return "binary";
    case nlohmann::json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

}  // namespace qmodel::converter
