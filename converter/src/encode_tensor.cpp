#include "encode_tensor.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <cstring>

#include "qmodel/format/half.h"
#include "qmodel/kernels/cpu.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::converter {
namespace {

// Elements per parallel task: a multiple of every 4-bit block size (<= 4096) and small enough
// that a float chunk per worker (1 MiB) stays in L2.
constexpr uint64_t kChunkElems = 1u << 18;
// fp16's largest finite value is 65504; 65520 is the tie that rounds (to even) to infinity.
constexpr float kFp16RoundsToInf = 65520.0f;
static_assert(kChunkElems % kMaxBlockSize == 0, "chunks must hold whole blocks");

template <typename T>
ByteSpan as_bytes(const std::vector<T>& v, size_t n_bytes) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(v.data()), n_bytes);
}

const std::array<float, kDynamicMapSize>& dynamic_map() {
  static const std::array<float, kDynamicMapSize> map = kernels::dynamic_map_signed();
  return map;
}

// Index of the first element whose |value| is not below `limit` (NaN included), or n. The
// branch-free OR pass vectorises; the index search runs only when something is wrong.
uint64_t first_out_of_range(const float* v, uint64_t n, float limit) {
  uint32_t limit_bits;
  std::memcpy(&limit_bits, &limit, 4);
  uint32_t any = 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &v[i], 4);
    any |= (b & 0x7fffffffu) >= limit_bits ? 1u : 0u;
  }
  if (!any) return n;
  for (uint64_t i = 0; i < n; ++i) {
    if (!(std::fabs(v[i]) < limit)) return i;
  }
  return n;
}

// Keeps the lowest bad element index seen by any worker, so the error does not depend on timing.
void note_bad_element(std::atomic<uint64_t>& first_bad, uint64_t index) {
  uint64_t seen = first_bad.load();
  while (index < seen && !first_bad.compare_exchange_weak(seen, index)) {
  }
}

}  // namespace

Status TensorEncoder::bad_value_error(const TensorEntry& source, uint64_t index, const char* what) {
  float value = 0.0f;
  to_float(source, index, 1, &value);
  const int64_t offset = static_cast<int64_t>(source.file_offset + index * source_dtype_size(source.dtype));
  return Status(StatusCode::kUnsupported,
                error_location(source.file, source.name, offset) + ": element " + std::to_string(index) + " is " +
                    std::to_string(value) + ": " + what);
}

TensorEncoder::TensorEncoder(const ConvertOptions& options, ThreadPool& pool)
    : options_(options), pool_(pool), scratch_(pool.size()) {
  for (auto& s : scratch_) s.resize(kChunkElems);
}

Result<EncodedTensor> TensorEncoder::encode(const TensorEntry& source, StorageType storage) {
  current_ ^= 1u;
  EncodedTensor out;
  try {
    if (is_4bit(storage)) {
      QMODEL_RETURN_IF_ERROR(encode_4bit(source, storage, out));
    } else if (storage == StorageType::kINT8) {
      if (source.shape.size() != 2) {
        return Status(StatusCode::kUnsupported, "tensor '" + source.name + "': INT8 needs a 2-D weight");
      }
      QMODEL_RETURN_IF_ERROR(encode_int8(source, out));
    } else {
      encode_float(source, storage, out);
    }
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "tensor '" + source.name + "': out of memory while quantizing");
  }
  return out;
}

Status TensorEncoder::encode_4bit(const TensorEntry& source, StorageType storage, EncodedTensor& out) {
  const uint64_t n = source.n_elems();
  const uint64_t bs = options_.block_size;
  const uint64_t n_blocks = ceil_div(n, bs);
  const uint64_t n_packed = packed_4bit_bytes(n);
  buffers_[current_].data.resize(n_packed);
  buffers_[current_].scales.resize(n_blocks * sizeof(float));
  float* absmax = reinterpret_cast<float*>(buffers_[current_].scales.data());
  std::atomic<uint64_t> first_bad{n};
  pool_.parallel_for(ceil_div(n, kChunkElems), [&](size_t task, unsigned worker) {
    const uint64_t first = task * kChunkElems;
    const uint64_t count = std::min(kChunkElems, n - first);
    float* buf = scratch_[worker].data();
    to_float(source, first, count, buf);
    const uint64_t bad = first_out_of_range(buf, count, std::numeric_limits<float>::infinity());
    if (bad < count) note_bad_element(first_bad, first + bad);
    kernels::quantize_4bit(storage, buf, count, bs, buffers_[current_].data.data() + first / 2, absmax + first / bs);
  });

  if (first_bad.load() < n) {
    return bad_value_error(source, first_bad.load(), "a 4-bit block needs finite weights");
  }
  const float* table = storage == StorageType::kNF4 ? kNf4CodeTable : kFp4CodeTable;
  out.quant.block_size = static_cast<uint32_t>(bs);
  out.quant.code_table.assign(table, table + 16);
  out.parts.push_back({format::BlobRole::kData, as_bytes(buffers_[current_].data, n_packed)});
  if (!options_.double_quant) {
    out.parts.push_back({format::BlobRole::kAbsmax, as_bytes(buffers_[current_].scales, n_blocks * sizeof(float))});
    return Status();
  }
  const uint64_t n_nested = ceil_div(n_blocks, kNestedBlockSize);
  buffers_[current_].absmax_codes.resize(n_blocks);
  buffers_[current_].nested.resize(n_nested * sizeof(float));
  // The mean first (serial, cheap), then nested blocks in parallel: same bytes as
  // double_quantize_absmax_ref, which does the two steps in one call.
  const float offset = kernels::absmax_mean_ref(absmax, n_blocks);
  const uint64_t kNestedPerTask = 64;
  pool_.parallel_for(ceil_div(n_nested, kNestedPerTask), [&](size_t task, unsigned) {
    const uint64_t first = task * kNestedPerTask * kNestedBlockSize;
    const uint64_t count = std::min<uint64_t>(kNestedPerTask * kNestedBlockSize, n_blocks - first);
    kernels::quantize_nested_absmax_ref(absmax + first, count, dynamic_map().data(), offset,
                                        buffers_[current_].absmax_codes.data() + first,
                                        reinterpret_cast<float*>(buffers_[current_].nested.data()) + first / kNestedBlockSize);
  });
  out.quant.double_quant = true;
  out.quant.nested_block_size = kNestedBlockSize;
  out.quant.nested_offset = offset;
  out.quant.nested_code_table.assign(dynamic_map().begin(), dynamic_map().end());
  out.parts.push_back({format::BlobRole::kAbsmaxCodes, as_bytes(buffers_[current_].absmax_codes, n_blocks)});
  out.parts.push_back({format::BlobRole::kNestedAbsmax, as_bytes(buffers_[current_].nested, n_nested * sizeof(float))});
  return Status();
}

Status TensorEncoder::encode_int8(const TensorEntry& source, EncodedTensor& out) {
  const uint64_t rows = source.shape[0], cols = source.shape[1];
  buffers_[current_].data.resize(rows * cols);
  buffers_[current_].scales.resize(rows * sizeof(float));
  // Whole rows per task (SCB is per row); a row longer than the scratch chunk gets its own buffer.
  const uint64_t rows_per_task = std::max<uint64_t>(1, kChunkElems / std::max<uint64_t>(cols, 1));
  if (cols > kChunkElems) {
    for (auto& s : scratch_) s.resize(cols);
  }
  std::atomic<uint64_t> first_bad{rows * cols};
  pool_.parallel_for(ceil_div(rows, rows_per_task), [&](size_t task, unsigned worker) {
    const uint64_t r0 = task * rows_per_task;
    const uint64_t nr = std::min(rows_per_task, rows - r0);
    float* buf = scratch_[worker].data();
    to_float(source, r0 * cols, nr * cols, buf);
    const uint64_t bad = first_out_of_range(buf, nr * cols, kFp16RoundsToInf);
    if (bad < nr * cols) {
      note_bad_element(first_bad, r0 * cols + bad);
      return;  // the reference quantizer requires finite fp16 values
    }
    kernels::quantize_int8_rows(buf, nr, cols, reinterpret_cast<int8_t*>(buffers_[current_].data.data()) + r0 * cols,
                                    reinterpret_cast<float*>(buffers_[current_].scales.data()) + r0);
  });
  if (first_bad.load() < rows * cols) {
    return bad_value_error(source, first_bad.load(), "INT8 casts weights to fp16 first (as bitsandbytes), and this one is not finite there");
  }
  out.parts.push_back({format::BlobRole::kData, as_bytes(buffers_[current_].data, rows * cols)});
  out.parts.push_back({format::BlobRole::kRowScale, as_bytes(buffers_[current_].scales, rows * sizeof(float))});
  return Status();
}

void TensorEncoder::encode_float(const TensorEntry& source, StorageType storage, EncodedTensor& out) {
  const bool same_dtype = (storage == StorageType::kF32 && source.dtype == SourceDType::kF32) ||
                          (storage == StorageType::kF16 && source.dtype == SourceDType::kF16) ||
                          (storage == StorageType::kBF16 && source.dtype == SourceDType::kBF16);
  if (same_dtype) {  // zero copy: the blob is written straight from the source mapping
    out.parts.push_back({format::BlobRole::kData, source.bytes});
    return;
  }
  const uint64_t n = source.n_elems();
  const size_t elem = float_storage_bytes(storage);
  buffers_[current_].data.resize(n * elem);
  pool_.parallel_for(ceil_div(n, kChunkElems), [&](size_t task, unsigned worker) {
    const uint64_t first = task * kChunkElems;
    const uint64_t count = std::min(kChunkElems, n - first);
    float* buf = scratch_[worker].data();
    to_float(source, first, count, buf);
    uint8_t* dst = buffers_[current_].data.data() + first * elem;
    if (storage == StorageType::kF32) {
      std::memcpy(dst, buf, count * 4);
      return;
    }
    uint16_t* dst16 = reinterpret_cast<uint16_t*>(dst);
    for (uint64_t i = 0; i < count; ++i) {
      dst16[i] = storage == StorageType::kBF16 ? float_to_bf16(buf[i]) : float_to_f16(buf[i]);
    }
  });
  out.parts.push_back({format::BlobRole::kData, as_bytes(buffers_[current_].data, n * elem)});
}

}  // namespace qmodel::converter
