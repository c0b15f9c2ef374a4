// CudaForward: buffers, the layer sequence, the decode graph. See cuda_forward.h.
#include "cuda/cuda_forward.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/ops.h"
#include "rope.h"

namespace qmodel::runtime::cuda {
namespace {

constexpr uint64_t kAlign = 256;
constexpr size_t kLogitRows = static_cast<size_t>(kernels::kMaxGemvRows);  // lm_head rows per GEMV

std::string gib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// Carves one allocation into aligned sub-buffers: pass 1 with base == nullptr measures.
class Carver {
 public:
  explicit Carver(uint8_t* base) : base_(base) {}
  template <typename T = void>
  T* take(uint64_t bytes) {
    const uint64_t offset = used_;
    used_ += (bytes + kAlign - 1) / kAlign * kAlign;
    return base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + offset);
  }
  uint64_t used() const { return used_; }

 private:
  uint8_t* base_;
  uint64_t used_ = 0;
};

}  // namespace

Result<std::unique_ptr<CudaForward>> CudaForward::create(const format::ModelConfig& config,
                                                         const format::ArchSpec& arch,
                                                         const CudaDeviceModel& weights, ActType act,
                                                         size_t max_context, size_t max_chunk) {
  if (max_context == 0 || max_chunk == 0) {
    return Status(StatusCode::kInvalidArgument, "max context and prefill chunk must be > 0");
  }
  if (max_context > INT32_MAX) return Status(StatusCode::kInvalidArgument, "max context exceeds int32");
  std::unique_ptr<CudaForward> f(new CudaForward(config, arch, weights, act));
  QMODEL_RETURN_IF_ERROR(f->allocate(max_context, std::min(max_chunk, max_context)));
  return f;
}

Status CudaForward::allocate(size_t max_context, size_t max_chunk) {
  max_context_ = max_context;
  max_chunk_ = max_chunk;
  const format::ModelConfig& c = config_;
  q_dim_ = size_t{c.n_heads} * c.head_dim;
  kv_dim_ = size_t{c.n_kv_heads} * c.head_dim;
  shape_.n_heads = static_cast<int32_t>(c.n_heads);
  shape_.n_kv_heads = static_cast<int32_t>(c.n_kv_heads);
  shape_.head_dim = static_cast<int32_t>(c.head_dim);
  shape_.max_context = static_cast<int32_t>(max_context);
  shape_.sliding_window = static_cast<int32_t>(c.sliding_window);
  shape_.rotary_dim = static_cast<int32_t>(arch_.rotary_dim);
  shape_.scale = arch_.attn_scale;
  shape_.alibi_scaled = arch_.alibi_scaled ? 1 : 0;
  std::vector<float> inv_freq, slopes;
  if (arch_.positions == format::PositionKind::kRope) {
    QMODEL_ASSIGN_OR_RETURN(inv_freq, rope_inv_freq(c, arch_.rotary_dim));
  }
  if (arch_.positions == format::PositionKind::kAlibi) {
    slopes.resize(c.n_heads);
    format::alibi_slopes(c.n_heads, slopes.data());
  }
  if (arch_.positions == format::PositionKind::kLearned &&
      max_context > static_cast<uint64_t>(weights_.pos_embed.rows) - arch_.learned_offset) {
    return Status(StatusCode::kInvalidArgument, "max context " + std::to_string(max_context) +
                                                    " exceeds the model's learned positions (" +
                                                    std::to_string(weights_.pos_embed.rows - arch_.learned_offset) + ")");
  }
  const bool fused_qkv = arch_.qkv != format::QkvLayout::kSeparate;
  const bool parallel = arch_.residual == format::ResidualLayout::kParallelSharedNorm ||
                        arch_.residual == format::ResidualLayout::kParallelTwoNorms;
  const uint64_t e = arch_.embed_dim;

  const uint64_t ab = static_cast<uint64_t>(act_bytes(act_)), h = c.hidden_size, inter = c.intermediate_size;
  const uint64_t vocab = c.vocab_size, chunk = max_chunk;
  kv_bytes_ = 2 * uint64_t{c.n_layers} * max_context * kv_dim_ * ab;
  attention_workspace_floats_ = attention_decode_workspace_floats(shape_);
  sample_workspace_bytes_ = sample_workspace_bytes(static_cast<int64_t>(vocab));
  if (chunk > kLogitRows) {
    for (const DeviceLayerWeights& l : weights_.layers) {
      for (const kernels::DeviceWeightView* w : {&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
        if (w->data == nullptr) continue;
        gemm_scratch_bytes_ = std::max<uint64_t>(gemm_scratch_bytes_, kernels::gemm_scratch_bytes(*w, act_));
      }
    }
    if (weights_.project_in.data != nullptr) {
      gemm_scratch_bytes_ = std::max<uint64_t>(gemm_scratch_bytes_, kernels::gemm_scratch_bytes(weights_.project_in, act_));
    }
  }
  auto carve = [&](Carver& cv) {
    x_ = cv.take<float>(chunk * h * 4);
    xn_ = cv.take(chunk * h * ab);
    q_ = cv.take(chunk * q_dim_ * ab);
    k_ = cv.take(chunk * kv_dim_ * ab);
    v_ = cv.take(chunk * kv_dim_ * ab);
    att_ = cv.take(chunk * q_dim_ * ab);
    delta_ = cv.take(chunk * h * ab);
    xn2_ = arch_.residual == format::ResidualLayout::kParallelTwoNorms ? cv.take(chunk * h * ab) : nullptr;
    delta2_ = parallel ? cv.take(chunk * h * ab) : nullptr;
    qkv_ = fused_qkv ? cv.take(chunk * (q_dim_ + 2 * kv_dim_) * ab) : nullptr;
    emb_ = arch_.project_in_out ? cv.take(chunk * e * ab) : nullptr;
    alibi_slopes_ = slopes.empty() ? nullptr : cv.take<float>(slopes.size() * 4);
    gate_ = cv.take(chunk * inter * ab);
    up_ = cv.take(chunk * inter * ab);
    logits_act_ = cv.take(kLogitRows * vocab * ab);
    logits_f32_ = cv.take<float>(kLogitRows * vocab * 4);
    k_cache_ = cv.take(kv_bytes_ / 2);
    v_cache_ = cv.take(kv_bytes_ / 2);
    inv_freq_ = inv_freq.empty() ? nullptr : cv.take<float>(inv_freq.size() * 4);
    ids_ = cv.take<int32_t>(chunk * 4);
    params_ = cv.take<DeviceStepParams>(sizeof(DeviceStepParams));
    next_id_ = cv.take<int32_t>(4);
    attention_workspace_ = cv.take<float>(static_cast<uint64_t>(attention_workspace_floats_) * 4);
    sample_workspace_ = cv.take(static_cast<uint64_t>(sample_workspace_bytes_));
    gemm_scratch_ = gemm_scratch_bytes_ > 0 ? cv.take(gemm_scratch_bytes_) : nullptr;
  };
  Carver measure(nullptr);
  carve(measure);
  device_block_bytes_ = measure.used();
  const uint64_t gemm_workspace = chunk > kLogitRows ? kernels::GemmContext::kDefaultWorkspaceBytes : 0;
  const uint64_t need = device_block_bytes_ + gemm_workspace;
  size_t free_bytes = 0, total_bytes = 0;
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes));
  if (need > free_bytes) {
    return Status(StatusCode::kOutOfMemory,
                  "the session needs " + gib(need) + " of GPU memory (KV cache " + gib(kv_bytes_) + " for " +
                      std::to_string(max_context) + " tokens, workspace " + gib(need - kv_bytes_) +
                      ") but the device has " + gib(free_bytes) + " free (of " + gib(total_bytes) + "); short by " +
                      gib(need - free_bytes) + ": lower the max context or the prefill chunk");
  }
  if (cudaMalloc(&device_block_, device_block_bytes_) != cudaSuccess) {
    (void)cudaGetLastError();
    device_block_ = nullptr;
    return Status(StatusCode::kOutOfMemory, "cannot allocate " + gib(device_block_bytes_) +
                                                " of GPU memory for the KV cache and workspace");
  }
  Carver place(static_cast<uint8_t*>(device_block_));
  carve(place);
  if (gemm_workspace > 0) {
    QMODEL_ASSIGN_OR_RETURN(kernels::GemmContext gemm, kernels::GemmContext::create(static_cast<int64_t>(gemm_workspace)));
    gemm_ = std::make_unique<kernels::GemmContext>(std::move(gemm));
  }
  QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  if (!weights_.streamed().empty()) {
    QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
    for (cudaEvent_t* event : {&slot_ready_[0], &slot_ready_[1], &slot_free_[0], &slot_free_[1], &fork_}) {
      QMODEL_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(event, cudaEventDisableTiming));
    }
  }
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMallocHost(reinterpret_cast<void**>(&params_host_), sizeof(DeviceStepParams)));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMallocHost(reinterpret_cast<void**>(&id_host_), sizeof(int32_t)));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMallocHost(reinterpret_cast<void**>(&ids_host_), chunk * sizeof(int32_t)));
  if (inv_freq_ != nullptr) {
    QMODEL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(inv_freq_, inv_freq.data(), inv_freq.size() * 4,
                                                cudaMemcpyHostToDevice, stream_));
  }
  if (alibi_slopes_ != nullptr) {
    QMODEL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(alibi_slopes_, slopes.data(), slopes.size() * 4, cudaMemcpyHostToDevice,
                                                stream_));
  }
  shape_.alibi_slopes = alibi_slopes_;
  // The pageable sources above are read before this function returns (synchronised below).
  // A fresh cache holds zeros, not garbage: attention never reads unwritten rows, but a bug that
  // did would then show up as wrong numbers rather than NaN noise that varies per run.
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(k_cache_, 0, kv_bytes_ / 2, stream_));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(v_cache_, 0, kv_bytes_ / 2, stream_));
  return QMODEL_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

CudaForward::~CudaForward() {
  if (stream_ != nullptr) (void)cudaStreamSynchronize(stream_);
  if (decode_graph_ != nullptr) (void)cudaGraphExecDestroy(decode_graph_);
  if (copy_stream_ != nullptr) (void)cudaStreamSynchronize(copy_stream_);
  gemm_.reset();
  for (cudaEvent_t e : {slot_ready_[0], slot_ready_[1], slot_free_[0], slot_free_[1], fork_}) {
    if (e != nullptr) (void)cudaEventDestroy(e);
  }
  if (copy_stream_ != nullptr) (void)cudaStreamDestroy(copy_stream_);
  if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  if (device_block_ != nullptr) (void)cudaFree(device_block_);
  for (void* p : {static_cast<void*>(params_host_), static_cast<void*>(id_host_), static_cast<void*>(ids_host_)}) {
    if (p != nullptr) (void)cudaFreeHost(p);
  }
}

void* CudaForward::kv_layer(void* cache, size_t layer) const {
  return static_cast<uint8_t*>(cache) + layer * max_context_ * kv_dim_ * static_cast<size_t>(act_bytes(act_));
}

Status CudaForward::linear(const void* x, size_t m, const kernels::DeviceWeightView& w, const float* bias, void* y) {
  if (m <= kLogitRows) return kernels::launch_gemv(act_, x, static_cast<int64_t>(m), w, bias, y, stream_);
  return kernels::launch_gemm(*gemm_, act_, x, static_cast<int64_t>(m), w, bias, y, gemm_scratch_,
                              static_cast<int64_t>(gemm_scratch_bytes_), stream_);
}

Status CudaForward::linear_multi(const void* x, size_t m, const kernels::DeviceWeightView* ws,
                                 const float* const* biases, void* const* ys, int count) {
  if (m <= kLogitRows) {
    const Status fused = kernels::launch_gemv_multi(act_, x, static_cast<int64_t>(m), ws, biases, ys, count, stream_);
    if (fused.code() != StatusCode::kUnsupported) return fused;  // done, or a real error
  }
  for (int i = 0; i < count; ++i) QMODEL_RETURN_IF_ERROR(linear(x, m, ws[i], biases[i], ys[i]));
  return Status();
}

DeviceNorm CudaForward::norm_of(const float* weight, const float* bias) const {
  DeviceNorm n;
  n.kind = arch_.norm;
  n.weight = weight;
  n.bias = bias;
  n.eps = arch_.norm_eps;
  return n;
}

Status CudaForward::enqueue_embedding(const int32_t* ids_dev, size_t m) {
  const int64_t h = config_.hidden_size, rows = static_cast<int64_t>(m);
  if (!arch_.project_in_out) {
    QMODEL_RETURN_IF_ERROR(kernels::launch_gather_rows(weights_.embed, ids_dev, rows, ActType::kF32, x_, stream_));
  } else {
    QMODEL_RETURN_IF_ERROR(kernels::launch_gather_rows(weights_.embed, ids_dev, rows, act_, emb_, stream_));
    QMODEL_RETURN_IF_ERROR(linear(emb_, m, weights_.project_in, nullptr, delta_));
    QMODEL_RETURN_IF_ERROR(convert_to_f32(act_, delta_, rows * h, x_, stream_));
  }
  if (arch_.positions == format::PositionKind::kLearned) {
    QMODEL_RETURN_IF_ERROR(add_position_rows(weights_.pos_embed, &params_->position,
                                             static_cast<int32_t>(arch_.learned_offset), rows, h, x_, stream_));
  }
  if (arch_.embed_norm) {
    const DeviceNorm n = norm_of(weights_.embed_norm, weights_.embed_norm_b);
    QMODEL_RETURN_IF_ERROR(add_norm(act_, &n, x_, nullptr, nullptr, rows, h, /*write_back=*/true, xn_, stream_));
  }
  pending_ = pending2_ = nullptr;
  return Status();
}

Status CudaForward::enqueue_attention(size_t l, const void* in, size_t m, size_t start, bool decode, void* out) {
  const DeviceLayerWeights& L = weights_.layers[l];
  const int64_t rows = static_cast<int64_t>(m);
  void* k_cache = kv_layer(k_cache_, l);
  void* v_cache = kv_layer(v_cache_, l);
  if (arch_.qkv == format::QkvLayout::kSeparate) {
    const kernels::DeviceWeightView qkv[3] = {L.wq, L.wk, L.wv};
    const float* qkv_bias[3] = {L.bq, L.bk, L.bv};
    void* qkv_out[3] = {q_, k_, v_};
    QMODEL_RETURN_IF_ERROR(linear_multi(in, m, qkv, qkv_bias, qkv_out, 3));
  } else {
    QMODEL_RETURN_IF_ERROR(linear(in, m, L.wqkv, L.bqkv, qkv_));
    QMODEL_RETURN_IF_ERROR(split_qkv(act_, arch_.qkv, qkv_, rows, shape_, q_, k_, v_, stream_));
  }
  const int32_t* position = &params_->position;
  QMODEL_RETURN_IF_ERROR(rope_store_kv(act_, q_, k_, v_, rows, shape_, inv_freq_, position, k_cache, v_cache, stream_));
  if (decode) {
    QMODEL_RETURN_IF_ERROR(attention_decode(act_, shape_, q_, k_cache, v_cache, position, attention_workspace_,
                                            attention_workspace_floats_, att_, stream_));
  } else {
    QMODEL_RETURN_IF_ERROR(attention_prefill(act_, shape_, q_, rows, static_cast<int64_t>(start), k_cache, v_cache,
                                             att_, stream_));
  }
  return linear(att_, m, L.wo, L.bo, out);
}

Status CudaForward::enqueue_mlp(size_t l, const void* in, size_t m, void* out) {
  const DeviceLayerWeights& L = weights_.layers[l];
  const int64_t count = static_cast<int64_t>(m) * config_.intermediate_size;
  if (arch_.mlp == format::MlpKind::kGated) {
    const kernels::DeviceWeightView gate_up[2] = {L.w_gate, L.w_up};
    const float* gate_up_bias[2] = {L.b_gate, L.b_up};
    void* gate_up_out[2] = {gate_, up_};
    QMODEL_RETURN_IF_ERROR(linear_multi(in, m, gate_up, gate_up_bias, gate_up_out, 2));
    QMODEL_RETURN_IF_ERROR(activation_mul(act_, arch_.activation, gate_, up_, count, gate_, stream_));
  } else {
    QMODEL_RETURN_IF_ERROR(linear(in, m, L.w_up, L.b_up, gate_));
    QMODEL_RETURN_IF_ERROR(activation_mul(act_, arch_.activation, gate_, nullptr, count, gate_, stream_));
  }
  return linear(gate_, m, L.w_down, L.b_down, out);
}

Status CudaForward::enqueue_block_copy(size_t i) {
  const StreamedLayer& s = weights_.streamed()[i];
  QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_stream_, slot_free_[s.slot], 0));
  uint8_t* slot = static_cast<uint8_t*>(weights_.slot(s.slot));
  for (const StreamedLayer::Region& r : s.regions) {
    QMODEL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(slot + r.offset, r.host, r.bytes, cudaMemcpyHostToDevice, copy_stream_));
  }
  return QMODEL_CUDA_CHECK(cudaEventRecord(slot_ready_[s.slot], copy_stream_));
}

Status CudaForward::enqueue_layers(const int32_t* ids_dev, size_t m, size_t start, bool decode) {
  const int64_t h = config_.hidden_size, rows = static_cast<int64_t>(m);
  const std::vector<StreamedLayer>& streamed = weights_.streamed();
  size_t next_copy = 0;
  if (!streamed.empty()) {
    // Both slots start free at this point of the compute stream; the first streamed block's copy
    // starts at once and overlaps the resident blocks.
    QMODEL_CUDA_RETURN_IF_ERROR(cudaEventRecord(fork_, stream_));
    QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_stream_, fork_, 0));
    for (cudaEvent_t e : slot_free_) QMODEL_CUDA_RETURN_IF_ERROR(cudaEventRecord(e, stream_));
    QMODEL_RETURN_IF_ERROR(enqueue_block_copy(next_copy++));
  }
  QMODEL_RETURN_IF_ERROR(enqueue_embedding(ids_dev, m));
  // Each sublayer's output stays pending until the next norm adds it into x_ (fused).
  for (size_t l = 0; l < weights_.layers.size(); ++l) {
    const DeviceLayerWeights& L = weights_.layers[l];
    const int streamed_index = weights_.streamed_index(l);
    if (streamed_index >= 0) {
      // This block's copy must be done; the next streamed block's copy overlaps its compute.
      QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(stream_, slot_ready_[streamed[streamed_index].slot], 0));
      if (next_copy < streamed.size()) QMODEL_RETURN_IF_ERROR(enqueue_block_copy(next_copy++));
    }
    const DeviceNorm attn_norm = norm_of(L.attn_norm, L.attn_norm_b);
    const DeviceNorm mlp_norm = norm_of(L.mlp_norm, L.mlp_norm_b);
    switch (arch_.residual) {
      case format::ResidualLayout::kSequential:
        QMODEL_RETURN_IF_ERROR(
            add_norm(act_, &attn_norm, x_, pending_, pending2_, rows, h, arch_.residual_from_norm, xn_, stream_));
        QMODEL_RETURN_IF_ERROR(enqueue_attention(l, xn_, m, start, decode, delta_));
        QMODEL_RETURN_IF_ERROR(
            add_norm(act_, &mlp_norm, x_, delta_, nullptr, rows, h, arch_.residual_from_norm, xn_, stream_));
        QMODEL_RETURN_IF_ERROR(enqueue_mlp(l, xn_, m, delta_));
        pending_ = delta_;
        pending2_ = nullptr;
        break;
      case format::ResidualLayout::kParallelSharedNorm:
      case format::ResidualLayout::kParallelTwoNorms: {
        QMODEL_RETURN_IF_ERROR(add_norm(act_, &attn_norm, x_, pending_, pending2_, rows, h, false, xn_, stream_));
        const void* mlp_in = xn_;
        if (arch_.residual == format::ResidualLayout::kParallelTwoNorms) {
          QMODEL_RETURN_IF_ERROR(add_norm(act_, &mlp_norm, x_, nullptr, nullptr, rows, h, false, xn2_, stream_));
          mlp_in = xn2_;
        }
        QMODEL_RETURN_IF_ERROR(enqueue_attention(l, xn_, m, start, decode, delta_));
        QMODEL_RETURN_IF_ERROR(enqueue_mlp(l, mlp_in, m, delta2_));
        pending_ = delta_;
        pending2_ = delta2_;
        break;
      }
      case format::ResidualLayout::kPostNorm:
        // x is the block's input as it is: only the compute-dtype copy for the projections.
        QMODEL_RETURN_IF_ERROR(add_norm(act_, nullptr, x_, pending_, pending2_, rows, h, false, xn_, stream_));
        QMODEL_RETURN_IF_ERROR(enqueue_attention(l, xn_, m, start, decode, delta_));
        QMODEL_RETURN_IF_ERROR(add_norm(act_, &attn_norm, x_, delta_, nullptr, rows, h, true, xn_, stream_));
        QMODEL_RETURN_IF_ERROR(enqueue_mlp(l, xn_, m, delta_));
        QMODEL_RETURN_IF_ERROR(add_norm(act_, &mlp_norm, x_, delta_, nullptr, rows, h, true, xn_, stream_));
        pending_ = pending2_ = nullptr;
        break;
    }
    if (streamed_index >= 0) {
      QMODEL_CUDA_RETURN_IF_ERROR(cudaEventRecord(slot_free_[streamed[streamed_index].slot], stream_));
    }
  }
  return Status();
}

Status CudaForward::enqueue_logits(size_t first, size_t n, float* logits_f32_dev) {
  const format::ModelConfig& c = config_;
  const size_t h = c.hidden_size, ab = static_cast<size_t>(act_bytes(act_));
  auto rows_of = [&](const void* p) { return p == nullptr ? nullptr : static_cast<const uint8_t*>(p) + first * h * ab; };
  // The last block's outputs are still pending: the final norm adds them to these rows.
  const DeviceNorm final_norm = norm_of(weights_.final_norm, weights_.final_norm_b);
  QMODEL_RETURN_IF_ERROR(add_norm(act_, arch_.final_norm ? &final_norm : nullptr, x_ + first * h, rows_of(pending_),
                                  rows_of(pending2_), static_cast<int64_t>(n), static_cast<int64_t>(h), false, xn_,
                                  stream_));
  const void* head_in = xn_;
  if (arch_.project_in_out) {
    QMODEL_RETURN_IF_ERROR(
        kernels::launch_gemv(act_, xn_, static_cast<int64_t>(n), weights_.project_out, nullptr, emb_, stream_));
    head_in = emb_;
  }
  QMODEL_RETURN_IF_ERROR(
      kernels::launch_gemv(act_, head_in, static_cast<int64_t>(n), weights_.lm_head, nullptr, logits_act_, stream_));
  return convert_to_f32(act_, logits_act_, static_cast<int64_t>(n * c.vocab_size), logits_f32_dev, stream_);
}

void CudaForward::set_step_params(int32_t token, size_t position, const SamplingOptions& options, double uniform) {
  DeviceStepParams p;
  p.token = token;
  p.position = static_cast<int32_t>(position);
  p.temperature = options.temperature;
  p.top_k = options.top_k;
  p.top_p = options.top_p;
  p.uniform = static_cast<float>(uniform);
  // float(u) may round up to 1.0f for u within 2^-25 of 1: keep the draw inside [0, 1).
  if (p.uniform >= 1.0f) p.uniform = 0x1.fffffep-1f;
  *params_host_ = p;
}

Status CudaForward::enqueue_decode_step() {
  QMODEL_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(params_, params_host_, sizeof(DeviceStepParams), cudaMemcpyHostToDevice, stream_));
  QMODEL_RETURN_IF_ERROR(enqueue_layers(&params_->token, 1, 0, /*decode=*/true));
  QMODEL_RETURN_IF_ERROR(enqueue_logits(0, 1, logits_f32_));
  QMODEL_RETURN_IF_ERROR(sample_token(logits_f32_, config_.vocab_size, params_, next_id_, sample_workspace_,
                                      sample_workspace_bytes_, stream_));
  return QMODEL_CUDA_CHECK(cudaMemcpyAsync(id_host_, next_id_, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
}

Status CudaForward::ensure_decode_graph() {
  if (decode_graph_ != nullptr) return Status();
  QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  const Status enqueued = enqueue_decode_step();
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream_, &graph);
  if (!enqueued.ok()) {
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    return Status(enqueued.code(), "capturing the decode step: " + enqueued.message());
  }
  QMODEL_CUDA_RETURN_IF_ERROR(ended);
  const cudaError_t instantiated = cudaGraphInstantiate(&decode_graph_, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (instantiated != cudaSuccess) decode_graph_ = nullptr;
  return QMODEL_CUDA_CHECK(instantiated);
}

Status CudaForward::run_decode_graph(int32_t id, size_t position, const SamplingOptions& options, double uniform) {
  QMODEL_RETURN_IF_ERROR(ensure_decode_graph());
  set_step_params(id, position, options, uniform);
  QMODEL_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(decode_graph_, stream_));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  last_logits_ = logits_f32_;
  return Status();
}

Status CudaForward::run(const int32_t* ids, size_t m, size_t start, bool all_logits, float* logits) {
  const size_t vocab = config_.vocab_size;
  if (m == 1 && !all_logits) {
    QMODEL_RETURN_IF_ERROR(run_decode_graph(ids[0], start, SamplingOptions{}, 0.0));
    if (logits == nullptr) return Status();
    return QMODEL_CUDA_CHECK(cudaMemcpy(logits, logits_f32_, vocab * sizeof(float), cudaMemcpyDeviceToHost));
  }
  std::memcpy(ids_host_, ids, m * sizeof(int32_t));
  set_step_params(ids[0], start, SamplingOptions{}, 0.0);
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(ids_, ids_host_, m * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  QMODEL_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(params_, params_host_, sizeof(DeviceStepParams), cudaMemcpyHostToDevice, stream_));
  QMODEL_RETURN_IF_ERROR(enqueue_layers(ids_, m, start, /*decode=*/false));
  // lm_head runs as GEMVs of up to 8 rows: only the rows whose logits are wanted, and no
  // dequantized copy of a (possibly quantized) 128k-row lm_head.
  const size_t first_row = all_logits ? 0 : m - 1;
  for (size_t first = first_row; first < m; first += kLogitRows) {
    const size_t n = std::min(kLogitRows, m - first);
    QMODEL_RETURN_IF_ERROR(enqueue_logits(first, n, logits_f32_));
    last_logits_ = logits_f32_ + (n - 1) * vocab;
    if (logits != nullptr) {
      float* dst = logits + (all_logits ? first * vocab : 0);
      QMODEL_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(dst, logits_f32_, n * vocab * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    }
  }
  return QMODEL_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

Result<int32_t> CudaForward::sample_last(const SamplingOptions& options, double uniform) {
  if (last_logits_ == nullptr) return Status(StatusCode::kInvalidArgument, "sample_last before any run");
  set_step_params(0, 0, options, uniform);
  QMODEL_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(params_, params_host_, sizeof(DeviceStepParams), cudaMemcpyHostToDevice, stream_));
  QMODEL_RETURN_IF_ERROR(sample_token(last_logits_, config_.vocab_size, params_, next_id_, sample_workspace_,
                                      sample_workspace_bytes_, stream_));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(id_host_, next_id_, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  QMODEL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  return *id_host_;
}

Result<int32_t> CudaForward::decode_and_sample(int32_t id, size_t position, const SamplingOptions& options,
                                               double uniform) {
  QMODEL_RETURN_IF_ERROR(run_decode_graph(id, position, options, uniform));
  return *id_host_;
}

void CudaForward::fill_memory_stats(Stats& stats) const {
  const uint64_t gemm_workspace = gemm_ ? kernels::GemmContext::kDefaultWorkspaceBytes : 0;
  stats.kv_cache_bytes = kv_bytes_;
  stats.scratch_bytes = device_block_bytes_ - kv_bytes_ + gemm_workspace;
  stats.device_weight_bytes = weights_.device_weight_bytes();
  stats.device_allocated_bytes = stats.device_weight_bytes + device_block_bytes_ + gemm_workspace;
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) stats.device_used_bytes = total_bytes - free_bytes;
}

}  // namespace qmodel::runtime::cuda
