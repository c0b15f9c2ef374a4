// Semantic verification of a decoded header (see verify_semantics.h). All size arithmetic on values
// from the file is overflow-checked; every message names the file, the tensor and an offset.
#include "verify_semantics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <unordered_set>

#include "fb_convert.h"

namespace qmodel::format {
namespace {

constexpr size_t kMaxRank = 4;
constexpr size_t kCodeTableSize = 16;
constexpr uint64_t kMinAlignment = 64;

bool mul_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_mul_overflow(a, b, out); }
bool add_ok(uint64_t a, uint64_t b, uint64_t* out) { return !__builtin_add_overflow(a, b, out); }
// ceil(a / b) without the overflow of (a + b - 1) / b.
uint64_t safe_ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

const char* storage_name(StorageType s) {
  switch (s) {
    case StorageType::kF32: return "F32";
    case StorageType::kF16: return "F16";
    case StorageType::kBF16: return "BF16";
    case StorageType::kNF4: return "NF4";
    case StorageType::kFP4: return "FP4";
    case StorageType::kINT8: return "INT8";
  }
  return "?";
}

const char* role_name(BlobRole r) {
  switch (r) {
    case BlobRole::kData: return "data";
    case BlobRole::kAbsmax: return "absmax";
    case BlobRole::kAbsmaxCodes: return "absmax_codes";
    case BlobRole::kNestedAbsmax: return "nested_absmax";
    case BlobRole::kRowScale: return "row_scale";
  }
  return "?";
}

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// The blob roles, in order, that a tensor of this storage type carries (types.h).
std::vector<BlobRole> expected_roles(const TensorInfo& t) {
  if (is_float_storage(t.storage)) return {BlobRole::kData};
  if (t.storage == StorageType::kINT8) return {BlobRole::kData, BlobRole::kRowScale};
  if (t.quant.double_quant) return {BlobRole::kData, BlobRole::kAbsmaxCodes, BlobRole::kNestedAbsmax};
  return {BlobRole::kData, BlobRole::kAbsmax};
}

// Verifies one tensor's own rules; `where` is its table's offset for tensor-level messages.
class TensorChecker {
 public:
  TensorChecker(const FileGeometry& g, const ModelHeader& h, const TensorInfo& t, size_t index, int64_t where)
      : g_(g), h_(h), t_(t), index_(index), where_(where) {}

  Status run() {
    if (t_.name.empty()) return fail(where_, "tensor #" + std::to_string(index_) + " has an empty name");
    QMODEL_RETURN_IF_ERROR(check_enums());
    QMODEL_RETURN_IF_ERROR(check_shape());
    QMODEL_RETURN_IF_ERROR(check_quant_params());
    return check_blobs();
  }

 private:
  Status fail(int64_t offset, const std::string& what) const { return corrupt_file(g_.name, t_.name, offset, what); }

  Status check_enums() const {
    if (static_cast<uint8_t>(t_.source_dtype) > kMaxSourceDType) {
      return fail(where_, "source_dtype enum value " + std::to_string(static_cast<int>(t_.source_dtype)) + " out of range");
    }
    if (static_cast<uint8_t>(t_.storage) > kMaxStorageType) {
      return fail(where_, "storage enum value " + std::to_string(static_cast<int>(t_.storage)) + " out of range");
    }
    if (static_cast<uint8_t>(t_.layout) > kMaxLayout) {
      return fail(where_, "layout enum value " + std::to_string(static_cast<int>(t_.layout)) + " out of range");
    }
    if (static_cast<int>(t_.role) >= kTensorRoleCount) {
      return fail(where_, "role enum value " + std::to_string(static_cast<int>(t_.role)) + " out of range");
    }
    if (is_layer_role(t_.role)) {
      if (t_.layer < 0 || static_cast<uint32_t>(t_.layer) >= h_.config.n_layers) {
        return fail(where_, std::string("role ") + tensor_role_name(t_.role) + " has layer " +
                                std::to_string(t_.layer) + ", outside 0.." + std::to_string(h_.config.n_layers) +
                                " (num_hidden_layers)");
      }
    } else if (t_.layer != -1) {
      return fail(where_, std::string("role ") + tensor_role_name(t_.role) + " is not per block but has layer " +
                              std::to_string(t_.layer));
    }
    return Status();
  }

  Status check_shape() const {
    if (t_.shape.empty() || t_.shape.size() > kMaxRank) {
      return fail(where_, "rank " + std::to_string(t_.shape.size()) + " outside 1..4");
    }
    uint64_t n = 1;
    for (size_t i = 0; i < t_.shape.size(); ++i) {
      if (t_.shape[i] == 0) return fail(where_, "dim " + std::to_string(i) + " is zero in shape " + shape_string(t_.shape));
      if (!mul_ok(n, t_.shape[i], &n)) return fail(where_, "element count of shape " + shape_string(t_.shape) + " overflows");
    }
    if (t_.storage == StorageType::kINT8 && t_.shape.size() != 2) {
      return fail(where_, "INT8 storage needs rank 2 ([out, in]), shape is " + shape_string(t_.shape));
    }
    return Status();
  }

  Status check_quant_params() const {
    const QuantParams& q = t_.quant;
    const std::string storage = storage_name(t_.storage);
    if (!is_4bit(t_.storage)) {
      if (q.block_size != 0 || q.double_quant || !q.code_table.empty() || !q.nested_code_table.empty()) {
        return fail(where_, "4-bit quant params set on a " + storage + " tensor");
      }
      return Status();
    }
    if (!is_valid_4bit_block_size(q.block_size)) {
      return fail(where_, "block size " + std::to_string(q.block_size) + " invalid for " + storage +
                              " (a power of two in 32..4096)");
    }
    if (q.code_table.size() != kCodeTableSize) {
      return fail(where_, "code table has " + std::to_string(q.code_table.size()) + " entries, expected 16");
    }
    if (!all_finite(q.code_table)) return fail(where_, "code table holds a non-finite value");
    if (!q.double_quant) {
      if (q.nested_block_size != 0 || !q.nested_code_table.empty()) {
        return fail(where_, "nested quant params set without double_quant");
      }
      return Status();
    }
    if (q.nested_block_size != kNestedBlockSize) {
      return fail(where_, "nested block size " + std::to_string(q.nested_block_size) + " invalid (expected 256)");
    }
    if (q.nested_code_table.size() != kDynamicMapSize) {
      return fail(where_, "nested code table has " + std::to_string(q.nested_code_table.size()) +
                              " entries, expected 256");
    }
    if (!all_finite(q.nested_code_table) || !std::isfinite(q.nested_offset)) {
      return fail(where_, "nested code table or offset holds a non-finite value");
    }
    return Status();
  }

  Status check_blobs() const {
    const std::vector<BlobRole> roles = expected_roles(t_);
    if (t_.blobs.size() != roles.size()) {
      return fail(where_, std::string(storage_name(t_.storage)) + (t_.quant.double_quant ? " (double quant)" : "") +
                              " tensor has " + std::to_string(t_.blobs.size()) + " blobs, expected " +
                              std::to_string(roles.size()));
    }
    for (size_t i = 0; i < roles.size(); ++i) QMODEL_RETURN_IF_ERROR(check_blob(i, roles[i]));
    return Status();
  }

  Status check_blob(size_t i, BlobRole want) const {
    const BlobRef& b = t_.blobs[i];
    const int64_t at = static_cast<int64_t>(std::min<uint64_t>(b.offset, INT64_MAX));
    const std::string blob = "blob " + std::to_string(i);
    if (static_cast<uint8_t>(b.role) > kMaxBlobRole) {
      return fail(at, blob + " role enum value " + std::to_string(static_cast<int>(b.role)) + " out of range");
    }
    if (static_cast<uint8_t>(b.compression) > kMaxCompression) {
      return fail(at, blob + " compression enum value " + std::to_string(static_cast<int>(b.compression)) +
                          " out of range");
    }
    if (b.role != want) {
      return fail(at, blob + " has role " + role_name(b.role) + ", expected " + role_name(want) + " for " +
                          storage_name(t_.storage) + (t_.quant.double_quant ? " (double quant)" : ""));
    }
    uint64_t expected = 0;
    if (!expected_blob_bytes(t_, b.role, &expected)) return fail(at, blob + " byte size overflows");
    if (b.raw_size != expected) {
      return fail(at, blob + " (" + role_name(b.role) + ") raw size " + std::to_string(b.raw_size) +
                          " does not match " + std::to_string(expected) + " expected for " +
                          storage_name(t_.storage) + " shape " + shape_string(t_.shape) +
                          (is_4bit(t_.storage) ? " block size " + std::to_string(t_.quant.block_size) : ""));
    }
    if (b.compression == Compression::kNone && b.stored_size != b.raw_size) {
      return fail(at, blob + " is uncompressed but stored size " + std::to_string(b.stored_size) +
                          " != raw size " + std::to_string(b.raw_size));
    }
    if (b.stored_size == 0) return fail(at, blob + " has stored size 0");
    if (b.offset % h_.alignment != 0) {
      return fail(at, blob + " offset is misaligned (alignment " + std::to_string(h_.alignment) + ")");
    }
    if (b.offset < g_.header_end) {
      return fail(at, blob + " starts inside the preamble or header (data starts at " +
                          std::to_string(g_.header_end) + ")");
    }
    uint64_t end = 0;
    if (!add_ok(b.offset, b.stored_size, &end) || end > g_.file_bytes) {
      return fail(at, blob + " of " + std::to_string(b.stored_size) + " bytes runs past end of file (" +
                          std::to_string(g_.file_bytes) + " bytes)");
    }
    return Status();
  }

  const FileGeometry& g_;
  const ModelHeader& h_;
  const TensorInfo& t_;
  size_t index_;
  int64_t where_;
};

Status check_model_fields(const FileGeometry& g, const ModelHeader& h) {
  constexpr int64_t kHeaderStart = 32;
  if (h.format_version != g.preamble_version) {
    return corrupt_file(g.name, "", kHeaderStart, "header format_version " + std::to_string(h.format_version) +
                                                      " differs from the preamble's " +
                                                      std::to_string(g.preamble_version));
  }
  if (!is_pow2(h.alignment) || h.alignment < kMinAlignment) {
    return corrupt_file(g.name, "", kHeaderStart, "alignment " + std::to_string(h.alignment) +
                                                      " is not a power of two >= 64");
  }
  const QuantSettings& s = h.quant_settings;
  if (static_cast<uint8_t>(s.quant) > kMaxStorageType || static_cast<uint8_t>(s.compute_dtype) > kMaxComputeDType ||
      static_cast<uint8_t>(s.compression) > kMaxCompression) {
    return corrupt_file(g.name, "", kHeaderStart, "quant_settings enum value out of range");
  }
  return Status();
}

Status check_architecture(const FileGeometry& g, const ModelHeader& h) {
  constexpr int64_t kHeaderStart = 32;
  const ArchSpec& a = h.arch;
  if (static_cast<uint8_t>(a.norm) > 1 || static_cast<uint8_t>(a.residual) > 3 || static_cast<uint8_t>(a.qkv) > 3 ||
      static_cast<uint8_t>(a.positions) > 3 || static_cast<uint8_t>(a.mlp) > 1 || static_cast<uint8_t>(a.activation) > 3) {
    return corrupt_file(g.name, "", kHeaderStart, "architecture enum value out of range");
  }
  // Each (layer, role) is one tensor.
  std::unordered_set<uint64_t> seen;
  for (const TensorInfo& t : h.tensors) {
    if (t.role == TensorRole::kNone) continue;
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(t.layer)) << 8) | static_cast<uint8_t>(t.role);
    if (!seen.insert(key).second) {
      const int64_t at = t.blobs.empty() ? -1 : static_cast<int64_t>(t.blobs[0].offset);
      return corrupt_file(g.name, t.name, at, std::string("a second tensor with role ") + tensor_role_name(t.role) +
                                                  " in layer " + std::to_string(t.layer));
    }
  }
  return Status();
}

Status check_unique_names(const FileGeometry& g, const ModelHeader& h) {
  std::unordered_set<std::string> seen;
  seen.reserve(h.tensors.size());
  for (const TensorInfo& t : h.tensors) {
    if (!seen.insert(t.name).second) {
      const int64_t at = t.blobs.empty() ? -1 : static_cast<int64_t>(t.blobs[0].offset);
      return corrupt_file(g.name, t.name, at, "duplicate tensor name");
    }
  }
  return Status();
}

Status check_no_overlap(const FileGeometry& g, const ModelHeader& h) {
  struct Extent {
    uint64_t begin, end;
    const TensorInfo* tensor;
  };
  std::vector<Extent> extents;
  for (const TensorInfo& t : h.tensors) {
    for (const BlobRef& b : t.blobs) extents.push_back({b.offset, b.offset + b.stored_size, &t});  // checked above
  }
  std::sort(extents.begin(), extents.end(),
            [](const Extent& a, const Extent& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < extents.size(); ++i) {
    if (extents[i].begin < extents[i - 1].end) {
      return corrupt_file(g.name, extents[i].tensor->name, static_cast<int64_t>(extents[i].begin),
                          "blob overlaps a blob of tensor '" + extents[i - 1].tensor->name + "' (which ends at " +
                              std::to_string(extents[i - 1].end) + ")");
    }
  }
  return Status();
}

}  // namespace

bool expected_blob_bytes(const TensorInfo& t, BlobRole role, uint64_t* n_bytes) {
  uint64_t n = 1;
  for (uint64_t d : t.shape) {
    if (!mul_ok(n, d, &n)) return false;
  }
  const uint64_t bs = t.quant.block_size;
  switch (role) {
    case BlobRole::kData:
      if (is_float_storage(t.storage)) return mul_ok(n, float_storage_bytes(t.storage), n_bytes);
      if (t.storage == StorageType::kINT8) {
        *n_bytes = n;
        return true;
      }
      if (!is_4bit(t.storage)) return false;
      *n_bytes = n / 2 + n % 2;  // packed_4bit_bytes without the (n + 1) overflow
      return true;
    case BlobRole::kAbsmax:
      if (!is_4bit(t.storage) || bs == 0) return false;
      return mul_ok(safe_ceil_div(n, bs), sizeof(float), n_bytes);
    case BlobRole::kAbsmaxCodes:
      if (!is_4bit(t.storage) || bs == 0) return false;
      *n_bytes = safe_ceil_div(n, bs);
      return true;
    case BlobRole::kNestedAbsmax:
      if (!is_4bit(t.storage) || bs == 0) return false;
      return mul_ok(safe_ceil_div(safe_ceil_div(n, bs), kNestedBlockSize), sizeof(float), n_bytes);
    case BlobRole::kRowScale:
      if (t.storage != StorageType::kINT8 || t.shape.empty()) return false;
      return mul_ok(t.shape[0], sizeof(float), n_bytes);
  }
  return false;
}

Status verify_header_semantics(const FileGeometry& geometry, const ModelHeader& header,
                               const std::vector<uint64_t>& tensor_offsets) {
  QMODEL_RETURN_IF_ERROR(check_model_fields(geometry, header));
  for (size_t i = 0; i < header.tensors.size(); ++i) {
    const int64_t where = i < tensor_offsets.size() ? static_cast<int64_t>(tensor_offsets[i]) : -1;
    QMODEL_RETURN_IF_ERROR(TensorChecker(geometry, header, header.tensors[i], i, where).run());
  }
  QMODEL_RETURN_IF_ERROR(check_unique_names(geometry, header));
  QMODEL_RETURN_IF_ERROR(check_architecture(geometry, header));
  return check_no_overlap(geometry, header);
}

}  // namespace qmodel::format
