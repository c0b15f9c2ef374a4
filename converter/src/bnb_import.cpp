// bitsandbytes folder -> .qmodel, blobs copied byte for byte (bnb_import.h has the mapping).
#include "qmodel/converter/bnb_import.h"

#include <sys/stat.h>
#include <xxhash.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/checkpoint.h"
#include "qmodel/converter/hf_config.h"
#include "qmodel/converter/planner.h"
#include "qmodel/converter/safetensors.h"
#include "qmodel/format/tensor_roles.h"
#include "qmodel/format/writer.h"
#include "strict_json.h"
#include "side_files.h"
#include "text_file.h"

#ifndef QMODEL_VERSION_STRING
#define QMODEL_VERSION_STRING "dev"
#endif

namespace qmodel::converter {
namespace {

using nlohmann::json;
using format::BlobRole;

constexpr const char* kQuantStateInfix = ".quant_state.";

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status bad_tensor(const TensorEntry& t, const std::string& what) {
  return Status(StatusCode::kCorruptFile,
                error_location(t.file, t.name, static_cast<int64_t>(t.file_offset)) + ": " + what);
}

Status bad_name(const std::string& name, const std::string& what) {
  return Status(StatusCode::kCorruptFile, "bitsandbytes tensor '" + name + "': " + what);
}

// ---- the folder's safetensors files, U8/I8 entries included --------------------------------

struct BnbFiles {
  std::vector<std::unique_ptr<SafetensorsFile>> files;  // shard order (sorted names)
  std::vector<std::string> names;
  std::vector<const TensorEntry*> tensors;               // shard order, then data offset
  std::map<std::string, const TensorEntry*> by_name;
  std::string index_text;                                // empty without an index
};

Result<BnbFiles> open_bnb_files(const std::string& dir) {
  SafetensorsOptions so;
  so.allow_u8_i8 = true;
  BnbFiles out;
  std::set<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  const std::string index_path = dir + "/" + kIndexFileName;
  Result<std::string> index_text = read_text_file_capped(index_path, kMaxIndexFileBytes);
  if (index_text.ok()) {
    out.index_text = index_text.value();
    QMODEL_ASSIGN_OR_RETURN(json index, parse_strict_json(out.index_text, index_path, 0));
    const auto wm = index.is_object() ? index.find("weight_map") : index.end();
    if (!index.is_object() || wm == index.end() || !wm->is_object() || wm->empty()) {
      return corrupt_file(index_path, "", -1, "needs a non-empty 'weight_map' object");
    }
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const std::string shard = it.value().is_string() ? it.value().get<std::string>() : std::string();
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "." || shard == "..") {
        return corrupt_file(index_path, it.key(), -1, "'weight_map' value must be a file name in the same folder");
      }
      weight_map[it.key()] = shard;
      shard_names.insert(shard);
    }
  } else if (index_text.status().code() == StatusCode::kNotFound) {
    shard_names.insert(kSingleFileName);
  } else {
    return index_text.status();
  }
  for (const std::string& name : shard_names) {
    std::unique_ptr<SafetensorsFile> f;
    QMODEL_ASSIGN_OR_RETURN(f, SafetensorsFile::open(dir + "/" + name, so));
    out.names.push_back(name);
    out.files.push_back(std::move(f));
  }
  for (size_t s = 0; s < out.files.size(); ++s) {
    for (const TensorEntry& t : out.files[s]->tensors()) {
      if (!out.by_name.emplace(t.name, &t).second) {
        return bad_tensor(t, "appears in two safetensors files");
      }
      if (!weight_map.empty()) {
        const auto it = weight_map.find(t.name);
        if (it == weight_map.end() || it->second != out.names[s]) {
          return bad_tensor(t, "the index does not list this tensor in " + out.names[s]);
        }
      }
      out.tensors.push_back(&t);
    }
  }
  for (const auto& [name, shard] : weight_map) {
    if (!out.by_name.count(name)) return corrupt_file(index_path, name, -1, "indexed in " + shard + " but not there");
  }
  return out;
}

// ---- quantized tensors -------------------------------------------------------------------

struct BnbTensor {
  std::string name;                // the module's weight name
  const TensorEntry* data = nullptr;
  StorageType storage = StorageType::kNF4;
  std::vector<uint64_t> shape;     // logical [out, in]
  SourceDType source_dtype = SourceDType::kF32;
  format::QuantParams quant;
  std::vector<std::pair<BlobRole, const TensorEntry*>> blobs;
};

std::optional<SourceDType> torch_dtype(const std::string& s) {
  if (s == "float32") return SourceDType::kF32;
  if (s == "float16") return SourceDType::kF16;
  if (s == "bfloat16") return SourceDType::kBF16;
  return std::nullopt;
}

std::vector<float> f32_values(const TensorEntry& t) {
  std::vector<float> v(t.bytes.size() / 4);
  std::memcpy(v.data(), t.bytes.data(), v.size() * 4);
  return v;
}

class FolderReader {
 public:
  explicit FolderReader(const BnbFiles& files) : files_(files) {}

  const TensorEntry* find(const std::string& name) const {
    const auto it = files_.by_name.find(name);
    return it == files_.by_name.end() ? nullptr : it->second;
  }

  // The tensor `name`, which must exist with dtype `dtype` and shape `shape`.
  Result<const TensorEntry*> expect(const std::string& owner, const std::string& name, StDType dtype,
                                    const std::vector<uint64_t>& shape) {
    const TensorEntry* t = find(name);
    if (!t) return bad_name(owner, "missing its tensor '" + name + "'");
    if (t->st_dtype != dtype || t->shape != shape) {
      return bad_tensor(*t, std::string("expected ") + st_dtype_name(dtype) + " " + shape_string(shape) + ", found " +
                                st_dtype_name(t->st_dtype) + " " + shape_string(t->shape));
    }
    claimed_.insert(name);
    return t;
  }

  Result<BnbTensor> read_4bit(const TensorEntry& state) {
    const size_t at = state.name.rfind(kQuantStateInfix);
    BnbTensor b;
    b.name = state.name.substr(0, at);
    const std::string kind = state.name.substr(at + std::strlen(kQuantStateInfix));
    std::string quant_type;
    if (kind == "bitsandbytes__nf4") {
      b.storage = StorageType::kNF4, quant_type = "nf4";
    } else if (kind == "bitsandbytes__fp4") {
      b.storage = StorageType::kFP4, quant_type = "fp4";
    } else {
      return bad_tensor(state, "unknown quant_state '" + kind + "' (bitsandbytes__nf4 or bitsandbytes__fp4)");
    }
    if (state.st_dtype != StDType::kU8 || state.shape.size() != 1) {
      return bad_tensor(state, "a quant_state must be a 1-D U8 tensor of JSON bytes");
    }
    claimed_.insert(state.name);
    const std::string_view text(reinterpret_cast<const char*>(state.bytes.data()), state.bytes.size());
    Result<json> parsed = parse_strict_json(text, state.file, static_cast<int64_t>(state.file_offset));
    if (!parsed.ok()) return bad_tensor(state, "quant_state is not JSON: " + parsed.status().message());
    const json& j = parsed.value();
    if (!j.is_object()) return bad_tensor(state, "quant_state JSON must be an object");
    auto field = [&](const char* key) -> const json* {
      const auto it = j.find(key);
      return it == j.end() ? nullptr : &*it;
    };
    const json* qt = field("quant_type");
    if (!qt || !qt->is_string() || qt->get<std::string>() != quant_type) {
      return bad_tensor(state, "quant_state 'quant_type' must be \"" + quant_type + "\" (as the tensor name says)");
    }
    const json* bs = field("blocksize");
    if (!bs || !bs->is_number_unsigned() || !is_valid_4bit_block_size(bs->get<uint64_t>())) {
      return bad_tensor(state, "quant_state 'blocksize' must be a power of two from 32 to 4096");
    }
    b.quant.block_size = bs->get<uint32_t>();
    const json* dt = field("dtype");
    const std::optional<SourceDType> sdt = dt && dt->is_string() ? torch_dtype(dt->get<std::string>()) : std::nullopt;
    if (!sdt) return bad_tensor(state, "quant_state 'dtype' must be \"float32\", \"float16\" or \"bfloat16\"");
    b.source_dtype = *sdt;
    const json* sh = field("shape");
    if (!sh || !sh->is_array() || sh->size() != 2 || !(*sh)[0].is_number_unsigned() || !(*sh)[1].is_number_unsigned() ||
        (*sh)[0].get<uint64_t>() == 0 || (*sh)[1].get<uint64_t>() == 0 || (*sh)[0].get<uint64_t>() > (1ull << 31) ||
        (*sh)[1].get<uint64_t>() > (1ull << 31)) {
      return bad_tensor(state, "quant_state 'shape' must be [out, in] with positive sizes");
    }
    b.shape = {(*sh)[0].get<uint64_t>(), (*sh)[1].get<uint64_t>()};
    const uint64_t n = b.shape[0] * b.shape[1];
    const uint64_t n_blocks = ceil_div(n, b.quant.block_size);
    const bool nested = field("nested_offset") || field("nested_blocksize") || field("nested_dtype");

    QMODEL_ASSIGN_OR_RETURN(b.data, expect(b.name, b.name, StDType::kU8, {packed_4bit_bytes(n), 1}));
    const TensorEntry* qmap = nullptr;
    QMODEL_ASSIGN_OR_RETURN(qmap, expect(b.name, b.name + ".quant_map", StDType::kF32, {16}));
    b.quant.code_table = f32_values(*qmap);
    for (float v : b.quant.code_table) {
      if (!std::isfinite(v)) return bad_tensor(*qmap, "quant_map holds a non-finite value");
    }
    const TensorEntry* absmax = nullptr;
    QMODEL_ASSIGN_OR_RETURN(absmax, expect(b.name, b.name + ".absmax", nested ? StDType::kU8 : StDType::kF32, {n_blocks}));
    b.blobs.push_back({BlobRole::kData, b.data});
    if (!nested) {
      for (const char* extra : {".nested_absmax", ".nested_quant_map"}) {
        if (find(b.name + extra)) return bad_name(b.name, std::string("has '") + extra + "' but its quant_state is not nested");
      }
      b.blobs.push_back({BlobRole::kAbsmax, absmax});
      return b;
    }
    const json* nbs = field("nested_blocksize");
    if (!nbs || !nbs->is_number_unsigned() || nbs->get<uint64_t>() != kNestedBlockSize) {
      return bad_tensor(state, "quant_state 'nested_blocksize' must be 256");
    }
    const json* ndt = field("nested_dtype");
    if (!ndt || !ndt->is_string() || ndt->get<std::string>() != "float32") {
      return bad_tensor(state, "quant_state 'nested_dtype' must be \"float32\"");
    }
    const json* off = field("nested_offset");
    if (!off || !off->is_number() || !std::isfinite(off->get<double>())) {
      return bad_tensor(state, "quant_state 'nested_offset' must be a finite number");
    }
    b.quant.double_quant = true;
    b.quant.nested_block_size = kNestedBlockSize;
    // bnb writes absmax.mean().item(): a float32 value widened to double, so this is exact.
    b.quant.nested_offset = static_cast<float>(off->get<double>());
    const TensorEntry* nested_absmax = nullptr;
    const TensorEntry* nested_map = nullptr;
    QMODEL_ASSIGN_OR_RETURN(nested_absmax, expect(b.name, b.name + ".nested_absmax", StDType::kF32,
                                                  {ceil_div(n_blocks, kNestedBlockSize)}));
    QMODEL_ASSIGN_OR_RETURN(nested_map, expect(b.name, b.name + ".nested_quant_map", StDType::kF32, {kDynamicMapSize}));
    b.quant.nested_code_table = f32_values(*nested_map);
    for (float v : b.quant.nested_code_table) {
      if (!std::isfinite(v)) return bad_tensor(*nested_map, "nested_quant_map holds a non-finite value");
    }
    b.blobs.push_back({BlobRole::kAbsmaxCodes, absmax});
    b.blobs.push_back({BlobRole::kNestedAbsmax, nested_absmax});
    return b;
  }

  Result<BnbTensor> read_int8(const TensorEntry& scb, SourceDType source_dtype) {
    const std::string module = scb.name.substr(0, scb.name.size() - std::strlen(".SCB"));
    BnbTensor b;
    b.name = module + ".weight";
    b.storage = StorageType::kINT8;
    b.source_dtype = source_dtype;
    const TensorEntry* w = find(b.name);
    if (!w) return bad_name(scb.name, "has no weight '" + b.name + "'");
    if (w->st_dtype != StDType::kI8 || w->shape.size() != 2 || w->shape[0] == 0 || w->shape[1] == 0) {
      return bad_tensor(*w, std::string("an LLM.int8 weight must be I8 [out, in], found ") + st_dtype_name(w->st_dtype) +
                                " " + shape_string(w->shape));
    }
    claimed_.insert(b.name);
    b.data = w;
    b.shape = w->shape;
    QMODEL_ASSIGN_OR_RETURN(const TensorEntry* s, expect(b.name, scb.name, StDType::kF32, {w->shape[0]}));
    if (const TensorEntry* format = find(module + ".weight_format")) {
      if (format->st_dtype != StDType::kU8 || format->bytes.size() != 1 || format->shape.size() > 1) {
        return bad_tensor(*format, "weight_format must be a U8 scalar");
      }
      if (format->bytes[0] != 0) {
        return bad_tensor(*format, "weight_format " + std::to_string(format->bytes[0]) +
                                       " is a GPU tile layout; only 0 (row-major) is supported");
      }
      claimed_.insert(format->name);
    }
    b.blobs.push_back({BlobRole::kData, w});
    b.blobs.push_back({BlobRole::kRowScale, s});
    return b;
  }

  bool claimed(const std::string& name) const { return claimed_.count(name) != 0; }

 private:
  const BnbFiles& files_;
  std::set<std::string> claimed_;
};

struct QuantizationConfig {
  std::optional<ComputeDType> compute_dtype;
  std::string summary;  // compact JSON for provenance
};

Result<QuantizationConfig> read_quantization_config(const std::string& config_text, const std::string& file) {
  QMODEL_ASSIGN_OR_RETURN(json root, parse_strict_json(config_text, file, 0));
  QuantizationConfig q;
  const auto qc_it = root.is_object() ? root.find("quantization_config") : root.end();
  if (qc_it == root.end() || !qc_it->is_object()) return corrupt_file(file, "", -1, "'quantization_config' must be an object");
  const json& qc = *qc_it;
  q.summary = qc.dump();
  const auto cd = qc.find("bnb_4bit_compute_dtype");
  if (cd != qc.end() && cd->is_string()) {
    const std::string s = cd->get<std::string>();
    if (s == "float32") q.compute_dtype = ComputeDType::kF32;
    if (s == "float16") q.compute_dtype = ComputeDType::kF16;
    if (s == "bfloat16") q.compute_dtype = ComputeDType::kBF16;
  }
  return q;
}


ByteSpan as_span(const std::string& s) { return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

Status check_request(const BnbTensor& b, const BnbImportRequest& r) {
  auto conflict = [&](const std::string& option, const std::string& folder) {
    return Status(StatusCode::kInvalidArgument, option + " conflicts with the bitsandbytes folder, whose tensor '" + b.name +
                                                    "' is " + folder + " (an import copies the folder's blocks; omit the option)");
  };
  if (r.quant && *r.quant != b.storage) return conflict(std::string("--quant ") + storage_type_name(*r.quant), storage_type_name(b.storage));
  if (r.block_size && is_4bit(b.storage) && *r.block_size != b.quant.block_size) {
    return conflict("--blocksize " + std::to_string(*r.block_size), "blocksize " + std::to_string(b.quant.block_size));
  }
  if (r.double_quant && !b.quant.double_quant) return conflict("--double-quant", "not double-quantized");
  return Status();
}

}  // namespace

bool is_bnb_folder(const std::string& input) {
  if (!is_directory(input)) return false;
  Result<std::string> text = read_text_file_capped(input + "/config.json", kMaxSideFileBytes);
  if (!text.ok()) return false;
  const json root = json::parse(text.value(), nullptr, /*allow_exceptions=*/false);
  if (!root.is_object()) return false;
  const auto qc = root.find("quantization_config");
  if (qc == root.end() || !qc->is_object()) return false;
  const auto method = qc->find("quant_method");
  return method != qc->end() && method->is_string() && method->get<std::string>() == "bitsandbytes";
}

Result<ConvertSummary> import_bnb(const ConvertOptions& options, const BnbImportRequest& request,
                                  const ProgressCallback& progress) {
  const auto t_start = std::chrono::steady_clock::now();
  if (options.output.empty()) return Status(StatusCode::kInvalidArgument, "no output file given (-o)");
  if (!options.skip_patterns.empty() || options.quantize_lm_head) {
    return Status(StatusCode::kInvalidArgument,
                  "--skip and --quantize-lm-head do not apply to a bitsandbytes folder: its quantization is imported as it is");
  }
  if (!is_directory(options.input)) return Status(StatusCode::kInvalidArgument, options.input + ": not a folder");
  const std::string dir = options.input;
  ConvertSummary summary;

  // Config and side files, as convert() embeds them.
  format::ModelHeader header;
  std::string config_text;
  QMODEL_ASSIGN_OR_RETURN(config_text, read_side_files(dir, header, summary.warnings));
  QuantizationConfig qconfig;
  QMODEL_ASSIGN_OR_RETURN(qconfig, read_quantization_config(config_text, dir + "/config.json"));

  BnbFiles files;
  QMODEL_ASSIGN_OR_RETURN(files, open_bnb_files(dir));

  // The quantized modules, then every raw tensor accounted for.
  const SourceDType int8_source = torch_dtype(header.config.torch_dtype).value_or(SourceDType::kF16);
  FolderReader reader(files);
  std::map<const TensorEntry*, BnbTensor> quantized;  // keyed by the data entry
  for (const TensorEntry* t : files.tensors) {
    const bool four_bit = t->name.find(kQuantStateInfix) != std::string::npos;
    if (!four_bit && !has_suffix(t->name, ".SCB")) continue;
    Result<BnbTensor> b = four_bit ? reader.read_4bit(*t) : reader.read_int8(*t, int8_source);
    if (!b.ok()) return b.status();
    QMODEL_RETURN_IF_ERROR(check_request(b.value(), request));
    const TensorEntry* data = b->data;
    if (!quantized.emplace(data, std::move(b).value()).second) {
      return bad_tensor(*data, "has two bitsandbytes quant states");
    }
  }
  if (quantized.empty()) {
    return Status(StatusCode::kCorruptFile, dir + ": config.json says bitsandbytes but no tensor has a quant_state or SCB");
  }
  for (const TensorEntry* t : files.tensors) {
    if (reader.claimed(t->name)) continue;
    if (!t->is_float()) {
      return bad_tensor(*t, std::string(st_dtype_name(t->st_dtype)) +
                                " tensor without a bitsandbytes quant_state (4-bit) or SCB (LLM.int8) that claims it");
    }
    for (const char* part : {".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map"}) {
      if (has_suffix(t->name, part)) return bad_tensor(*t, std::string("a '") + part + "' tensor without its quant_state");
    }
  }

  // Plan as the normal conversion does (roles, tied head, required tensors), over the float
  // tensors and one stand-in per quantized module (its logical shape, no bytes).
  std::vector<TensorEntry> planned;
  planned.reserve(files.tensors.size());
  for (const TensorEntry* t : files.tensors) {
    const auto q = quantized.find(t);
    if (q != quantized.end()) {
      TensorEntry stand_in;
      stand_in.name = q->second.name;
      stand_in.dtype = q->second.source_dtype;
      stand_in.st_dtype = static_cast<StDType>(q->second.source_dtype);
      stand_in.shape = q->second.shape;
      stand_in.file = t->file;
      stand_in.file_offset = t->file_offset;
      planned.push_back(std::move(stand_in));
    } else if (!reader.claimed(t->name)) {
      planned.push_back(*t);
    }
  }
  ConvertOptions plan_options = options;
  plan_options.quant = StorageType::kNF4;
  plan_options.quantize_lm_head = true;
  Plan plan;
  QMODEL_ASSIGN_OR_RETURN(plan, plan_tensors(planned, header.config, header.arch, plan_options));
  for (std::string& w : plan.warnings) {
    if (w.find("--quantize-lm-head") == std::string::npos) summary.warnings.push_back(std::move(w));
  }

  // The header in full up front: every quantized tensor's parameters come from the folder.
  std::vector<const BnbTensor*> bnb_of(plan.tensors.size(), nullptr);
  std::map<std::string, const BnbTensor*> by_name;
  for (const auto& [data, b] : quantized) by_name[b.name] = &b;
  const BnbTensor* first_quantized = nullptr;
  bool uniform_block = true;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const TensorPlan& p = plan.tensors[i];
    format::TensorInfo t;
    t.name = p.source->name;
    t.role = p.role;
    t.layer = p.layer;
    const auto b = by_name.find(t.name);
    if (b != by_name.end() && p.source->bytes.empty()) {
      bnb_of[i] = b->second;
      if (!first_quantized) first_quantized = b->second;
      uniform_block = uniform_block && b->second->quant.block_size == first_quantized->quant.block_size;
      t.shape = b->second->shape;
      t.source_dtype = b->second->source_dtype;
      t.storage = b->second->storage;
      t.quant = b->second->quant;
      t.transposed = p.transpose;  // bitsandbytes already holds Conv1D weights as [out, in]
      for (const auto& blob : b->second->blobs) t.blobs.push_back({blob.first});
    } else {
      t.shape = p.source->shape;
      if (p.transpose) std::swap(t.shape[0], t.shape[1]);
      t.transposed = p.transpose;
      t.source_dtype = p.source->dtype;
      t.storage = float_storage_of(p.source->dtype);
      t.blobs.push_back({BlobRole::kData});
    }
    header.tensors.push_back(std::move(t));
  }
  if (!first_quantized) {
    return Status(StatusCode::kCorruptFile, dir + ": no quantized tensor is one the model uses");
  }
  header.quant_settings.quant = first_quantized->storage;
  header.quant_settings.block_size = is_4bit(first_quantized->storage) && uniform_block ? first_quantized->quant.block_size : 0;
  header.quant_settings.double_quant = first_quantized->quant.double_quant;
  header.quant_settings.compute_dtype = request.compute_dtype.value_or(qconfig.compute_dtype.value_or(options.compute_dtype));
  header.quant_settings.quantize_lm_head = false;
  for (const format::TensorInfo& t : header.tensors) {
    if (t.role == format::TensorRole::kLmHead && !is_float_storage(t.storage)) header.quant_settings.quantize_lm_head = true;
  }
  header.quant_settings.compression = options.compression;

  std::vector<std::pair<std::string, ByteSpan>> sources;
  for (size_t s = 0; s < files.files.size(); ++s) sources.emplace_back(files.names[s], files.files[s]->file_bytes());
  if (!files.index_text.empty()) sources.emplace_back(kIndexFileName, as_span(files.index_text));
  for (const format::EmbeddedFile& f : header.files) sources.emplace_back(f.name, as_span(f.contents));
  std::ostringstream opts;
  opts << "import=bitsandbytes quant=" << storage_type_name(header.quant_settings.quant);
  if (is_4bit(header.quant_settings.quant)) {
    opts << " blocksize=" << header.quant_settings.block_size << " double_quant=" << (header.quant_settings.double_quant ? 1 : 0);
  }
  opts << " compute_dtype=" << compute_dtype_name(header.quant_settings.compute_dtype)
       << " compress=" << (options.compression == format::Compression::kZstd ? "zstd" : "none")
       << " quantization_config=" << qconfig.summary;
  header.provenance.converter = std::string("qconvert ") + QMODEL_VERSION_STRING;
  header.provenance.options = opts.str();
  for (const auto& source : sources) header.provenance.source_files.push_back({source.first, 0, 0});

  const format::WriterOptions wopts = writer_options(options);
  std::unique_ptr<format::ModelWriter> writer;
  QMODEL_ASSIGN_OR_RETURN(writer, format::ModelWriter::create(options.output, wopts, header));

  ConvertProgress prog;
  prog.tensors_total = plan.tensors.size();
  auto input_bytes = [&](size_t i) {
    uint64_t n = 0;
    if (bnb_of[i]) {
      for (const auto& blob : bnb_of[i]->blobs) n += blob.second->bytes.size();
    } else {
      n = plan.tensors[i].source->bytes.size();
    }
    return n;
  };
  for (size_t i = 0; i < plan.tensors.size(); ++i) prog.input_bytes_total += input_bytes(i);
  std::vector<uint8_t> transposed;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const TensorPlan& p = plan.tensors[i];
    format::TensorInfo& info = header.tensors[i];
    prog.current_tensor = &info.name;
    if (progress) progress(prog);
    QMODEL_RETURN_IF_ERROR(check_cancelled(options));
    std::vector<std::pair<BlobRole, const TensorEntry*>> blobs;
    if (bnb_of[i]) {
      blobs = bnb_of[i]->blobs;
      ++summary.n_quantized;
    } else {
      blobs.push_back({BlobRole::kData, p.source});
    }
    for (size_t k = 0; k < blobs.size(); ++k) {
      ByteSpan bytes = blobs[k].second->bytes;
      if (!bnb_of[i] && p.transpose) {  // GPT-2 Conv1D kept in float: [in, out] -> [out, in]
        const size_t elem = source_dtype_size(p.source->dtype);
        const uint64_t rows = p.source->shape[0], cols = p.source->shape[1];
        transposed.resize(bytes.size());
        for (uint64_t r = 0; r < rows; ++r) {
          for (uint64_t c = 0; c < cols; ++c) {
            std::memcpy(&transposed[(c * rows + r) * elem], bytes.data() + (r * cols + c) * elem, elem);
          }
        }
        bytes = ByteSpan(transposed.data(), transposed.size());
      }
      Result<format::BlobRef> ref = writer->append_blob(blobs[k].first, bytes);
      if (!ref.ok()) return ref.status().with_context(options.output + ": tensor '" + info.name + "'");
      info.blobs[k] = ref.value();
      summary.data_bytes += ref->stored_size;
    }
    summary.n_params += info.n_elems();
    summary.input_bytes += input_bytes(i);
    prog.input_bytes_done += input_bytes(i);
    ++prog.tensors_done;
  }
  prog.current_tensor = nullptr;
  if (progress) progress(prog);

  header.provenance.source_files.clear();
  for (const auto& [name, bytes] : sources) {
    header.provenance.source_files.push_back({name, bytes.size(), XXH3_64bits(bytes.data(), bytes.size())});
  }
  QMODEL_RETURN_IF_ERROR(writer->finish(header));

  struct stat st {};
  if (::stat(options.output.c_str(), &st) == 0) summary.output_bytes = static_cast<uint64_t>(st.st_size);
  summary.n_tensors = plan.tensors.size();
  summary.bits_per_param =
      summary.n_params ? 8.0 * static_cast<double>(summary.data_bytes) / static_cast<double>(summary.n_params) : 0.0;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return summary;
}

}  // namespace qmodel::converter
