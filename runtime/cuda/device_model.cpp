// Upload of a model's weights as stored: plan one arena (each distinct blob once, 256-byte
// aligned), check it fits, allocate it, then copy every blob with the file mapping registered
// (cudaHostRegister, read-only) so the copies DMA straight from the page cache: measured on an
// H100, 0.13 s to register 4 GiB and 54 GB/s after, against 6.9 GB/s for pageable copies.
#include "device_model.h"

#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>

namespace qmodel::runtime::cuda {
namespace {

constexpr uint64_t kArenaAlign = 256;

uint64_t align_up(uint64_t v) { return (v + kArenaAlign - 1) / kArenaAlign * kArenaAlign; }

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Binds host regions to arena offsets. Pass 1 (base == nullptr) only plans and returns nullptr;
// pass 2 returns device pointers. Regions are deduplicated by host pointer, so a tied lm_head
// shares the embedding's blobs.
class ArenaBinder {
 public:
  struct Region {
    const void* host;
    uint64_t bytes, offset;
  };

  const void* bind(const void* host, uint64_t bytes) {
    if (host == nullptr) return nullptr;
    auto it = offsets_.find(host);
    uint64_t offset;
    if (it != offsets_.end()) {
      offset = it->second;
    } else {
      offset = total_;
      offsets_.emplace(host, offset);
      regions_.push_back({host, bytes, offset});
      total_ = align_up(offset + bytes);
    }
    return base_ == nullptr ? nullptr : static_cast<const uint8_t*>(base_) + offset;
  }

  // A 1-D weight as fp32 (dequantized on the host if stored otherwise); nullptr when absent.
  const float* bind_vector(const kernels::WeightView& w) {
    if (w.data == nullptr) return nullptr;
    if (w.storage == StorageType::kF32) return static_cast<const float*>(bind(w.data, w.rows * w.cols * 4));
    auto it = widened_.find(w.data);
    if (it == widened_.end()) {
      std::vector<float> v(w.rows * w.cols);
      kernels::dequantize_ref(w, 0, v.size(), v.data());
      it = widened_.emplace(w.data, std::move(v)).first;
    }
    return static_cast<const float*>(bind(it->second.data(), it->second.size() * 4));
  }

  kernels::DeviceWeightView bind_matrix(const kernels::WeightView& w) {
    kernels::DeviceWeightView d;
    d.storage = w.storage;
    d.rows = static_cast<int64_t>(w.rows);
    d.cols = static_cast<int64_t>(w.cols);
    const uint64_t n = w.rows * w.cols;
    if (is_float_storage(w.storage)) {
      d.data = bind(w.data, n * float_storage_bytes(w.storage));
    } else if (w.storage == StorageType::kINT8) {
      d.data = bind(w.data, n);
      d.row_scale = static_cast<const float*>(bind(w.row_scale, w.rows * 4));
    } else {
      const uint64_t n_blocks = ceil_div(n, w.block_size);
      d.data = bind(w.data, packed_4bit_bytes(n));
      d.block_size = static_cast<int64_t>(w.block_size);
      std::memcpy(d.code_table, w.code_table, sizeof(d.code_table));
      if (w.absmax_codes == nullptr) {
        d.absmax = static_cast<const float*>(bind(w.absmax, n_blocks * 4));
      } else {
        d.absmax_codes = static_cast<const uint8_t*>(bind(w.absmax_codes, n_blocks));
        d.nested_absmax = static_cast<const float*>(bind(w.nested_absmax, ceil_div(n_blocks, w.nested_block_size) * 4));
        d.nested_code_table = static_cast<const float*>(bind(w.nested_code_table, kDynamicMapSize * 4));
        d.nested_block_size = static_cast<int64_t>(w.nested_block_size);
        d.nested_offset = w.nested_offset;
      }
    }
    return d;
  }

  void set_base(void* base) { base_ = base; }
  uint64_t total_bytes() const { return total_; }
  const std::vector<Region>& regions() const { return regions_; }

 private:
  void* base_ = nullptr;
  uint64_t total_ = 0;
  std::vector<Region> regions_;
  std::unordered_map<const void*, uint64_t> offsets_;
  std::unordered_map<const void*, std::vector<float>> widened_;
};

void bind_all(ArenaBinder& b, const ModelWeights& w, CudaDeviceModel& m) {
  m.embed = b.bind_matrix(w.embed);
  m.lm_head = b.bind_matrix(w.lm_head);
  m.final_norm = b.bind_vector(w.final_norm);
  m.final_norm_b = b.bind_vector(w.final_norm_b);
  m.pos_embed = b.bind_matrix(w.pos_embed);
  m.project_in = b.bind_matrix(w.project_in);
  m.project_out = b.bind_matrix(w.project_out);
  m.embed_norm = b.bind_vector(w.embed_norm);
  m.embed_norm_b = b.bind_vector(w.embed_norm_b);
  m.layers.resize(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& s = w.layers[l];
    DeviceLayerWeights& d = m.layers[l];
    d.wq = b.bind_matrix(s.wq);
    d.wk = b.bind_matrix(s.wk);
    d.wv = b.bind_matrix(s.wv);
    d.wqkv = b.bind_matrix(s.wqkv);
    d.bqkv = b.bind_vector(s.bqkv);
    d.attn_norm_b = b.bind_vector(s.attn_norm_b);
    d.mlp_norm_b = b.bind_vector(s.mlp_norm_b);
    d.wo = b.bind_matrix(s.wo);
    d.w_gate = b.bind_matrix(s.w_gate);
    d.w_up = b.bind_matrix(s.w_up);
    d.w_down = b.bind_matrix(s.w_down);
    d.attn_norm = b.bind_vector(s.attn_norm);
    d.mlp_norm = b.bind_vector(s.mlp_norm);
    d.bq = b.bind_vector(s.bq);
    d.bk = b.bind_vector(s.bk);
    d.bv = b.bind_vector(s.bv);
    d.bo = b.bind_vector(s.bo);
    d.b_gate = b.bind_vector(s.b_gate);
    d.b_up = b.bind_vector(s.b_up);
    d.b_down = b.bind_vector(s.b_down);
  }
}

Status copy_regions(const format::ModelFile& file, const ArenaBinder& binder, void* arena, bool* registered) {
  cudaStream_t stream = nullptr;
  QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const ByteSpan mapping = file.file_bytes();
  *registered = cudaHostRegister(const_cast<uint8_t*>(mapping.data()), mapping.size(), cudaHostRegisterReadOnly) ==
                cudaSuccess;
  if (!*registered) (void)cudaGetLastError();  // not fatal: pageable copies still work, slower
  Status status;
  for (const ArenaBinder::Region& r : binder.regions()) {
    status = QMODEL_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint8_t*>(arena) + r.offset, r.host, r.bytes,
                                               cudaMemcpyHostToDevice, stream));
    if (!status.ok()) break;
  }
  const Status synced = QMODEL_CUDA_CHECK(cudaStreamSynchronize(stream));
  if (status.ok()) status = synced;
  if (*registered) (void)cudaHostUnregister(const_cast<uint8_t*>(mapping.data()));
  (void)cudaStreamDestroy(stream);
  if (!status.ok()) return Status(status.code(), file.path() + ": uploading the weights: " + status.message());
  return status;
}

}  // namespace

Result<std::unique_ptr<CudaDeviceModel>> CudaDeviceModel::upload(const format::ModelFile& file,
                                                                 const ModelWeights& weights) {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<CudaDeviceModel> model(new CudaDeviceModel());
  ArenaBinder binder;
  bind_all(binder, weights, *model);  // pass 1: plan
  const uint64_t need = binder.total_bytes();
  size_t free_bytes = 0, total_bytes = 0;
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (need > free_bytes) {
    return Status(StatusCode::kOutOfMemory, file.path() + ": the weights need " + gib(need) +
                                                " of GPU memory but the device has " + gib(free_bytes) + " free (of " +
                                                gib(total_bytes) + "); short by " + gib(need - free_bytes));
  }
  if (cudaMalloc(&model->arena_, need) != cudaSuccess) {
    (void)cudaGetLastError();
    model->arena_ = nullptr;
    return Status(StatusCode::kOutOfMemory,
                  file.path() + ": cannot allocate " + gib(need) + " of GPU memory for the weights");
  }
  model->arena_bytes_ = need;
  binder.set_base(model->arena_);
  bind_all(binder, weights, *model);  // pass 2: device pointers
  QMODEL_RETURN_IF_ERROR(copy_regions(file, binder, model->arena_, &model->registered_));
  model->upload_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return model;
}

CudaDeviceModel::~CudaDeviceModel() {
  if (arena_ != nullptr) (void)cudaFree(arena_);
}

}  // namespace qmodel::runtime::cuda
