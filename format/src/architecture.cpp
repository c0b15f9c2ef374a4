#include "qmodel/format/architecture.h"

#include <algorithm>
#include <cmath>

namespace qmodel::format {

bool is_layer_role(TensorRole role) { return role >= TensorRole::kAttnNorm && role < TensorRole::kCount; }

const char* tensor_role_name(TensorRole role) {
  static constexpr const char* kNames[] = {
      "none",        "token_embedding", "position_embedding", "embed_norm", "embed_norm_bias", "project_in",
      "project_out", "final_norm",      "final_norm_bias",    "lm_head",    "attn_norm",       "attn_norm_bias",
      "mlp_norm",    "mlp_norm_bias",   "q",                  "q_bias",     "k",               "k_bias",
      "v",           "v_bias",          "qkv",                "qkv_bias",   "o",               "o_bias",
      "gate",        "gate_bias",       "up",                 "up_bias",    "down",            "down_bias"};
  static_assert(sizeof(kNames) / sizeof(kNames[0]) == kTensorRoleCount, "one name per role");
  const auto i = static_cast<size_t>(role);
  return i < sizeof(kNames) / sizeof(kNames[0]) ? kNames[i] : "unknown";
}

const char* norm_kind_name(NormKind k) { return k == NormKind::kLayerNorm ? "layernorm" : "rmsnorm"; }

const char* residual_layout_name(ResidualLayout r) {
  switch (r) {
    case ResidualLayout::kSequential: return "sequential";
    case ResidualLayout::kParallelSharedNorm: return "parallel-shared-norm";
    case ResidualLayout::kParallelTwoNorms: return "parallel-two-norms";
    case ResidualLayout::kPostNorm: return "post-norm";
  }
  return "unknown";
}

const char* qkv_layout_name(QkvLayout q) {
  switch (q) {
    case QkvLayout::kSeparate: return "separate";
    case QkvLayout::kConcat: return "fused-concat";
    case QkvLayout::kPerHead: return "fused-per-head";
    case QkvLayout::kGroupedKv: return "fused-grouped-kv";
  }
  return "unknown";
}

const char* position_kind_name(PositionKind p) {
  switch (p) {
    case PositionKind::kRope: return "rope";
    case PositionKind::kLearned: return "learned";
    case PositionKind::kAlibi: return "alibi";
    case PositionKind::kNone: return "none";
  }
  return "unknown";
}

const char* mlp_kind_name(MlpKind m) { return m == MlpKind::kPlain ? "plain" : "gated"; }

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kSilu: return "silu";
    case Activation::kGeluExact: return "gelu";
    case Activation::kGeluTanh: return "gelu_tanh";
    case Activation::kRelu: return "relu";
  }
  return "unknown";
}

void alibi_slopes(uint32_t n_heads, float* slopes) {
  // build_alibi_tensor: closest power of two p <= n; base = 2^(-2^-(log2 p - 3)); slopes base^1..p;
  // then extra_base^(1, 3, 5, ...) with extra_base from 2p, for the n - p remaining heads.
  uint32_t p = 1;
  while (p * 2 <= n_heads) p *= 2;
  const float base = static_cast<float>(std::pow(2.0, -std::pow(2.0, -(std::log2(static_cast<double>(p)) - 3.0))));
  for (uint32_t i = 0; i < p && i < n_heads; ++i) slopes[i] = std::pow(base, static_cast<float>(i + 1));
  if (p == n_heads) return;
  const float extra_base =
      static_cast<float>(std::pow(2.0, -std::pow(2.0, -(std::log2(2.0 * static_cast<double>(p)) - 3.0))));
  const uint32_t remaining = std::min(p, n_heads - p);
  for (uint32_t i = 0; i < remaining; ++i) slopes[p + i] = std::pow(extra_base, static_cast<float>(2 * i + 1));
}

}  // namespace qmodel::format
