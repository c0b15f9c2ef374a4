#include "qmodel/runtime/offload_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "qmodel/runtime/session.h"

namespace qmodel::runtime {
namespace {

constexpr uint64_t kAlign = 256;         // device arena and workspace alignment (CudaDeviceModel, CudaForward)
constexpr uint64_t kLogitRows = 8;       // lm_head GEMV rows (kernels::kMaxGemvRows)
constexpr uint64_t kDecodeChunkKeys = 256;
constexpr uint64_t kGemmWorkspaceBytes = uint64_t{32} << 20;  // GemmContext::kDefaultWorkspaceBytes
constexpr uint64_t kSmallWorkspaceBytes = uint64_t{1} << 20;  // sampling partials, step params, ids

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

double gib(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

bool is_matrix_role(format::TensorRole r) {
  using R = format::TensorRole;
  switch (r) {
    case R::kTokenEmbedding: case R::kPositionEmbedding: case R::kProjectIn: case R::kProjectOut: case R::kLmHead:
    case R::kQ: case R::kK: case R::kV: case R::kQkv: case R::kO: case R::kGate: case R::kUp: case R::kDown:
      return true;
    default:
      return false;
  }
}

uint64_t act_bytes(ComputeDType d) { return d == ComputeDType::kF32 ? 4 : 2; }

bool stored_in_act_dtype(StorageType s, ComputeDType d) {
  return (s == StorageType::kF32 && d == ComputeDType::kF32) || (s == StorageType::kBF16 && d == ComputeDType::kBF16) ||
         (s == StorageType::kF16 && d == ComputeDType::kF16);
}

// The session's device buffers as CudaForward carves them (runtime/cuda/cuda_forward.cpp).
uint64_t workspace_bytes(const format::ModelHeader& h, uint64_t context, uint64_t chunk, ComputeDType dtype) {
  const format::ModelConfig& c = h.config;
  const format::ArchSpec& a = h.arch;
  const uint64_t ab = act_bytes(dtype), hid = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
  const uint64_t q = uint64_t{c.n_heads} * c.head_dim, kv = uint64_t{c.n_kv_heads} * c.head_dim;
  const bool parallel = a.residual == format::ResidualLayout::kParallelSharedNorm ||
                        a.residual == format::ResidualLayout::kParallelTwoNorms;
  uint64_t n = 0;
  for (uint64_t bytes : {chunk * hid * 4, chunk * hid * ab, chunk * q * ab, chunk * kv * ab, chunk * kv * ab,
                         chunk * q * ab, chunk * hid * ab, chunk * inter * ab, chunk * inter * ab,
                         kLogitRows * vocab * ab, kLogitRows * vocab * 4, uint64_t{a.rotary_dim} / 2 * 4, chunk * 4}) {
    n += align_up(bytes);
  }
  if (a.residual == format::ResidualLayout::kParallelTwoNorms) n += align_up(chunk * hid * ab);
  if (parallel) n += align_up(chunk * hid * ab);
  if (a.qkv != format::QkvLayout::kSeparate) n += align_up(chunk * (q + 2 * kv) * ab);
  if (a.project_in_out) n += align_up(chunk * a.embed_dim * ab);
  if (a.positions == format::PositionKind::kAlibi) n += align_up(uint64_t{c.n_heads} * 4);
  n += align_up(uint64_t{c.n_heads} * ((context + kDecodeChunkKeys - 1) / kDecodeChunkKeys) * (c.head_dim + 2) * 4);
  n += kSmallWorkspaceBytes;
  if (chunk > kLogitRows) {
    uint64_t scratch = 0;
    for (const format::TensorInfo& t : h.tensors) {
      if (t.shape.size() != 2 || !is_matrix_role(t.role) || t.role == format::TensorRole::kTokenEmbedding ||
          t.role == format::TensorRole::kPositionEmbedding || t.role == format::TensorRole::kLmHead ||
          t.role == format::TensorRole::kProjectOut || stored_in_act_dtype(t.storage, dtype)) {
        continue;
      }
      scratch = std::max(scratch, t.shape[0] * t.shape[1] * ab);
    }
    n += align_up(scratch) + kGemmWorkspaceBytes;
  }
  return n;
}

std::string human(uint64_t bytes) {
  char buf[32];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.2f GiB", gib(bytes));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  }
  return buf;
}

}  // namespace

Result<MemoryBudget> parse_memory_budget(const std::string& text) {
  auto bad = [&] {
    return Status(StatusCode::kInvalidArgument, "memory budget '" + text +
                                                    "': expected a size such as 6GiB, 5000MB, 1.5GB, 4096 (bytes) or a "
                                                    "percentage of free memory such as 90%");
  };
  std::string s;
  for (char ch : text) {
    if (ch != ' ') s += ch;
  }
  if (s.empty()) return bad();
  char* end = nullptr;
  const double value = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(value) || !(value > 0.0)) return bad();
  std::string unit(end);
  for (char& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  MemoryBudget b;
  if (unit == "%") {
    if (value > 100.0) return bad();
    b.fraction = value / 100.0;
    return b;
  }
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1.0},     {"b", 1.0},     {"k", 1024.0}, {"kib", 1024.0}, {"kb", 1e3}, {"m", 1048576.0}, {"mib", 1048576.0},
      {"mb", 1e6},   {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9}, {"t", 1099511627776.0},
      {"tib", 1099511627776.0}, {"tb", 1e12}};
  for (const auto& [name, scale] : kUnits) {
    if (unit != name) continue;
    const double bytes = value * scale;
    if (bytes < 1.0 || bytes > 9.0e18) return bad();
    b.bytes = static_cast<uint64_t>(bytes);
    return b;
  }
  return bad();
}

uint32_t default_context(const format::ModelConfig& c) {
  return c.max_position_embeddings != 0 ? std::min<uint32_t>(c.max_position_embeddings, kDefaultMaxContext)
                                        : kDefaultMaxContext;
}

uint64_t device_tensor_bytes(const format::TensorInfo& t) {
  uint64_t n_elems = 1;
  for (uint64_t d : t.shape) n_elems *= d;
  if (t.shape.size() == 1) return align_up(n_elems * 4);  // widened to fp32
  uint64_t n = 0;
  for (const format::BlobRef& b : t.blobs) n += align_up(b.raw_size);
  if (t.quant.double_quant) n += align_up(kDynamicMapSize * 4);
  return n;
}

Result<OffloadPlan> plan_offload(const format::ModelHeader& h, const OffloadOptions& o) {
  const format::ModelConfig& c = h.config;
  if (o.budget_bytes == 0) return Status(StatusCode::kInvalidArgument, "the GPU memory budget must be > 0");
  if (c.n_layers == 0) return Status(StatusCode::kCorruptFile, "the model has no blocks");
  OffloadPlan p;
  p.budget_bytes = o.budget_bytes;
  p.bus_gb_per_s = o.bus_gb_per_s;
  p.device_gb_per_s = o.device_gb_per_s;
  const uint64_t context = o.context != 0 ? o.context : default_context(c);
  const uint64_t chunk = std::max<uint64_t>(1, std::min<uint64_t>(o.prefill_chunk, context));
  const uint64_t ab = act_bytes(o.compute_dtype);
  p.kv_cache_bytes = 2 * uint64_t{c.n_layers} * context * c.n_kv_heads * c.head_dim * ab;
  p.workspace_bytes = workspace_bytes(h, context, chunk, o.compute_dtype);
  p.layer_bytes.assign(c.n_layers, 0);
  uint64_t embedding_stored = 0, stored = 0;
  bool has_lm_head = false;
  for (const format::TensorInfo& t : h.tensors) {
    if (t.role == format::TensorRole::kNone) continue;
    uint64_t raw = 0;
    for (const format::BlobRef& b : t.blobs) raw += b.raw_size;
    stored += raw;
    if (t.role == format::TensorRole::kTokenEmbedding) embedding_stored = raw;
    has_lm_head = has_lm_head || t.role == format::TensorRole::kLmHead;
    const bool streamable = t.layer >= 0 && t.shape.size() == 2 && is_matrix_role(t.role);
    if (streamable) {
      // The nested code table stays resident (it lives in the header, not the mapping).
      const uint64_t table = t.quant.double_quant ? align_up(kDynamicMapSize * 4) : 0;
      p.layer_bytes[static_cast<size_t>(t.layer)] += device_tensor_bytes(t) - table;
      p.always_resident_bytes += table;
    } else {
      p.always_resident_bytes += device_tensor_bytes(t);
    }
  }
  p.stored_weight_bytes = stored;
  const uint64_t fixed = p.always_resident_bytes + p.kv_cache_bytes + p.workspace_bytes;
  // Keep blocks 0..k-1 resident for the largest k that fits with the slots the rest needs.
  p.resident.assign(c.n_layers, false);
  const uint64_t all = [&] {
    uint64_t s = 0;
    for (uint64_t b : p.layer_bytes) s += b;
    return s;
  }();
  auto slots_for = [&](uint32_t first_streamed) -> std::pair<uint32_t, uint64_t> {
    uint64_t largest = 0;
    for (uint32_t l = first_streamed; l < c.n_layers; ++l) largest = std::max(largest, p.layer_bytes[l]);
    const uint32_t streamed = c.n_layers - first_streamed;
    return {std::min<uint32_t>(streamed, 2), largest};
  };
  {
    const auto [slots, largest] = slots_for(0);
    p.minimum_budget_bytes = fixed + slots * largest;
  }
  uint32_t k = c.n_layers;
  uint64_t resident_bytes = all;
  for (;; --k) {
    const auto [slots, largest] = slots_for(k);
    if (fixed + resident_bytes + slots * largest <= o.budget_bytes) {
      p.n_slots = slots;
      p.slot_bytes = slots > 0 ? largest : 0;
      break;
    }
    if (k == 0) {
      return Status(StatusCode::kOutOfMemory,
                    "a GPU memory budget of " + human(o.budget_bytes) + " cannot hold even one streamed block: the " +
                        "minimum is " + human(p.minimum_budget_bytes) + " (KV cache " + human(p.kv_cache_bytes) + " for " +
                        std::to_string(context) + " tokens, workspace " + human(p.workspace_bytes) +
                        ", embedding/lm_head/norms " + human(p.always_resident_bytes) + ", two block slots of " +
                        human(largest) + "); lower the context or raise the budget");
    }
    resident_bytes -= p.layer_bytes[k - 1];
  }
  p.n_resident = k;
  p.n_streamed = c.n_layers - k;
  for (uint32_t l = 0; l < k; ++l) p.resident[l] = true;
  p.weight_device_bytes = p.always_resident_bytes + resident_bytes + uint64_t{p.n_slots} * p.slot_bytes;
  p.device_total_bytes = p.weight_device_bytes + p.kv_cache_bytes + p.workspace_bytes;
  // Decode reads every weight but the embedding table (one row of it, unless lm_head is it).
  const uint64_t embedding_read = has_lm_head ? embedding_stored / std::max<uint64_t>(1, c.vocab_size) : embedding_stored;
  p.device_bytes_per_token = stored - embedding_stored + embedding_read + p.kv_cache_bytes;
  for (uint32_t l = k; l < c.n_layers; ++l) p.bus_bytes_per_token += p.layer_bytes[l];
  const double device_s = static_cast<double>(p.device_bytes_per_token) / (o.device_gb_per_s * 1e9);
  const double bus_s = static_cast<double>(p.bus_bytes_per_token) / (o.bus_gb_per_s * 1e9);
  const double step_s = std::max(device_s, bus_s);
  p.decode_tokens_per_s = step_s > 0 ? 1.0 / step_s : 0.0;
  return p;
}

std::string OffloadPlan::summary() const {
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "offload: %u of %zu blocks resident, %u streamed through %u slot(s) of %s; %s over the bus per token "
                "(%.0f GB/s) -> at most %.1f tokens/s; GPU %s of budget %s (KV cache %s, workspace %s)",
                n_resident, layer_bytes.size(), n_streamed, n_slots, human(slot_bytes).c_str(),
                human(bus_bytes_per_token).c_str(), bus_gb_per_s, decode_tokens_per_s, human(device_total_bytes).c_str(),
                human(budget_bytes).c_str(), human(kv_cache_bytes).c_str(), human(workspace_bytes).c_str());
  return buf;
}

std::string OffloadPlan::to_text(const format::ModelHeader& h) const {
  std::ostringstream s;
  char buf[256];
  s << "budget            " << human(budget_bytes) << " (" << budget_bytes << " bytes)\n";
  s << "weights (file)    " << human(stored_weight_bytes) << " (" << stored_weight_bytes << " bytes)\n";
  s << "always resident   " << human(always_resident_bytes) << " (embedding, positions, projections, lm_head, norms, biases)\n";
  s << "KV cache          " << human(kv_cache_bytes) << " (" << kv_cache_bytes << " bytes = 2 x " << h.config.n_layers
    << " layers x context x " << h.config.n_kv_heads << " kv heads x " << h.config.head_dim << " x dtype)\n";
  s << "workspace         " << human(workspace_bytes) << "\n";
  s << "blocks            " << n_resident << " resident, " << n_streamed << " streamed";
  if (n_streamed > 0) s << " through " << n_slots << " slot(s) of " << human(slot_bytes);
  s << "\n";
  for (size_t l = 0; l < layer_bytes.size(); ++l) {
    std::snprintf(buf, sizeof(buf), "  block %-4zu     %12llu bytes  %s\n", l, static_cast<unsigned long long>(layer_bytes[l]),
                  resident[l] ? "resident" : "streamed");
    s << buf;
  }
  s << "GPU memory        " << human(device_total_bytes) << " (minimum budget " << human(minimum_budget_bytes) << ")\n";
  std::snprintf(buf, sizeof(buf), "per decode token  %s from device memory (%.0f GB/s), %s over the bus (%.0f GB/s)\n",
                human(device_bytes_per_token).c_str(), device_gb_per_s, human(bus_bytes_per_token).c_str(), bus_gb_per_s);
  s << buf;
  std::snprintf(buf, sizeof(buf), "decode estimate   %.1f tokens/s (1 / max(device time, bus time): copies overlap compute)\n",
                decode_tokens_per_s);
  s << buf;
  return s.str();
}

std::string OffloadPlan::to_json() const {
  std::ostringstream s;
  s << "{\"budget_bytes\":" << budget_bytes << ",\"stored_weight_bytes\":" << stored_weight_bytes
    << ",\"always_resident_bytes\":" << always_resident_bytes << ",\"kv_cache_bytes\":" << kv_cache_bytes
    << ",\"workspace_bytes\":" << workspace_bytes << ",\"layer_bytes\":[";
  for (size_t l = 0; l < layer_bytes.size(); ++l) s << (l ? "," : "") << layer_bytes[l];
  s << "],\"resident_layers\":" << n_resident << ",\"streamed_layers\":" << n_streamed << ",\"slots\":" << n_slots
    << ",\"slot_bytes\":" << slot_bytes << ",\"weight_device_bytes\":" << weight_device_bytes
    << ",\"device_total_bytes\":" << device_total_bytes << ",\"minimum_budget_bytes\":" << minimum_budget_bytes
    << ",\"device_bytes_per_token\":" << device_bytes_per_token << ",\"bus_bytes_per_token\":" << bus_bytes_per_token
    << ",\"bus_gb_per_s\":" << bus_gb_per_s << ",\"device_gb_per_s\":" << device_gb_per_s
    << ",\"decode_tokens_per_s\":" << decode_tokens_per_s << "}";
  return s.str();
}

}  // namespace qmodel::runtime
