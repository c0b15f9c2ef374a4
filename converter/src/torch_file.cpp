// TorchFile: a torch.save'd state dict (zip or legacy format) mapped read-only and verified; tensor
// data is handed out zero-copy where the layout allows.
#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <new>

#include "qmodel/converter/torch_checkpoint.h"
#include "read_only_mapping.h"
#include "torch_pickle.h"

namespace qmodel::converter {
namespace {

int64_t off(uint64_t v) {
  return v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? -1 : static_cast<int64_t>(v);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool is_float_source(TorchDType d) { return d == TorchDType::kF32 || d == TorchDType::kF16 || d == TorchDType::kBF16; }
bool is_unsupported_float(TorchDType d) { return d == TorchDType::kF64 || d == TorchDType::kC64 || d == TorchDType::kC128; }

SourceDType to_source(TorchDType d) {
  return d == TorchDType::kF16 ? SourceDType::kF16 : d == TorchDType::kBF16 ? SourceDType::kBF16 : SourceDType::kF32;
}

// torch's legacy MAGIC_NUMBER 0x1950a86a20f9469cfc6c as pickled by LONG1 (little-endian).
constexpr uint8_t kLegacyMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocolVersion = 1001;

}  // namespace

const char* torch_dtype_name(TorchDType dtype) {
  switch (dtype) {
    case TorchDType::kF32: return "float32";
    case TorchDType::kF16: return "float16";
    case TorchDType::kBF16: return "bfloat16";
    case TorchDType::kF64: return "float64";
    case TorchDType::kI64: return "int64";
    case TorchDType::kI32: return "int32";
    case TorchDType::kI16: return "int16";
    case TorchDType::kI8: return "int8";
    case TorchDType::kU8: return "uint8";
    case TorchDType::kBool: return "bool";
    case TorchDType::kC64: return "complex64";
    case TorchDType::kC128: return "complex128";
  }
  return "?";
}

size_t torch_dtype_size(TorchDType dtype) {
  switch (dtype) {
    case TorchDType::kF32: case TorchDType::kI32: return 4;
    case TorchDType::kF16: case TorchDType::kBF16: case TorchDType::kI16: return 2;
    case TorchDType::kF64: case TorchDType::kI64: case TorchDType::kC64: return 8;
    case TorchDType::kC128: return 16;
    case TorchDType::kI8: case TorchDType::kU8: case TorchDType::kBool: return 1;
  }
  return 1;
}

bool looks_like_torch_file(ByteSpan b) {
  if (b.size() >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) return true;
  return b.size() >= 2 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5;
}

TorchFile::~TorchFile() = default;

Result<std::unique_ptr<TorchFile>> TorchFile::open(const std::string& path) {
  try {
    QMODEL_ASSIGN_OR_RETURN(std::unique_ptr<ReadOnlyMapping> mapping, ReadOnlyMapping::open(path));
    std::unique_ptr<TorchFile> file(new TorchFile());
    file->file_bytes_ = mapping->bytes();
    file->mapping_ = std::move(mapping);
    file->path_ = path;
    file->entry_file_ = base_name(path);
    return parse(std::move(file));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, path + ": out of memory reading the torch checkpoint");
  }
}

Result<std::unique_ptr<TorchFile>> TorchFile::open_memory(const std::string& name, ByteSpan bytes) {
  try {
    std::unique_ptr<TorchFile> file(new TorchFile());
    file->file_bytes_ = bytes;
    file->path_ = name;
    file->entry_file_ = name;
    return parse(std::move(file));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, name + ": out of memory reading the torch checkpoint");
  }
}

Result<std::unique_ptr<TorchFile>> TorchFile::parse(std::unique_ptr<TorchFile> f) {
  const ByteSpan b = f->file_bytes_;
  try {
    if (b.size() >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4) {
      QMODEL_RETURN_IF_ERROR(f->parse_zip());
    } else if (b.size() >= 2 && b[0] == 0x80) {
      f->legacy_ = true;
      QMODEL_RETURN_IF_ERROR(f->parse_legacy());
    } else {
      return corrupt_file(f->path_, "", 0,
                          "not a torch checkpoint (neither a zip archive nor a legacy pickle; a tar-format "
                          "checkpoint from torch < 0.4 is not supported)");
    }
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, f->path_ + ": out of memory reading the torch checkpoint");
  }
  return f;
}

Status TorchFile::parse_zip() {
  QMODEL_ASSIGN_OR_RETURN(std::vector<ZipEntry> entries, read_zip_directory(path_, file_bytes_));
  if (entries.empty()) return corrupt_file(path_, "", -1, "empty zip archive");
  const size_t slash = entries.front().name.find('/');
  if (slash == std::string::npos || slash == 0) {
    return corrupt_file(path_, "", off(entries.front().header_offset),
                        "zip entry '" + entries.front().name + "' is not inside an archive folder (not a torch checkpoint)");
  }
  const std::string prefix = entries.front().name.substr(0, slash + 1);
  std::map<std::string, const ZipEntry*> by_name;
  for (const ZipEntry& e : entries) by_name[e.name] = &e;
  // A usable entry: present, stored, not encrypted.
  auto stored = [&](const std::string& name, const ZipEntry** out) -> Status {
    const auto it = by_name.find(prefix + name);
    if (it == by_name.end()) return corrupt_file(path_, "", -1, "zip archive has no '" + prefix + name + "' (not a torch checkpoint?)");
    const ZipEntry& e = *it->second;
    if (e.flags & 1) {
      return Status(StatusCode::kUnsupported, error_location(path_, "", off(e.header_offset)) + ": zip entry '" + e.name +
                                                  "' is encrypted; refused");
    }
    if (e.method != 0) {
      return Status(StatusCode::kUnsupported, error_location(path_, "", off(e.header_offset)) + ": zip entry '" + e.name +
                                                  "' is compressed (method " + std::to_string(e.method) +
                                                  "); torch writes entries STORED and only those are read in place");
    }
    *out = &e;
    return Status::ok_status();
  };
  if (by_name.count(prefix + "byteorder")) {
    const ZipEntry* order = nullptr;
    QMODEL_RETURN_IF_ERROR(stored("byteorder", &order));
    const std::string text(reinterpret_cast<const char*>(file_bytes_.data() + order->data_offset),
                           static_cast<size_t>(std::min<uint64_t>(order->size, 16)));
    if (text != "little") {
      return Status(StatusCode::kUnsupported, error_location(path_, "", off(order->data_offset)) +
                                                  ": byteorder is '" + text + "' (only little-endian checkpoints)");
    }
  }
  const ZipEntry* pkl = nullptr;
  QMODEL_RETURN_IF_ERROR(stored("data.pkl", &pkl));
  QMODEL_ASSIGN_OR_RETURN(
      PickledStateDict dict,
      unpickle_state_dict(path_, ByteSpan(file_bytes_.data() + pkl->data_offset, static_cast<size_t>(pkl->size)),
                          pkl->data_offset, PickleFlavor::kZip));
  std::vector<ByteSpan> storage_bytes;
  std::vector<uint64_t> storage_offsets;
  for (const PickledStorage& s : dict.storages) {
    const ZipEntry* e = nullptr;
    QMODEL_RETURN_IF_ERROR(stored("data/" + s.key, &e));
    const uint64_t n_bytes = s.numel * torch_dtype_size(s.dtype);  // overflow checked by the unpickler
    if (e->size != n_bytes) {
      return corrupt_file(path_, "", off(e->data_offset),
                          "storage '" + s.key + "' holds " + std::to_string(s.numel) + " " + torch_dtype_name(s.dtype) +
                              " elements (" + std::to_string(n_bytes) + " bytes) but zip entry '" + e->name + "' has " +
                              std::to_string(e->size) + " bytes");
    }
    storage_bytes.emplace_back(file_bytes_.data() + e->data_offset, static_cast<size_t>(e->size));
    storage_offsets.push_back(e->data_offset);
  }
  return build_entries(dict, storage_bytes, storage_offsets);
}

Status TorchFile::parse_legacy() {
  using pickle::Kind;
  const ByteSpan b = file_bytes_;
  uint64_t pos = 0;
  // Runs one plain pickle at `pos`; returns its root object via `vm`.
  auto plain = [&](std::unique_ptr<pickle::Machine>* vm, uint32_t* root) -> Status {
    vm->reset(new pickle::Machine(path_, ByteSpan(b.data() + pos, b.size() - static_cast<size_t>(pos)), pos,
                                  pickle::Mode::kPlain));
    uint64_t used = 0;
    QMODEL_ASSIGN_OR_RETURN(*root, (*vm)->run(&used));
    pos += used;
    return Status::ok_status();
  };
  std::unique_ptr<pickle::Machine> vm;
  uint32_t root = 0;
  QMODEL_RETURN_IF_ERROR(plain(&vm, &root));
  const pickle::Obj& magic = vm->obj(root);
  if (magic.kind != Kind::kBigInt || magic.s != std::string(reinterpret_cast<const char*>(kLegacyMagic), sizeof(kLegacyMagic))) {
    return corrupt_file(path_, "", 0, "not a legacy torch checkpoint (magic number missing)");
  }
  const uint64_t protocol_at = pos;
  QMODEL_RETURN_IF_ERROR(plain(&vm, &root));
  if (vm->obj(root).kind != Kind::kInt || vm->obj(root).i != kLegacyProtocolVersion) {
    return corrupt_file(path_, "", off(protocol_at), "legacy torch checkpoint protocol version is not 1001");
  }
  const uint64_t sys_info_at = pos;
  QMODEL_RETURN_IF_ERROR(plain(&vm, &root));
  const pickle::Obj& sys_info = vm->obj(root);
  if (sys_info.kind != Kind::kDict) return corrupt_file(path_, "", off(sys_info_at), "legacy sys_info is not a dict");
  for (size_t k = 0; k + 1 < sys_info.items.size(); k += 2) {
    const pickle::Obj& key = vm->obj(sys_info.items[k]);
    const pickle::Obj& value = vm->obj(sys_info.items[k + 1]);
    if (key.kind == Kind::kStr && key.s == "little_endian" && !(value.kind == Kind::kBool && value.i == 1)) {
      return Status(StatusCode::kUnsupported,
                    error_location(path_, "", off(sys_info_at)) + ": big-endian checkpoint (only little-endian)");
    }
  }
  uint64_t used = 0;
  QMODEL_ASSIGN_OR_RETURN(PickledStateDict dict,
                          unpickle_state_dict(path_, ByteSpan(b.data() + pos, b.size() - static_cast<size_t>(pos)), pos,
                                              PickleFlavor::kLegacy, &used));
  pos += used;
  const uint64_t keys_at = pos;
  QMODEL_RETURN_IF_ERROR(plain(&vm, &root));
  const pickle::Obj& keys = vm->obj(root);
  if (keys.kind != Kind::kList) return corrupt_file(path_, "", off(keys_at), "legacy storage key list is not a list");
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < dict.storages.size(); ++i) index[dict.storages[i].key] = i;
  std::vector<ByteSpan> storage_bytes(dict.storages.size());
  std::vector<uint64_t> storage_offsets(dict.storages.size());
  std::vector<bool> seen(dict.storages.size(), false);
  for (uint32_t k : keys.items) {
    const pickle::Obj& key = vm->obj(k);
    if (key.kind != Kind::kStr) return corrupt_file(path_, "", off(keys_at), "legacy storage key is not a string");
    const auto it = index.find(key.s);
    if (it == index.end()) {
      return corrupt_file(path_, "", off(pos), "storage key '" + key.s + "' is not referenced by the state dict");
    }
    if (seen[it->second]) return corrupt_file(path_, "", off(pos), "storage key '" + key.s + "' listed twice");
    seen[it->second] = true;
    const PickledStorage& s = dict.storages[it->second];
    if (b.size() - pos < 8) return corrupt_file(path_, "", off(pos), "truncated before storage '" + s.key + "'");
    uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = (count << 8) | b[static_cast<size_t>(pos) + static_cast<size_t>(i)];
    if (count != s.numel) {
      return corrupt_file(path_, "", off(pos), "storage '" + s.key + "' holds " + std::to_string(count) +
                                                   " elements but the pickle says " + std::to_string(s.numel));
    }
    pos += 8;
    const uint64_t n_bytes = s.numel * torch_dtype_size(s.dtype);  // overflow checked by the unpickler
    if (b.size() - pos < n_bytes) {
      return corrupt_file(path_, "", off(pos), "storage '" + s.key + "' (" + std::to_string(n_bytes) +
                                                   " bytes) runs past the end of the file");
    }
    storage_bytes[it->second] = ByteSpan(b.data() + pos, static_cast<size_t>(n_bytes));
    storage_offsets[it->second] = pos;
    pos += n_bytes;
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) return corrupt_file(path_, "", off(keys_at), "storage '" + dict.storages[i].key + "' has no data");
  }
  if (pos != b.size()) {
    return corrupt_file(path_, "", off(pos), std::to_string(b.size() - pos) + " trailing bytes after the last storage");
  }
  return build_entries(dict, storage_bytes, storage_offsets);
}

Status TorchFile::build_entries(const PickledStateDict& dict, const std::vector<ByteSpan>& storage_bytes,
                                const std::vector<uint64_t>& storage_offsets) {
  // Copies of non-contiguous views may not exceed the file's own size (plus slack): a hostile
  // stride-0 view cannot make us allocate more than the input justifies.
  uint64_t copy_budget = file_bytes_.size() + (1u << 20);
  for (const PickledTensor& t : dict.tensors) {
    const PickledStorage& s = dict.storages[t.storage];
    const int64_t at = off(t.pickle_offset);
    const uint64_t elem = torch_dtype_size(s.dtype);
    uint64_t n = 1;
    for (uint64_t dim : t.shape) {
      if (__builtin_mul_overflow(n, dim, &n)) {
        return corrupt_file(path_, t.name, at, "element count of shape " + shape_string(t.shape) + " overflows 64 bits");
      }
    }
    uint64_t n_bytes = 0;
    if (__builtin_mul_overflow(n, elem, &n_bytes)) {
      return corrupt_file(path_, t.name, at, "byte size of shape " + shape_string(t.shape) + " overflows 64 bits");
    }
    // Highest element index touched: offset + sum((size - 1) * stride).
    uint64_t last = t.storage_offset;
    bool contiguous = true;
    uint64_t expected_stride = 1;
    for (size_t i = t.shape.size(); i-- > 0;) {
      if (t.shape[i] == 0) break;
      uint64_t span = 0;
      if (__builtin_mul_overflow(t.shape[i] - 1, t.stride[i], &span) || __builtin_add_overflow(last, span, &last)) {
        return corrupt_file(path_, t.name, at, "size " + shape_string(t.shape) + " with stride " + shape_string(t.stride) +
                                                   " overflows 64 bits");
      }
      if (t.shape[i] != 1 && t.stride[i] != expected_stride) contiguous = false;
      expected_stride *= t.shape[i];  // <= n, which did not overflow
    }
    const bool empty = n == 0;
    if (empty ? t.storage_offset > s.numel : last >= s.numel) {
      return corrupt_file(path_, t.name, off(storage_offsets[t.storage]),
                          "storage offset " + std::to_string(t.storage_offset) + ", size " + shape_string(t.shape) +
                              " and stride " + shape_string(t.stride) + " reach element " + std::to_string(last) +
                              " but storage '" + s.key + "' has " + std::to_string(s.numel) + " elements");
    }
    if (is_unsupported_float(s.dtype)) {
      return Status(StatusCode::kUnsupported, error_location(path_, t.name, off(storage_offsets[t.storage])) + ": dtype " +
                                                  torch_dtype_name(s.dtype) + " is not supported (float32, float16 and bfloat16 only)");
    }
    if (!is_float_source(s.dtype)) {
      skipped_.push_back({t.name, s.dtype, t.shape});
      continue;
    }
    TensorEntry e;
    e.name = t.name;
    e.dtype = to_source(s.dtype);
    e.shape = t.shape;
    e.file = entry_file_;
    const uint8_t* base = storage_bytes[t.storage].data();
    e.file_offset = storage_offsets[t.storage] + t.storage_offset * elem;  // inside the storage: no overflow
    if (empty) {
      e.bytes = ByteSpan(base, 0);
    } else if (contiguous) {
      e.bytes = ByteSpan(base + t.storage_offset * elem, static_cast<size_t>(n_bytes));
    } else {
      if (n_bytes > copy_budget) {
        return corrupt_file(path_, t.name, at, "non-contiguous view of " + std::to_string(n_bytes) +
                                                   " bytes exceeds what the file can justify; refused");
      }
      copy_budget -= n_bytes;
      owned_.emplace_back(static_cast<size_t>(n_bytes));
      uint8_t* out = owned_.back().data();
      const size_t rank = t.shape.size();
      std::vector<uint64_t> index(rank, 0);
      uint64_t src = t.storage_offset;
      for (uint64_t k = 0; k < n; ++k) {
        std::memcpy(out + k * elem, base + src * elem, static_cast<size_t>(elem));  // src <= last < numel
        for (size_t d = rank; d-- > 0;) {
          if (++index[d] < t.shape[d]) {
            src += t.stride[d];
            break;
          }
          index[d] = 0;
          src -= (t.shape[d] - 1) * t.stride[d];
        }
      }
      e.bytes = ByteSpan(out, static_cast<size_t>(n_bytes));
    }
    tensors_.push_back(std::move(e));
  }
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorEntry& a, const TensorEntry& b) {
    return a.file_offset != b.file_offset ? a.file_offset < b.file_offset : a.name < b.name;
  });
  return Status::ok_status();
}

void TorchFile::release(const TensorEntry& entry) const {
  if (mapping_) mapping_->drop(entry.file_offset, entry.bytes.size());
}

void TorchFile::prefetch(const TensorEntry& entry) const {
  if (mapping_) mapping_->prefetch(entry.file_offset, entry.bytes.size());
}

}  // namespace qmodel::converter
