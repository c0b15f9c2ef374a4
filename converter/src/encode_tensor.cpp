#include "encode_tensor.h"

#include <algorithm>
#include <cstring>

#include "qmodel/format/half.h"
#include "qmodel/kernels/ref.h"

namespace qmodel::converter {
namespace {

// Elements per parallel task: a multiple of every 4-bit block size (<= 4096) and small enough
// that a float chunk per worker (1 MiB) stays in L2.
constexpr uint64_t kChunkElems = 1u << 18;
static_assert(kChunkElems % kMaxBlockSize == 0, "chunks must hold whole blocks");

template <typename T>
ByteSpan as_bytes(const std::vector<T>& v, size_t n_bytes) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(v.data()), n_bytes);
}

const std::array<float, kDynamicMapSize>& dynamic_map() {
  static const std::array<float, kDynamicMapSize> map = kernels::dynamic_map_signed();
  return map;
}

}  // namespace

TensorEncoder::TensorEncoder(const ConvertOptions& options, ThreadPool& pool)
    : options_(options), pool_(pool), scratch_(pool.size()) {
  for (auto& s : scratch_) s.resize(kChunkElems);
}

Result<EncodedTensor> TensorEncoder::encode(const TensorEntry& source, StorageType storage) {
  EncodedTensor out;
  try {
    if (is_4bit(storage)) {
      encode_4bit(source, storage, out);
    } else if (storage == StorageType::kINT8) {
      if (source.shape.size() != 2) {
        return Status(StatusCode::kUnsupported, "tensor '" + source.name + "': INT8 needs a 2-D weight");
      }
      encode_int8(source, out);
    } else {
      encode_float(source, storage, out);
    }
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "tensor '" + source.name + "': out of memory while quantizing");
  }
  return out;
}

void TensorEncoder::encode_4bit(const TensorEntry& source, StorageType storage, EncodedTensor& out) {
  const uint64_t n = source.n_elems();
  const uint64_t bs = options_.block_size;
  const uint64_t n_blocks = ceil_div(n, bs);
  const uint64_t n_packed = packed_4bit_bytes(n);
  data_.resize(n_packed);
  scales_.resize(n_blocks * sizeof(float));
  float* absmax = reinterpret_cast<float*>(scales_.data());
  pool_.parallel_for(ceil_div(n, kChunkElems), [&](size_t task, unsigned worker) {
    const uint64_t first = task * kChunkElems;
    const uint64_t count = std::min(kChunkElems, n - first);
    float* buf = scratch_[worker].data();
    to_float(source, first, count, buf);
    kernels::quantize_4bit_ref(storage, buf, count, bs, data_.data() + first / 2, absmax + first / bs);
  });

  const float* table = storage == StorageType::kNF4 ? kNf4CodeTable : kFp4CodeTable;
  out.quant.block_size = static_cast<uint32_t>(bs);
  out.quant.code_table.assign(table, table + 16);
  out.parts.push_back({format::BlobRole::kData, as_bytes(data_, n_packed)});
  if (!options_.double_quant) {
    out.parts.push_back({format::BlobRole::kAbsmax, as_bytes(scales_, n_blocks * sizeof(float))});
    return;
  }
  const uint64_t n_nested = ceil_div(n_blocks, kNestedBlockSize);
  absmax_codes_.resize(n_blocks);
  nested_.resize(n_nested * sizeof(float));
  float offset = 0.0f;
  kernels::double_quantize_absmax_ref(absmax, n_blocks, dynamic_map().data(), absmax_codes_.data(),
                                      reinterpret_cast<float*>(nested_.data()), &offset);
  out.quant.double_quant = true;
  out.quant.nested_block_size = kNestedBlockSize;
  out.quant.nested_offset = offset;
  out.quant.nested_code_table.assign(dynamic_map().begin(), dynamic_map().end());
  out.parts.push_back({format::BlobRole::kAbsmaxCodes, as_bytes(absmax_codes_, n_blocks)});
  out.parts.push_back({format::BlobRole::kNestedAbsmax, as_bytes(nested_, n_nested * sizeof(float))});
}

void TensorEncoder::encode_int8(const TensorEntry& source, EncodedTensor& out) {
  const uint64_t rows = source.shape[0], cols = source.shape[1];
  data_.resize(rows * cols);
  scales_.resize(rows * sizeof(float));
  // Whole rows per task (SCB is per row); a row longer than the scratch chunk gets its own buffer.
  const uint64_t rows_per_task = std::max<uint64_t>(1, kChunkElems / std::max<uint64_t>(cols, 1));
  if (cols > kChunkElems) {
    for (auto& s : scratch_) s.resize(cols);
  }
  pool_.parallel_for(ceil_div(rows, rows_per_task), [&](size_t task, unsigned worker) {
    const uint64_t r0 = task * rows_per_task;
    const uint64_t nr = std::min(rows_per_task, rows - r0);
    float* buf = scratch_[worker].data();
    to_float(source, r0 * cols, nr * cols, buf);
    kernels::quantize_int8_rows_ref(buf, nr, cols, reinterpret_cast<int8_t*>(data_.data()) + r0 * cols,
                                    reinterpret_cast<float*>(scales_.data()) + r0);
  });
  out.parts.push_back({format::BlobRole::kData, as_bytes(data_, rows * cols)});
  out.parts.push_back({format::BlobRole::kRowScale, as_bytes(scales_, rows * sizeof(float))});
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
  data_.resize(n * elem);
  pool_.parallel_for(ceil_div(n, kChunkElems), [&](size_t task, unsigned worker) {
    const uint64_t first = task * kChunkElems;
    const uint64_t count = std::min(kChunkElems, n - first);
    float* buf = scratch_[worker].data();
    to_float(source, first, count, buf);
    uint8_t* dst = data_.data() + first * elem;
    if (storage == StorageType::kF32) {
      std::memcpy(dst, buf, count * 4);
      return;
    }
    uint16_t* dst16 = reinterpret_cast<uint16_t*>(dst);
    for (uint64_t i = 0; i < count; ++i) {
      dst16[i] = storage == StorageType::kBF16 ? float_to_bf16(buf[i]) : float_to_f16(buf[i]);
    }
  });
  out.parts.push_back({format::BlobRole::kData, as_bytes(data_, n * elem)});
}

}  // namespace qmodel::converter
