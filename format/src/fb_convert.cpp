// ModelHeader <-> FlatBuffer conversion, and the FlatBuffers verifier call (see fb_convert.h).
// Every table and every string/vector is always written (empty when unset) and scalars use
// force_defaults, so a header's serialised size depends only on string and vector lengths.
#include "fb_convert.h"

#include <flatbuffers/flatbuffers.h>

#include <cstring>
#include <string>

#include "codec.h"
#include "qmodel/format/preamble.h"
#include "qmodel/qmodel_generated.h"

namespace qmodel::format {

// The hand-written enums (quant_blocks.h, types.h) must equal the schema's, value for value.
#define QMODEL_SAME_ENUM(ours, theirs) \
  static_assert(static_cast<int>(ours) == static_cast<int>(theirs), #ours " != " #theirs)
QMODEL_SAME_ENUM(SourceDType::kF32, fb::SourceDType::F32);
QMODEL_SAME_ENUM(SourceDType::kF16, fb::SourceDType::F16);
QMODEL_SAME_ENUM(SourceDType::kBF16, fb::SourceDType::BF16);
QMODEL_SAME_ENUM(kMaxSourceDType, fb::SourceDType::MAX);
QMODEL_SAME_ENUM(StorageType::kF32, fb::StorageType::F32);
QMODEL_SAME_ENUM(StorageType::kF16, fb::StorageType::F16);
QMODEL_SAME_ENUM(StorageType::kBF16, fb::StorageType::BF16);
QMODEL_SAME_ENUM(StorageType::kNF4, fb::StorageType::NF4);
QMODEL_SAME_ENUM(StorageType::kFP4, fb::StorageType::FP4);
QMODEL_SAME_ENUM(StorageType::kINT8, fb::StorageType::INT8);
QMODEL_SAME_ENUM(kMaxStorageType, fb::StorageType::MAX);
QMODEL_SAME_ENUM(ComputeDType::kBF16, fb::ComputeDType::BF16);
QMODEL_SAME_ENUM(ComputeDType::kF16, fb::ComputeDType::F16);
QMODEL_SAME_ENUM(ComputeDType::kF32, fb::ComputeDType::F32);
QMODEL_SAME_ENUM(kMaxComputeDType, fb::ComputeDType::MAX);
QMODEL_SAME_ENUM(Layout::kRowMajor, fb::Layout::RowMajor);
QMODEL_SAME_ENUM(kMaxLayout, fb::Layout::MAX);
QMODEL_SAME_ENUM(BlobRole::kData, fb::BlobRole::Data);
QMODEL_SAME_ENUM(BlobRole::kAbsmax, fb::BlobRole::Absmax);
QMODEL_SAME_ENUM(BlobRole::kAbsmaxCodes, fb::BlobRole::AbsmaxCodes);
QMODEL_SAME_ENUM(BlobRole::kNestedAbsmax, fb::BlobRole::NestedAbsmax);
QMODEL_SAME_ENUM(BlobRole::kRowScale, fb::BlobRole::RowScale);
QMODEL_SAME_ENUM(kMaxBlobRole, fb::BlobRole::MAX);
QMODEL_SAME_ENUM(Compression::kNone, fb::Compression::None);
QMODEL_SAME_ENUM(Compression::kZstd, fb::Compression::Zstd);
QMODEL_SAME_ENUM(kMaxCompression, fb::Compression::MAX);
#undef QMODEL_SAME_ENUM

namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using flatbuffers::String;
using flatbuffers::Vector;

// Verifier limits: a real header nests 5 deep (Model > [Tensor] > Tensor > [Blob] > Blob) and has
// about 5 tables per tensor; these bounds leave ample room and stop pathological buffers.
constexpr flatbuffers::uoffset_t kMaxVerifierDepth = 32;
constexpr flatbuffers::uoffset_t kMaxVerifierTables = 1u << 18;

template <typename To, typename From>
To cast_enum(From e) {
  return static_cast<To>(static_cast<uint8_t>(e));
}

// ---- serialisation ------------------------------------------------------------------------------

Offset<Vector<Offset<String>>> build_strings(FlatBufferBuilder& fbb, const std::vector<std::string>& in) {
  std::vector<Offset<String>> out;
  out.reserve(in.size());
  for (const std::string& s : in) out.push_back(fbb.CreateString(s));
  return fbb.CreateVector(out);
}

Offset<fb::Tensor> build_tensor(FlatBufferBuilder& fbb, const TensorInfo& t) {
  const auto name = fbb.CreateString(t.name);
  const auto shape = fbb.CreateVector(t.shape);
  const QuantParams& q = t.quant;
  const auto code_table = fbb.CreateVector(q.code_table);
  const auto nested_code_table = fbb.CreateVector(q.nested_code_table);
  const auto quant = fb::CreateQuantParams(fbb, q.block_size, code_table, q.double_quant,
                                           q.nested_block_size, q.nested_offset, nested_code_table);
  std::vector<Offset<fb::Blob>> blobs;
  blobs.reserve(t.blobs.size());
  for (const BlobRef& b : t.blobs) {
    blobs.push_back(fb::CreateBlob(fbb, cast_enum<fb::BlobRole>(b.role), b.offset, b.stored_size,
                                   b.raw_size, cast_enum<fb::Compression>(b.compression), b.xxh3));
  }
  const auto blob_vector = fbb.CreateVector(blobs);
  return fb::CreateTensor(fbb, name, shape, cast_enum<fb::SourceDType>(t.source_dtype),
                          cast_enum<fb::StorageType>(t.storage), cast_enum<fb::Layout>(t.layout), quant,
                          blob_vector, cast_enum<fb::TensorRole>(t.role), t.layer, t.transposed);
}

Offset<fb::Architecture> build_architecture(FlatBufferBuilder& fbb, const ArchSpec& a) {
  const auto family = fbb.CreateString(a.family);
  return fb::CreateArchitecture(fbb, family, cast_enum<fb::NormKind>(a.norm), a.norm_eps,
                                cast_enum<fb::ResidualLayout>(a.residual), a.residual_from_norm,
                                cast_enum<fb::QkvLayout>(a.qkv), cast_enum<fb::PositionKind>(a.positions),
                                a.rotary_dim, a.learned_offset, a.alibi_scaled, a.attn_scale,
                                cast_enum<fb::MlpKind>(a.mlp), cast_enum<fb::Activation>(a.activation), a.final_norm,
                                a.embed_norm, a.project_in_out, a.embed_dim);
}

Offset<fb::ModelConfig> build_config(FlatBufferBuilder& fbb, const ModelConfig& c) {
  const auto architecture = fbb.CreateString(c.architecture);
  const auto model_type = fbb.CreateString(c.model_type);
  const RopeScaling& r = c.rope_scaling;
  const auto rope_type = fbb.CreateString(r.type);
  const auto rope = fb::CreateRopeScaling(fbb, rope_type, r.factor, r.low_freq_factor, r.high_freq_factor,
                                          r.original_max_position_embeddings);
  const auto hidden_act = fbb.CreateString(c.hidden_act);
  const auto eos = fbb.CreateVector(c.eos_token_ids);
  const auto torch_dtype = fbb.CreateString(c.torch_dtype);
  return fb::CreateModelConfig(fbb, architecture, model_type, c.hidden_size, c.intermediate_size, c.n_layers,
                               c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size, c.max_position_embeddings,
                               c.rms_norm_eps, c.rope_theta, rope, c.tie_word_embeddings, c.attention_bias,
                               c.mlp_bias, hidden_act, c.sliding_window, c.bos_token_id, eos, c.pad_token_id,
                               torch_dtype);
}

Offset<fb::GenerationDefaults> build_generation(FlatBufferBuilder& fbb, const GenerationDefaults& g) {
  const auto eos = fbb.CreateVector(g.eos_token_ids);
  return fb::CreateGenerationDefaults(fbb, g.do_sample, g.temperature, g.top_k, g.top_p, g.repetition_penalty,
                                      g.max_new_tokens, eos);
}

Offset<fb::QuantSettings> build_quant_settings(FlatBufferBuilder& fbb, const QuantSettings& s) {
  const auto skip = build_strings(fbb, s.skip_patterns);
  return fb::CreateQuantSettings(fbb, cast_enum<fb::StorageType>(s.quant), s.block_size, s.double_quant,
                                 cast_enum<fb::ComputeDType>(s.compute_dtype), skip, s.quantize_lm_head,
                                 cast_enum<fb::Compression>(s.compression));
}

Offset<fb::Provenance> build_provenance(FlatBufferBuilder& fbb, const Provenance& p) {
  const auto converter = fbb.CreateString(p.converter);
  const auto options = fbb.CreateString(p.options);
  std::vector<Offset<fb::SourceFile>> files;
  files.reserve(p.source_files.size());
  for (const SourceFile& f : p.source_files) {
    files.push_back(fb::CreateSourceFile(fbb, fbb.CreateString(f.name), f.size, f.xxh3));
  }
  return fb::CreateProvenance(fbb, converter, options, fbb.CreateVector(files));
}

Result<Offset<Vector<Offset<fb::EmbeddedFile>>>> build_files(FlatBufferBuilder& fbb,
                                                              const std::vector<EmbeddedFile>& in) {
  ZstdCompressor compressor;
  std::vector<uint8_t> compressed;
  std::vector<Offset<fb::EmbeddedFile>> files;
  files.reserve(in.size());
  for (const EmbeddedFile& f : in) {
    const ByteSpan raw(reinterpret_cast<const uint8_t*>(f.contents.data()), f.contents.size());
    QMODEL_RETURN_IF_ERROR(compressor.compress(raw, kEmbeddedFileZstdLevel, compressed));
    if (fbb.GetSize() + compressed.size() > kMaxHeaderBytes) {
      return Status(StatusCode::kInvalidArgument, "embedded files exceed the " +
                                                      std::to_string(kMaxHeaderBytes >> 20) +
                                                      " MiB header limit (at '" + f.name + "')");
    }
    const auto name = fbb.CreateString(f.name);
    const auto data = fbb.CreateVector(compressed);
    files.push_back(fb::CreateEmbeddedFile(fbb, name, fb::Compression::Zstd, f.contents.size(), data));
  }
  return fbb.CreateVector(files);
}

// ---- decoding -----------------------------------------------------------------------------------

// Copies a verified buffer into structs. FlatBuffers lets many references share one string, vector
// or table, so a small buffer could decode into gigabytes; an honest header (ours never shares)
// holds every payload byte once, so payload bytes are charged against the header size and the
// verifier's table limit bounds the number of structs.
class Decoder {
 public:
  explicit Decoder(ByteSpan buffer) : buffer_(buffer), budget_(buffer.size()) {}
  bool over_budget() const { return over_budget_; }
  uint64_t offset_of(const void* table) const {
    return static_cast<uint64_t>(static_cast<const uint8_t*>(table) - buffer_.data());
  }

  std::string str(const String* s, const char* fallback = "") {
    if (!s) return fallback;
    if (!charge(s->size())) return std::string();
    return std::string(s->data(), s->size());
  }

  // memcpy, not element reads: the verifier aligns a vector's length field to 4 bytes only, so a
  // hostile [ulong] may be misaligned for 8-byte loads.
  template <typename T>
  std::vector<T> vec(const Vector<T>* v) {
    static_assert(FLATBUFFERS_LITTLEENDIAN, "the decoder copies little-endian scalars as they are");
    if (!v || !charge(uint64_t{v->size()} * sizeof(T))) return {};
    std::vector<T> out(v->size());
    if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
    return out;
  }

  TensorInfo tensor(const fb::Tensor& t);
  void config(const fb::ModelConfig& c, ModelConfig& out);
  void generation(const fb::GenerationDefaults& g, GenerationDefaults& out);
  void quant_settings(const fb::QuantSettings& s, QuantSettings& out);
  void provenance(const fb::Provenance& p, Provenance& out);
  void architecture(const fb::Architecture& a, ArchSpec& out);

 private:
  bool charge(uint64_t n_bytes) {
    if (n_bytes > budget_) over_budget_ = true;
    if (over_budget_) return false;
    budget_ -= n_bytes;
    return true;
  }

  ByteSpan buffer_;
  uint64_t budget_;
  bool over_budget_ = false;
};

TensorInfo Decoder::tensor(const fb::Tensor& t) {
  TensorInfo out;
  out.name = str(t.name());
  out.shape = vec(t.shape());
  out.source_dtype = cast_enum<SourceDType>(t.source_dtype());
  out.storage = cast_enum<StorageType>(t.storage());
  out.layout = cast_enum<Layout>(t.layout());
  if (const fb::QuantParams* q = t.quant()) {
    out.quant.block_size = q->block_size();
    out.quant.code_table = vec(q->code_table());
    out.quant.double_quant = q->double_quant();
    out.quant.nested_block_size = q->nested_block_size();
    out.quant.nested_offset = q->nested_offset();
    out.quant.nested_code_table = vec(q->nested_code_table());
  }
  out.role = cast_enum<TensorRole>(t.role());
  out.layer = t.layer();
  out.transposed = t.transposed();
  if (const auto* blobs = t.blobs()) {
    out.blobs.reserve(blobs->size());
    for (const fb::Blob* b : *blobs) {
      BlobRef ref;
      ref.role = cast_enum<BlobRole>(b->role());
      ref.offset = b->offset();
      ref.stored_size = b->stored_size();
      ref.raw_size = b->raw_size();
      ref.compression = cast_enum<Compression>(b->compression());
      ref.xxh3 = b->xxh3();
      out.blobs.push_back(ref);
    }
  }
  return out;
}

void Decoder::config(const fb::ModelConfig& c, ModelConfig& out) {
  out.architecture = str(c.architecture());
  out.model_type = str(c.model_type());
  out.hidden_size = c.hidden_size();
  out.intermediate_size = c.intermediate_size();
  out.n_layers = c.n_layers();
  out.n_heads = c.n_heads();
  out.n_kv_heads = c.n_kv_heads();
  out.head_dim = c.head_dim();
  out.vocab_size = c.vocab_size();
  out.max_position_embeddings = c.max_position_embeddings();
  out.rms_norm_eps = c.rms_norm_eps();
  out.rope_theta = c.rope_theta();
  if (const fb::RopeScaling* r = c.rope_scaling()) {
    out.rope_scaling.type = str(r->type(), "default");
    out.rope_scaling.factor = r->factor();
    out.rope_scaling.low_freq_factor = r->low_freq_factor();
    out.rope_scaling.high_freq_factor = r->high_freq_factor();
    out.rope_scaling.original_max_position_embeddings = r->original_max_position_embeddings();
  }
  out.tie_word_embeddings = c.tie_word_embeddings();
  out.attention_bias = c.attention_bias();
  out.mlp_bias = c.mlp_bias();
  out.hidden_act = str(c.hidden_act(), "silu");
  out.sliding_window = c.sliding_window();
  out.bos_token_id = c.bos_token_id();
  out.eos_token_ids = vec(c.eos_token_ids());
  out.pad_token_id = c.pad_token_id();
  out.torch_dtype = str(c.torch_dtype());
}

void Decoder::generation(const fb::GenerationDefaults& g, GenerationDefaults& out) {
  out.do_sample = g.do_sample();
  out.temperature = g.temperature();
  out.top_k = g.top_k();
  out.top_p = g.top_p();
  out.repetition_penalty = g.repetition_penalty();
  out.max_new_tokens = g.max_new_tokens();
  out.eos_token_ids = vec(g.eos_token_ids());
}

void Decoder::quant_settings(const fb::QuantSettings& s, QuantSettings& out) {
  out.quant = cast_enum<StorageType>(s.quant());
  out.block_size = s.block_size();
  out.double_quant = s.double_quant();
  out.compute_dtype = cast_enum<ComputeDType>(s.compute_dtype());
  if (const auto* skip = s.skip_patterns()) {
    for (const String* p : *skip) out.skip_patterns.push_back(str(p));
  }
  out.quantize_lm_head = s.quantize_lm_head();
  out.compression = cast_enum<Compression>(s.compression());
}

void Decoder::provenance(const fb::Provenance& p, Provenance& out) {
  out.converter = str(p.converter());
  out.options = str(p.options());
  if (const auto* files = p.source_files()) {
    for (const fb::SourceFile* f : *files) out.source_files.push_back({str(f->name()), f->size(), f->xxh3()});
  }
}

void Decoder::architecture(const fb::Architecture& a, ArchSpec& out) {
  out.family = str(a.family());
  out.norm = cast_enum<NormKind>(a.norm());
  out.norm_eps = a.norm_eps();
  out.residual = cast_enum<ResidualLayout>(a.residual());
  out.residual_from_norm = a.residual_from_norm();
  out.qkv = cast_enum<QkvLayout>(a.qkv());
  out.positions = cast_enum<PositionKind>(a.positions());
  out.rotary_dim = a.rotary_dim();
  out.learned_offset = a.learned_offset();
  out.alibi_scaled = a.alibi_scaled();
  out.attn_scale = a.attn_scale();
  out.mlp = cast_enum<MlpKind>(a.mlp());
  out.activation = cast_enum<Activation>(a.activation());
  out.final_norm = a.final_norm();
  out.embed_norm = a.embed_norm();
  out.project_in_out = a.project_in_out();
  out.embed_dim = a.embed_dim();
}

}  // namespace

Result<std::vector<uint8_t>> serialize_header(const ModelHeader& header) {
  FlatBufferBuilder fbb(1 << 16);
  fbb.ForceDefaults(true);
  // Children first (FlatBuffers builds back to front); the order is fixed, so output is deterministic.
  QMODEL_ASSIGN_OR_RETURN(const auto files, build_files(fbb, header.files));
  std::vector<Offset<fb::Tensor>> tensors;
  tensors.reserve(header.tensors.size());
  for (const TensorInfo& t : header.tensors) tensors.push_back(build_tensor(fbb, t));
  const auto tensor_vector = fbb.CreateVector(tensors);
  const auto config = build_config(fbb, header.config);
  const auto generation = build_generation(fbb, header.generation);
  const auto quant_settings = build_quant_settings(fbb, header.quant_settings);
  const auto provenance = build_provenance(fbb, header.provenance);
  const auto architecture = build_architecture(fbb, header.arch);
  const auto model = fb::CreateModel(fbb, header.format_version, header.alignment, config, generation,
                                     quant_settings, provenance, files, tensor_vector, architecture);
  fb::FinishModelBuffer(fbb, model);
  if (fbb.GetSize() > kMaxHeaderBytes) {
    return Status(StatusCode::kInvalidArgument, "header is " + std::to_string(fbb.GetSize()) +
                                                    " bytes, more than the " +
                                                    std::to_string(kMaxHeaderBytes >> 20) + " MiB limit");
  }
  const uint8_t* p = fbb.GetBufferPointer();
  return std::vector<uint8_t>(p, p + fbb.GetSize());
}

bool verify_flatbuffer(ByteSpan header_bytes) {
  flatbuffers::Verifier verifier(header_bytes.data(), header_bytes.size(), kMaxVerifierDepth,
                                 kMaxVerifierTables, /*check_alignment=*/true);
  return fb::VerifyModelBuffer(verifier);
}

Result<DecodedHeader> decode_header(ByteSpan verified_header_bytes) {
  const fb::Model* model = fb::GetModel(verified_header_bytes.data());
  Decoder d(verified_header_bytes);
  DecodedHeader out;
  ModelHeader& h = out.header;
  h.format_version = model->format_version();
  h.alignment = model->alignment();
  if (const auto* c = model->config()) d.config(*c, h.config);
  if (const auto* g = model->generation()) d.generation(*g, h.generation);
  if (const auto* s = model->quant_settings()) d.quant_settings(*s, h.quant_settings);
  if (const auto* p = model->provenance()) d.provenance(*p, h.provenance);
  out.has_architecture = model->architecture() != nullptr;
  if (const auto* a = model->architecture()) d.architecture(*a, h.arch);
  if (const auto* files = model->files()) {
    for (const fb::EmbeddedFile* f : *files) {
      StoredFile sf;
      sf.name = d.str(f->name());
      sf.compression = cast_enum<Compression>(f->compression());
      sf.raw_size = f->raw_size();
      if (const auto* data = f->data()) sf.data = ByteSpan(data->data(), data->size());
      sf.header_offset = d.offset_of(f);
      out.stored_files.push_back(std::move(sf));
    }
  }
  const auto* tensors = model->tensors();  // required, so present in a verified buffer
  h.tensors.reserve(tensors->size());
  out.tensor_offsets.reserve(tensors->size());
  for (const fb::Tensor* t : *tensors) {
    h.tensors.push_back(d.tensor(*t));
    out.tensor_offsets.push_back(d.offset_of(t));
  }
  if (d.over_budget()) {
    return Status(StatusCode::kCorruptFile, "FlatBuffer shares data between fields (decodes to more bytes than the header holds)");
  }
  return out;
}

}  // namespace qmodel::format
