#include "qmodel/format/tensor_roles.h"

#include <cstdint>
#include <cstring>

namespace qmodel::format {
namespace {

using R = TensorRole;

struct Entry {
  const char* pattern;  // after the family's prefix; "{L}" stands for the block index
  TensorRole role;
  bool transpose;
  bool root;            // matched without the prefix (lm_head.weight, embed_out.weight)
};

struct Family {
  const char* name;
  std::vector<const char*> prefixes;  // tried in order; "" = none
  std::vector<Entry> entries;
};

// Weight and bias of one module.
#define QM_WB(p, w, b) {p ".weight", w, false, false}, {p ".bias", b, false, false}
#define QM_CONV(p, w, b) {p ".weight", w, true, false}, {p ".bias", b, false, false}

const std::vector<Family>& families() {
  static const std::vector<Family> kFamilies = {
      {"llama",
       {"model."},
       {{"embed_tokens.weight", R::kTokenEmbedding, false, false},
        {"norm.weight", R::kFinalNorm, false, false},
        {"layers.{L}.input_layernorm.weight", R::kAttnNorm, false, false},
        {"layers.{L}.post_attention_layernorm.weight", R::kMlpNorm, false, false},
        QM_WB("layers.{L}.self_attn.q_proj", R::kQ, R::kQBias),
        QM_WB("layers.{L}.self_attn.k_proj", R::kK, R::kKBias),
        QM_WB("layers.{L}.self_attn.v_proj", R::kV, R::kVBias),
        QM_WB("layers.{L}.self_attn.o_proj", R::kO, R::kOBias),
        QM_WB("layers.{L}.mlp.gate_proj", R::kGate, R::kGateBias),
        QM_WB("layers.{L}.mlp.up_proj", R::kUp, R::kUpBias),
        QM_WB("layers.{L}.mlp.down_proj", R::kDown, R::kDownBias),
        {"lm_head.weight", R::kLmHead, false, true}}},
      {"gpt2",
       {"transformer.", ""},
       {{"wte.weight", R::kTokenEmbedding, false, false},
        {"wpe.weight", R::kPositionEmbedding, false, false},
        QM_WB("ln_f", R::kFinalNorm, R::kFinalNormBias),
        QM_WB("h.{L}.ln_1", R::kAttnNorm, R::kAttnNormBias),
        QM_CONV("h.{L}.attn.c_attn", R::kQkv, R::kQkvBias),
        QM_CONV("h.{L}.attn.c_proj", R::kO, R::kOBias),
        QM_WB("h.{L}.ln_2", R::kMlpNorm, R::kMlpNormBias),
        QM_CONV("h.{L}.mlp.c_fc", R::kUp, R::kUpBias),
        QM_CONV("h.{L}.mlp.c_proj", R::kDown, R::kDownBias),
        {"lm_head.weight", R::kLmHead, false, true}}},
      {"opt",
       {"model.decoder.", "decoder."},
       {{"embed_tokens.weight", R::kTokenEmbedding, false, false},
        {"embed_positions.weight", R::kPositionEmbedding, false, false},
        {"project_in.weight", R::kProjectIn, false, false},
        {"project_out.weight", R::kProjectOut, false, false},
        QM_WB("final_layer_norm", R::kFinalNorm, R::kFinalNormBias),
        QM_WB("layers.{L}.self_attn_layer_norm", R::kAttnNorm, R::kAttnNormBias),
        QM_WB("layers.{L}.self_attn.q_proj", R::kQ, R::kQBias),
        QM_WB("layers.{L}.self_attn.k_proj", R::kK, R::kKBias),
        QM_WB("layers.{L}.self_attn.v_proj", R::kV, R::kVBias),
        QM_WB("layers.{L}.self_attn.out_proj", R::kO, R::kOBias),
        QM_WB("layers.{L}.final_layer_norm", R::kMlpNorm, R::kMlpNormBias),
        QM_WB("layers.{L}.fc1", R::kUp, R::kUpBias),
        QM_WB("layers.{L}.fc2", R::kDown, R::kDownBias),
        {"lm_head.weight", R::kLmHead, false, true}}},
      {"bloom",
       {"transformer.", ""},
       {{"word_embeddings.weight", R::kTokenEmbedding, false, false},
        QM_WB("word_embeddings_layernorm", R::kEmbedNorm, R::kEmbedNormBias),
        QM_WB("ln_f", R::kFinalNorm, R::kFinalNormBias),
        QM_WB("h.{L}.input_layernorm", R::kAttnNorm, R::kAttnNormBias),
        QM_WB("h.{L}.self_attention.query_key_value", R::kQkv, R::kQkvBias),
        QM_WB("h.{L}.self_attention.dense", R::kO, R::kOBias),
        QM_WB("h.{L}.post_attention_layernorm", R::kMlpNorm, R::kMlpNormBias),
        QM_WB("h.{L}.mlp.dense_h_to_4h", R::kUp, R::kUpBias),
        QM_WB("h.{L}.mlp.dense_4h_to_h", R::kDown, R::kDownBias),
        {"lm_head.weight", R::kLmHead, false, true}}},
      {"gpt_neox",
       {"gpt_neox."},
       {{"embed_in.weight", R::kTokenEmbedding, false, false},
        QM_WB("final_layer_norm", R::kFinalNorm, R::kFinalNormBias),
        QM_WB("layers.{L}.input_layernorm", R::kAttnNorm, R::kAttnNormBias),
        QM_WB("layers.{L}.post_attention_layernorm", R::kMlpNorm, R::kMlpNormBias),
        QM_WB("layers.{L}.attention.query_key_value", R::kQkv, R::kQkvBias),
        QM_WB("layers.{L}.attention.dense", R::kO, R::kOBias),
        QM_WB("layers.{L}.mlp.dense_h_to_4h", R::kUp, R::kUpBias),
        QM_WB("layers.{L}.mlp.dense_4h_to_h", R::kDown, R::kDownBias),
        {"embed_out.weight", R::kLmHead, false, true}}},
      {"falcon",
       {"transformer."},
       {{"word_embeddings.weight", R::kTokenEmbedding, false, false},
        QM_WB("ln_f", R::kFinalNorm, R::kFinalNormBias),
        QM_WB("h.{L}.input_layernorm", R::kAttnNorm, R::kAttnNormBias),
        QM_WB("h.{L}.ln_attn", R::kAttnNorm, R::kAttnNormBias),
        QM_WB("h.{L}.post_attention_layernorm", R::kMlpNorm, R::kMlpNormBias),
        QM_WB("h.{L}.ln_mlp", R::kMlpNorm, R::kMlpNormBias),
        QM_WB("h.{L}.self_attention.query_key_value", R::kQkv, R::kQkvBias),
        QM_WB("h.{L}.self_attention.dense", R::kO, R::kOBias),
        QM_WB("h.{L}.mlp.dense_h_to_4h", R::kUp, R::kUpBias),
        QM_WB("h.{L}.mlp.dense_4h_to_h", R::kDown, R::kDownBias),
        {"lm_head.weight", R::kLmHead, false, true}}},
  };
  return kFamilies;
}

#undef QM_WB
#undef QM_CONV

// Matches `name` (from `pos`) against `pattern`; "{L}" takes a decimal block index.
bool match_pattern(const std::string& name, size_t pos, const char* pattern, int32_t* layer) {
  const char* marker = std::strstr(pattern, "{L}");
  if (marker == nullptr) return name.compare(pos, std::string::npos, pattern) == 0;
  const size_t head = static_cast<size_t>(marker - pattern);
  if (name.compare(pos, head, pattern, head) != 0) return false;
  size_t i = pos + head;
  int64_t value = 0;
  const size_t digits_begin = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9') {
    value = value * 10 + (name[i] - '0');
    if (value > INT32_MAX) return false;
    ++i;
  }
  if (i == digits_begin || (i - digits_begin > 1 && name[digits_begin] == '0')) return false;
  if (name.compare(i, std::string::npos, marker + 3) != 0) return false;
  *layer = static_cast<int32_t>(value);
  return true;
}

}  // namespace

const std::vector<std::string>& known_families() {
  static const std::vector<std::string> kNames = [] {
    std::vector<std::string> names;
    for (const Family& f : families()) names.emplace_back(f.name);
    return names;
  }();
  return kNames;
}

RoleMatch match_tensor_role(const std::string& family, const std::string& name) {
  for (const Family& f : families()) {
    if (family != f.name) continue;
    for (const Entry& e : f.entries) {
      for (const char* prefix : f.prefixes) {
        const size_t n = e.root ? 0 : std::strlen(prefix);
        if (n > 0 && name.compare(0, n, prefix) != 0) continue;
        int32_t layer = -1;
        if (match_pattern(name, n, e.pattern, &layer)) return RoleMatch{e.role, layer, e.transpose};
        if (e.root) break;
      }
    }
  }
  return RoleMatch{};
}

std::vector<TensorRole> required_layer_roles(const ArchSpec& a) {
  std::vector<TensorRole> roles;
  if (a.residual != ResidualLayout::kParallelSharedNorm) roles.push_back(R::kMlpNorm);
  roles.push_back(R::kAttnNorm);
  if (a.qkv == QkvLayout::kSeparate) {
    roles.insert(roles.end(), {R::kQ, R::kK, R::kV});
  } else {
    roles.push_back(R::kQkv);
  }
  roles.insert(roles.end(), {R::kO, R::kUp, R::kDown});
  if (a.mlp == MlpKind::kGated) roles.push_back(R::kGate);
  // LayerNorm without elementwise_affine has no weight: only RMSNorm's weight is required.
  if (a.norm == NormKind::kLayerNorm) {
    std::vector<TensorRole> kept;
    for (TensorRole r : roles) {
      if (r != R::kAttnNorm && r != R::kMlpNorm) kept.push_back(r);
    }
    roles = kept;
  }
  return roles;
}

std::vector<TensorRole> required_model_roles(const ArchSpec& a, bool tied_lm_head) {
  std::vector<TensorRole> roles = {R::kTokenEmbedding};
  if (!tied_lm_head) roles.push_back(R::kLmHead);
  if (a.positions == PositionKind::kLearned) roles.push_back(R::kPositionEmbedding);
  if (a.project_in_out) roles.insert(roles.end(), {R::kProjectIn, R::kProjectOut});
  if (a.norm == NormKind::kRMSNorm && a.final_norm) roles.push_back(R::kFinalNorm);
  return roles;
}

ArchSpec llama_arch(uint32_t head_dim, uint32_t hidden_size, float rms_norm_eps) {
  ArchSpec a;
  a.family = "llama";
  a.norm = NormKind::kRMSNorm;
  a.norm_eps = rms_norm_eps;
  a.residual = ResidualLayout::kSequential;
  a.qkv = QkvLayout::kSeparate;
  a.positions = PositionKind::kRope;
  a.rotary_dim = head_dim;
  a.mlp = MlpKind::kGated;
  a.activation = Activation::kSilu;
  a.final_norm = true;
  a.embed_dim = hidden_size;
  return a;
}

}  // namespace qmodel::format
