// SafetensorsFile: mapping plus the header rules of the reference reader (shared reference §6.3).
// Validation order: prefix, header bounds, UTF-8/JSON/duplicates, each entry's fields and size,
// then the layout of all entries (contiguous from 0, no trailing bytes), then dtype support, so a
// well-formed file of another dtype is kUnsupported and only a broken one is kCorruptFile.
#include "qmodel/converter/safetensors.h"

#include <algorithm>
#include <limits>
#include <new>
#include <string_view>

#include "read_only_mapping.h"
#include "strict_json.h"

namespace qmodel::converter {

namespace {

using nlohmann::json;

constexpr const char* kMetadataKey = "__metadata__";

struct DTypeInfo {
  const char* name;
  uint32_t bits;        // element size in bits
  bool supported;       // F32, F16, BF16
  SourceDType source;   // meaningful when supported
  bool raw;             // U8, I8: accepted as raw bytes with SafetensorsOptions::allow_u8_i8
  StDType st;           // meaningful when supported or raw
};

// Every dtype safetensors defines (as of the cited commit plus the later sub-byte and F8_E8M0
// additions); only the first three are converted, U8 and I8 read as raw bytes on request.
constexpr DTypeInfo kDTypes[] = {
    {"F32", 32, true, SourceDType::kF32, false, StDType::kF32},
    {"F16", 16, true, SourceDType::kF16, false, StDType::kF16},
    {"BF16", 16, true, SourceDType::kBF16, false, StDType::kBF16},
    {"BOOL", 8, false, SourceDType::kF32, false, StDType::kF32},
    {"U8", 8, false, SourceDType::kF32, true, StDType::kU8},
    {"I8", 8, false, SourceDType::kF32, true, StDType::kI8},
    {"F8_E5M2", 8, false, SourceDType::kF32, false, StDType::kF32},
    {"F8_E4M3", 8, false, SourceDType::kF32, false, StDType::kF32},
    {"F8_E8M0", 8, false, SourceDType::kF32, false, StDType::kF32},
    {"I16", 16, false, SourceDType::kF32, false, StDType::kF32},
    {"U16", 16, false, SourceDType::kF32, false, StDType::kF32},
    {"I32", 32, false, SourceDType::kF32, false, StDType::kF32},
    {"U32", 32, false, SourceDType::kF32, false, StDType::kF32},
    {"F64", 64, false, SourceDType::kF32, false, StDType::kF32},
    {"I64", 64, false, SourceDType::kF32, false, StDType::kF32},
    {"U64", 64, false, SourceDType::kF32, false, StDType::kF32},
    {"C64", 64, false, SourceDType::kF32, false, StDType::kF32},
    {"F4", 4, false, SourceDType::kF32, false, StDType::kF32},
    {"F6_E2M3", 6, false, SourceDType::kF32, false, StDType::kF32},
    {"F6_E3M2", 6, false, SourceDType::kF32, false, StDType::kF32},
};

const DTypeInfo* find_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

struct RawEntry {
  std::string name;
  const DTypeInfo* dtype = nullptr;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data buffer
};

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }

class HeaderParser {
 public:
  HeaderParser(const std::string& file, uint64_t data_offset) : file_(file), data_offset_(data_offset) {}

  // Absolute file offset of a buffer-relative position, or -1 when it does not fit in int64.
  int64_t absolute(uint64_t relative) const {
    uint64_t abs = 0;
    if (__builtin_add_overflow(data_offset_, relative, &abs) ||
        abs > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return -1;
    }
    return static_cast<int64_t>(abs);
  }

  Status parse_metadata(const json& value, std::map<std::string, std::string>* out) const {
    if (!value.is_object()) {
      return corrupt_file(file_, "", kHeaderStart,
                          std::string("'__metadata__' must be an object of strings, got ") + json_type_name(value));
    }
    for (auto it = value.begin(); it != value.end(); ++it) {
      if (!it.value().is_string()) {
        return corrupt_file(file_, "", kHeaderStart,
                            "'__metadata__' must map strings to strings; key '" + it.key() + "' holds " +
                                json_type_name(it.value()));
      }
      (*out)[it.key()] = it.value().get<std::string>();
    }
    return Status::ok_status();
  }

  Status parse_entry(const std::string& name, const json& value, RawEntry* out) const {
    out->name = name;
    if (!value.is_object()) {
      return bad(name, -1, std::string("header entry must be an object, got ") + json_type_name(value));
    }
    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end()) return bad(name, -1, "header entry has no 'dtype'");
    if (!dtype_it->is_string()) {
      return bad(name, -1, std::string("'dtype' must be a string, got ") + json_type_name(*dtype_it));
    }
    const std::string& dtype_name = dtype_it->get_ref<const std::string&>();
    out->dtype = find_dtype(dtype_name);
    if (!out->dtype) return bad(name, -1, "unknown dtype '" + dtype_name + "'");

    const auto shape_it = value.find("shape");
    if (shape_it == value.end()) return bad(name, -1, "header entry has no 'shape'");
    if (!shape_it->is_array()) {
      return bad(name, -1, std::string("'shape' must be an array of non-negative integers, got ") +
                               json_type_name(*shape_it));
    }
    for (const json& dim : *shape_it) {
      if (!dim.is_number_unsigned()) {
        return bad(name, -1, std::string("'shape' must be an array of non-negative integers, found ") +
                                 json_type_name(dim));
      }
      out->shape.push_back(dim.get<uint64_t>());
    }

    const auto offsets_it = value.find("data_offsets");
    if (offsets_it == value.end()) return bad(name, -1, "header entry has no 'data_offsets'");
    if (!offsets_it->is_array() || offsets_it->size() != 2 || !(*offsets_it)[0].is_number_unsigned() ||
        !(*offsets_it)[1].is_number_unsigned()) {
      return bad(name, -1, "'data_offsets' must be [begin, end] with non-negative integers");
    }
    out->begin = (*offsets_it)[0].get<uint64_t>();
    out->end = (*offsets_it)[1].get<uint64_t>();
    if (out->end < out->begin) {
      return bad(name, absolute(out->begin),
                 "data_offsets end " + std::to_string(out->end) + " < begin " + std::to_string(out->begin));
    }
    if (out->dtype->bits % 8 != 0) return Status::ok_status();  // sub-byte: rejected as unsupported later

    uint64_t n_elems = 1;
    for (uint64_t dim : out->shape) {
      if (!checked_mul(n_elems, dim, &n_elems)) {
        return bad(name, absolute(out->begin), "element count of shape " + shape_string(out->shape) +
                                                   " overflows 64 bits");
      }
    }
    uint64_t n_bytes = 0;
    if (!checked_mul(n_elems, out->dtype->bits / 8, &n_bytes)) {
      return bad(name, absolute(out->begin), "byte size of shape " + shape_string(out->shape) + " x " +
                                                 out->dtype->name + " overflows 64 bits");
    }
    if (out->end - out->begin != n_bytes) {
      return bad(name, absolute(out->begin),
                 "data_offsets span " + std::to_string(out->end - out->begin) + " bytes but shape " +
                     shape_string(out->shape) + " of " + out->dtype->name + " needs " + std::to_string(n_bytes));
    }
    return Status::ok_status();
  }

  // Sorted by offset, the entries must tile [0, buffer_size) exactly.
  Status check_layout(std::vector<RawEntry>* entries, uint64_t buffer_size) const {
    std::sort(entries->begin(), entries->end(), [](const RawEntry& a, const RawEntry& b) {
      if (a.begin != b.begin) return a.begin < b.begin;
      if (a.end != b.end) return a.end < b.end;
      return a.name < b.name;
    });
    uint64_t expected = 0;
    const RawEntry* previous = nullptr;
    for (const RawEntry& e : *entries) {
      if (e.begin > expected) {
        return bad(e.name, absolute(e.begin),
                   "hole of " + std::to_string(e.begin - expected) + " bytes before this tensor (data is covered up to " +
                       std::to_string(expected) + ")");
      }
      if (e.begin < expected) {
        return bad(e.name, absolute(e.begin),
                   "overlaps tensor '" + (previous ? previous->name : std::string()) + "', which ends at buffer offset " +
                       std::to_string(expected));
      }
      expected = e.end;
      previous = &e;
    }
    if (expected < buffer_size) {
      return corrupt_file(file_, "", absolute(expected),
                          std::to_string(buffer_size - expected) + " trailing bytes after the last tensor");
    }
    if (expected > buffer_size) {
      return corrupt_file(file_, previous ? previous->name : "", absolute(previous ? previous->begin : 0),
                          "tensor data ends at buffer offset " + std::to_string(expected) +
                              ", past the end of the file (buffer is " + std::to_string(buffer_size) + " bytes)");
    }
    return Status::ok_status();
  }

  Status reject_unsupported(const std::vector<RawEntry>& entries, bool allow_raw) const {
    for (const RawEntry& e : entries) {
      if (!e.dtype->supported && !(allow_raw && e.dtype->raw)) {
        return Status(StatusCode::kUnsupported,
                      error_location(file_, e.name, absolute(e.begin)) + ": dtype " + e.dtype->name +
                          " is not supported (F32, F16 and BF16 only)");
      }
    }
    return Status::ok_status();
  }

 private:
  static constexpr int64_t kHeaderStart = static_cast<int64_t>(kSafetensorsPrefixBytes);

  Status bad(const std::string& tensor, int64_t offset, const std::string& what) const {
    return corrupt_file(file_, tensor, offset, what);
  }

  const std::string& file_;
  uint64_t data_offset_;
};

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------

uint64_t TensorEntry::n_elems() const {
  uint64_t n = 1;
  for (uint64_t dim : shape) n *= dim;  // verified not to overflow at open
  return n;
}

size_t source_dtype_size(SourceDType dtype) { return dtype == SourceDType::kF32 ? 4 : 2; }

const char* safetensors_dtype_name(SourceDType dtype) {
  switch (dtype) {
    case SourceDType::kF32: return "F32";
    case SourceDType::kF16: return "F16";
    case SourceDType::kBF16: return "BF16";
  }
  return "?";
}

const char* st_dtype_name(StDType dtype) {
  switch (dtype) {
    case StDType::kF32: return "F32";
    case StDType::kF16: return "F16";
    case StDType::kBF16: return "BF16";
    case StDType::kU8: return "U8";
    case StDType::kI8: return "I8";
  }
  return "?";
}

size_t st_dtype_size(StDType dtype) {
  switch (dtype) {
    case StDType::kF32: return 4;
    case StDType::kF16: case StDType::kBF16: return 2;
    case StDType::kU8: case StDType::kI8: return 1;
  }
  return 1;
}

SafetensorsFile::~SafetensorsFile() = default;

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path,
                                                               const SafetensorsOptions& options) {
  try {
    QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlyMapping> mapping, ReadOnlyMapping::open(path));
    std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->file_bytes_ = mapping->bytes();
    file->mapping_ = std::move(mapping);
    file->path_ = path;
    file->entry_file_ = base_name(path);
    return parse(std::move(file), options);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, path + ": out of memory reading the safetensors header");
  }
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open_memory(const std::string& name, ByteSpan bytes,
                                                                      const SafetensorsOptions& options) {
  try {
    std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->file_bytes_ = bytes;
    file->path_ = name;
    file->entry_file_ = name;
    return parse(std::move(file), options);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, name + ": out of memory reading the safetensors header");
  }
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(std::unique_ptr<SafetensorsFile> f,
                                                                const SafetensorsOptions& options) {
  const std::string& file = f->path_;
  const ByteSpan bytes = f->file_bytes_;
  if (bytes.size() < kSafetensorsPrefixBytes) {
    return corrupt_file(file, "", 0, "file is " + std::to_string(bytes.size()) +
                                         " bytes, too short for the 8-byte header length");
  }
  const uint64_t header_bytes = read_le64(bytes.data());
  if (header_bytes > kMaxSafetensorsHeaderBytes) {
    return corrupt_file(file, "", 0, "header length " + std::to_string(header_bytes) + " exceeds the limit of " +
                                         std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  }
  if (header_bytes > bytes.size() - kSafetensorsPrefixBytes) {
    return corrupt_file(file, "", 0, "header length " + std::to_string(header_bytes) +
                                         " runs past the end of the file (" + std::to_string(bytes.size()) + " bytes)");
  }
  f->data_offset_ = kSafetensorsPrefixBytes + header_bytes;
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + kSafetensorsPrefixBytes),
                              static_cast<size_t>(header_bytes));
  QMODEL_ASSIGN_OR_RETURN(json header,
                          parse_strict_json(text, file, static_cast<int64_t>(kSafetensorsPrefixBytes)));
  if (!header.is_object()) {
    return corrupt_file(file, "", static_cast<int64_t>(kSafetensorsPrefixBytes),
                        std::string("header must be a JSON object, got ") + json_type_name(header));
  }

  HeaderParser parser(file, f->data_offset_);
  std::vector<RawEntry> entries;
  entries.reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      QMODEL_RETURN_IF_ERROR(parser.parse_metadata(it.value(), &f->metadata_));
      continue;
    }
    entries.emplace_back();
    QMODEL_RETURN_IF_ERROR(parser.parse_entry(it.key(), it.value(), &entries.back()));
  }
  const uint64_t buffer_bytes = bytes.size() - f->data_offset_;
  QMODEL_RETURN_IF_ERROR(parser.check_layout(&entries, buffer_bytes));
  QMODEL_RETURN_IF_ERROR(parser.reject_unsupported(entries, options.allow_u8_i8));

  f->tensors_.reserve(entries.size());
  const uint8_t* data = bytes.data() + f->data_offset_;
  for (RawEntry& e : entries) {
    TensorEntry t;
    t.name = std::move(e.name);
    t.dtype = e.dtype->source;
    t.st_dtype = e.dtype->st;
    t.shape = std::move(e.shape);
    t.bytes = ByteSpan(data + e.begin, static_cast<size_t>(e.end - e.begin));
    t.file = f->entry_file_;
    t.file_offset = f->data_offset_ + e.begin;
    f->tensors_.push_back(std::move(t));
  }
  return f;
}

void SafetensorsFile::release(const TensorEntry& entry) const {
  release_range(entry.file_offset, entry.bytes.size());
}

void SafetensorsFile::release_range(uint64_t offset, uint64_t n_bytes) const {
  if (mapping_) mapping_->drop(offset, n_bytes);
}

void SafetensorsFile::prefetch(const TensorEntry& entry) const {
  if (mapping_) mapping_->prefetch(entry.file_offset, entry.bytes.size());
}

}  // namespace qmodel::converter
