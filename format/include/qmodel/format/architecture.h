// The normalised description of a decoder-only transformer that both runtime backends execute,
// and the roles a file's tensors play in it. The converter derives both from a Hugging Face
// folder (one config mapping and one name table per family, converter/src/families/); the file
// keeps every tensor under its checkpoint name and records its (layer, role) beside it, so the
// runtime binds tensors by role and never by name. A new family is a new table, not a new forward.
#pragma once

#include <cstdint>
#include <string>

namespace qmodel::format {

enum class NormKind : uint8_t {
  kRMSNorm = 0,    // w * x / sqrt(mean(x^2) + eps)
  kLayerNorm = 1,  // (x - mean) / sqrt(var + eps) * w + b (w, b optional: elementwise_affine)
};

// How a block combines attention, MLP and the residual stream x.
enum class ResidualLayout : uint8_t {
  kSequential = 0,          // x += attn(n1(x)); x += mlp(n2(x))                 (Llama, GPT-2, BLOOM, OPT pre-LN)
  kParallelSharedNorm = 1,  // a = n1(x); x += attn(a) + mlp(a)                  (Falcon-7B)
  kParallelTwoNorms = 2,    // x += attn(n1(x)) + mlp(n2(x))                      (GPT-NeoX, Falcon new arch)
  kPostNorm = 3,            // x = n1(x + attn(x)); x = n2(x + mlp(x))            (OPT do_layer_norm_before=False)
};

// Row layout of the output of a fused query_key_value weight [(n_heads + 2 n_kv) * d, hidden].
enum class QkvLayout : uint8_t {
  kSeparate = 0,     // q_proj, k_proj, v_proj
  kConcat = 1,       // q | k | v                                  (GPT-2 c_attn)
  kPerHead = 2,      // per head h: q_h, k_h, v_h (n_kv == n_heads) (GPT-NeoX, BLOOM, Falcon-RW)
  kGroupedKv = 3,    // per kv head g: its n_heads/n_kv queries, then k_g, v_g (Falcon MQA / new arch)
};

enum class PositionKind : uint8_t {
  kRope = 0,     // rotate_half RoPE on the first rotary_dim dims of each head
  kLearned = 1,  // x += position_embedding[pos + learned_offset] after the token embedding
  kAlibi = 2,    // score += slope_h * key_position (BLOOM's slopes for any head count)
  kNone = 3,
};

enum class MlpKind : uint8_t {
  kGated = 0,  // down(act(gate(x)) * up(x))
  kPlain = 1,  // down(act(up(x)))      (fc1 / fc2, dense_h_to_4h / dense_4h_to_h, c_fc / c_proj)
};

enum class Activation : uint8_t {
  kSilu = 0,
  kGeluExact = 1,  // 0.5 x (1 + erf(x / sqrt 2))
  kGeluTanh = 2,   // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (gelu_new, BLOOM)
  kRelu = 3,
};

struct ArchSpec {
  std::string family;  // "llama", "gpt2", "opt", "bloom", "gpt_neox", "falcon"
  NormKind norm = NormKind::kRMSNorm;
  float norm_eps = 1e-6f;
  ResidualLayout residual = ResidualLayout::kSequential;
  // BLOOM apply_residual_connection_post_layernorm: the residual around each sublayer is the
  // normalised input instead of x (kSequential only).
  bool residual_from_norm = false;
  QkvLayout qkv = QkvLayout::kSeparate;
  PositionKind positions = PositionKind::kRope;
  uint32_t rotary_dim = 0;        // kRope: dims rotated per head (even, <= head_dim)
  uint32_t learned_offset = 0;    // kLearned: row = position + offset (OPT: 2)
  bool alibi_scaled = false;      // kAlibi: Falcon-RW scales (q.k + alibi) by 1/sqrt(d); BLOOM adds it after
  float attn_scale = 0.0f;        // multiplier of q.k; 0 = 1 / sqrt(head_dim)
  MlpKind mlp = MlpKind::kGated;
  Activation activation = Activation::kSilu;
  bool final_norm = true;         // a final norm before lm_head (OPT post-LN has none)
  bool embed_norm = false;        // a norm right after the token embedding (BLOOM)
  bool project_in_out = false;    // OPT word_embed_proj_dim != hidden: project_in / project_out
  uint32_t embed_dim = 0;         // width of the token embedding and lm_head input (hidden unless projected)
};

// What a tensor is to the graph. Weights and their biases are separate roles; a bias role that is
// absent from a file means the module has no bias.
enum class TensorRole : uint8_t {
  kNone = 0,  // not read by the forward pass (buffers, unknown extras)
  kTokenEmbedding, kPositionEmbedding, kEmbedNorm, kEmbedNormBias, kProjectIn, kProjectOut,
  kFinalNorm, kFinalNormBias, kLmHead,
  kAttnNorm, kAttnNormBias, kMlpNorm, kMlpNormBias,
  kQ, kQBias, kK, kKBias, kV, kVBias, kQkv, kQkvBias, kO, kOBias,
  kGate, kGateBias, kUp, kUpBias, kDown, kDownBias,
  kCount
};
inline constexpr int kTensorRoleCount = static_cast<int>(TensorRole::kCount);

// True for the roles that exist once per block (layer index >= 0); the others have layer -1.
bool is_layer_role(TensorRole role);
const char* tensor_role_name(TensorRole role);
const char* norm_kind_name(NormKind k);
const char* residual_layout_name(ResidualLayout r);
const char* qkv_layout_name(QkvLayout q);
const char* position_kind_name(PositionKind p);
const char* mlp_kind_name(MlpKind m);
const char* activation_name(Activation a);

// Per-head ALiBi slopes exactly as transformers' build_alibi_tensor computes them (fp32 powers of
// a base, with the interleaved extra slopes when n_heads is not a power of two).
void alibi_slopes(uint32_t n_heads, float* slopes);

}  // namespace qmodel::format
