// qinspect: show and verify a .qmodel file (and its signature).
//   qinspect model.qmodel                 header summary and per-tensor table
//   qinspect model.qmodel --verify        also check every blob's XXH3-64 checksum, the zero padding
//                                         and, when the file is signed, its signature
//   qinspect model.qmodel --verify --trusted-key publisher.pub   and require that key's signature
//   qinspect model.qmodel --json          the header as JSON
//   qinspect model.qmodel --dequantize out.safetensors   every tensor dequantized to F32
// Exit codes: 0 ok, 1 invalid file or failed check, 2 usage error.
#include <CLI/CLI.hpp>

#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "inspect_support.h"
#include "qmodel/runtime/offload_plan.h"
#include "qmodel/format/fault_guard.h"
#include "qmodel/format/reader.h"
#include "qmodel/runtime/weight_view.h"

namespace {

using qmodel::format::ModelFile;
using qmodel::format::ModelHeader;
using qmodel::format::TensorInfo;

uint64_t data_bytes(const TensorInfo& t) {
  uint64_t n = 0;
  for (const auto& b : t.blobs) n += b.stored_size;
  return n;
}

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string block_string(const TensorInfo& t) {
  if (qmodel::is_4bit(t.storage)) return std::to_string(t.quant.block_size) + (t.quant.double_quant ? "+dq" : "");
  if (t.storage == qmodel::StorageType::kINT8) return "row";
  return "-";
}

void print_summary(const ModelFile& file) {
  const ModelHeader& h = file.header();
  const auto& c = h.config;
  uint64_t params = 0, bytes = 0;
  size_t quantized = 0;
  for (const auto& t : h.tensors) {
    params += t.n_elems();
    bytes += data_bytes(t);
    quantized += qmodel::is_float_storage(t.storage) ? 0 : 1;
  }
  std::printf("file          %s (%.3f MB)\n", file.path().c_str(), static_cast<double>(file.file_bytes().size()) / 1e6);
  std::printf("format        version %u, alignment %" PRIu64 "\n", h.format_version, h.alignment);
  std::printf("model         %s (%s): %u layers, hidden %u, heads %u/%u kv, head_dim %u, ffn %u, vocab %u%s\n",
              c.architecture.c_str(), c.model_type.c_str(), c.n_layers, c.hidden_size, c.n_heads, c.n_kv_heads,
              c.head_dim, c.intermediate_size, c.vocab_size, c.tie_word_embeddings ? ", tied embeddings" : "");
  const auto& a = h.arch;
  namespace fmt = qmodel::format;
  std::printf("architecture  %s: %s (eps %g), %s residual%s, qkv %s, positions %s", a.family.c_str(),
              fmt::norm_kind_name(a.norm), static_cast<double>(a.norm_eps), fmt::residual_layout_name(a.residual),
              a.residual_from_norm ? " from the norm" : "", fmt::qkv_layout_name(a.qkv), fmt::position_kind_name(a.positions));
  if (a.positions == fmt::PositionKind::kRope) std::printf(" (%u of %u dims)", a.rotary_dim, c.head_dim);
  if (a.positions == fmt::PositionKind::kLearned) std::printf(" (offset %u)", a.learned_offset);
  std::printf(", mlp %s %s%s%s%s\n", fmt::mlp_kind_name(a.mlp), fmt::activation_name(a.activation),
              a.embed_norm ? ", embedding norm" : "", a.project_in_out ? ", project_in/out" : "",
              a.final_norm ? "" : ", no final norm");
  const auto& q = h.quant_settings;
  std::printf("quantization  %s", qmodel::storage_type_name(q.quant));
  if (qmodel::is_4bit(q.quant)) std::printf(", blocksize %u%s", q.block_size, q.double_quant ? ", double quant" : "");
  std::printf(", compute %s%s%s\n", qmodel::compute_dtype_name(q.compute_dtype), q.quantize_lm_head ? ", lm_head quantized" : "",
              q.compression == qmodel::format::Compression::kZstd ? ", zstd" : "");
  std::printf("tensors       %zu (%zu quantized), %.3f M parameters, %.3f MB of data, %.3f bits/param\n",
              h.tensors.size(), quantized, static_cast<double>(params) / 1e6, static_cast<double>(bytes) / 1e6,
              params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0);
  std::printf("provenance    %s; %s\n", h.provenance.converter.c_str(), h.provenance.options.c_str());
  for (const auto& f : h.provenance.source_files) {
    std::printf("  source      %s (%" PRIu64 " bytes, xxh3 %016" PRIx64 ")\n", f.name.c_str(), f.size, f.xxh3);
  }
  std::printf("embedded      ");
  for (const auto& f : h.files) std::printf("%s (%zu B)  ", f.name.c_str(), f.contents.size());
  std::printf("\n\n");
  std::printf("%-52s %-16s %-6s %-7s %12s %8s\n", "tensor", "shape", "store", "block", "bytes", "bits/p");
  for (const auto& t : h.tensors) {
    const uint64_t n = t.n_elems();
    std::printf("%-52s %-16s %-6s %-7s %12" PRIu64 " %8.3f\n", t.name.c_str(), shape_string(t.shape).c_str(),
                qmodel::storage_type_name(t.storage), block_string(t).c_str(), data_bytes(t),
                n ? 8.0 * static_cast<double>(data_bytes(t)) / static_cast<double>(n) : 0.0);
  }
}

// Streams every tensor, dequantized to F32, into a safetensors file (written beside, then renamed).
qmodel::Status write_dequantized(const ModelFile& file, const std::string& out_path) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const auto& t : file.header().tensors) {
    const uint64_t n_bytes = t.n_elems() * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, offset + n_bytes}}};
    offset += n_bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::string tmp = out_path + ".tmp";
  std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(tmp.c_str(), "wb"), std::fclose);
  if (!out) return qmodel::Status(qmodel::StatusCode::kIoError, tmp + ": cannot create");
  const uint64_t len = text.size();
  bool ok = std::fwrite(&len, 8, 1, out.get()) == 1 && std::fwrite(text.data(), 1, text.size(), out.get()) == text.size();
  std::vector<float> chunk(1u << 20);
  for (const auto& t : file.header().tensors) {
    auto view = qmodel::runtime::make_weight_view(file, t);
    if (!view.ok()) {
      std::remove(tmp.c_str());
      return view.status();
    }
    for (uint64_t first = 0; ok && first < t.n_elems(); first += chunk.size()) {
      const uint64_t count = std::min<uint64_t>(chunk.size(), t.n_elems() - first);
      qmodel::kernels::dequantize_ref(view.value(), first, count, chunk.data());
      ok = std::fwrite(chunk.data(), 4, count, out.get()) == count;
    }
  }
  ok = ok && std::fflush(out.get()) == 0;
  out.reset();
  if (!ok || std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return qmodel::Status(qmodel::StatusCode::kIoError, out_path + ": write failed");
  }
  return qmodel::Status();
}

// --fit: the offload plan for a budget (qmodel/runtime/offload_plan.h). Exit 1 when the budget is
// below the minimum (the message names it).
int print_fit(const ModelFile& model, const std::string& fit, uint32_t context, uint32_t prefill_chunk,
              const std::string& compute_dtype, double bus_gbs, double device_gbs, bool json) {
  namespace rt = qmodel::runtime;
  auto budget = rt::parse_memory_budget(fit);
  if (!budget.ok() || budget->fraction != 0.0) {
    std::fprintf(stderr, "qinspect: --fit needs an absolute size such as 6GiB or 5000MB (a percentage needs a GPU)\n");
    return 2;
  }
  rt::OffloadOptions o;
  o.budget_bytes = budget->bytes;
  o.context = context;
  o.prefill_chunk = prefill_chunk;
  o.compute_dtype = compute_dtype.empty() ? model.header().quant_settings.compute_dtype
                    : compute_dtype == "f32" ? qmodel::ComputeDType::kF32
                    : compute_dtype == "f16" ? qmodel::ComputeDType::kF16
                                             : qmodel::ComputeDType::kBF16;
  o.bus_gb_per_s = bus_gbs;
  o.device_gb_per_s = device_gbs;
  auto plan = rt::plan_offload(model.header(), o);
  if (!plan.ok()) {
    std::fprintf(stderr, "qinspect: %s\n", plan.status().to_string().c_str());
    return 1;
  }
  std::printf("%s\n", json ? plan->to_json().c_str() : plan->to_text(model.header()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  qmodel::format::install_fault_guard("qinspect");
  CLI::App app{"Show and verify a .qmodel file."};
  std::string path, dequantize_out, fit, compute_dtype, trusted_key_file;
  bool verify = false, json = false;
  uint32_t context = 0, prefill_chunk = 256;
  double bus_gbs = 54.0, device_gbs = 3100.0;
  app.add_option("file", path, ".qmodel file")->required();
  app.add_flag("--verify", verify, "check every blob's XXH3-64 checksum, that all padding is zero, and a signature if present");
  app.add_option("--trusted-key", trusted_key_file, "require an Ed25519 signature by this public key (from qkeygen)")
      ->check(CLI::ExistingFile);
  app.add_flag("--json", json, "print the header as JSON");
  app.add_option("--dequantize", dequantize_out, "write every tensor dequantized to F32 into this .safetensors file");
  app.add_option("--fit", fit, "plan a GPU memory budget (e.g. 6GiB, 5000MB): what stays resident, what streams, "
                               "and the decode speed that implies; no GPU needed");
  app.add_option("--context", context, "--fit: KV cache tokens to reserve (default: min(max_position_embeddings, 4096))");
  app.add_option("--prefill-chunk", prefill_chunk, "--fit: prompt tokens per forward pass")->capture_default_str();
  app.add_option("--compute-dtype", compute_dtype, "--fit: bf16, f16 or f32 (default: the file's)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app.add_option("--bus-gbs", bus_gbs, "--fit: host-to-device GB/s of the registered mapping (H100 measured: 54)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--device-gbs", device_gbs, "--fit: device memory read GB/s")->capture_default_str()->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "qinspect: %s\nRun with --help for usage.\n", e.what());
    return 2;
  }
  qmodel::format::OpenOptions open_options;
  if (!trusted_key_file.empty()) {
    auto key = qmodel::format::load_public_key(trusted_key_file);
    if (!key.ok()) {
      std::fprintf(stderr, "qinspect: error: %s\n", key.status().to_string().c_str());
      return 2;
    }
    open_options.trusted_key = key.value();
  }
  auto file = ModelFile::open(path, open_options);
  if (!file.ok()) {
    std::fprintf(stderr, "qinspect: error: %s\n", file.status().to_string().c_str());
    return 1;
  }
  const ModelFile& model = *file.value();
  if (!fit.empty()) return print_fit(model, fit, context, prefill_chunk, compute_dtype, bus_gbs, device_gbs, json);
  if (json) {
    std::printf("%s\n", qmodel::tools::header_to_json(model.header()).dump(2).c_str());
  } else {
    print_summary(model);
  }
  std::fflush(stdout);  // keep the table ahead of the verify line when both go to one file
  if (verify) {
    qmodel::Status st = model.verify_checksums();
    if (!st.ok()) {
      std::fprintf(stderr, "qinspect: verify FAILED: %s\n", st.to_string().c_str());
      return 1;
    }
    size_t n_blobs = 0;
    for (const auto& t : model.header().tensors) n_blobs += t.blobs.size();
    std::fprintf(stderr, "verify: OK, %zu blobs of %zu tensors match their XXH3-64 checksums, all padding is zero\n",
                 n_blobs, model.header().tensors.size());
  }
  if (const auto& signature = model.signature()) {
    if (open_options.trusted_key) {
      std::fprintf(stderr, "signature: OK, signed by the trusted key %s\n", signature->signer.fingerprint().c_str());
    } else if (verify) {
      std::fprintf(stderr, "signature: valid under the key it names, %s (give --trusted-key to require a key)\n",
                   signature->signer.fingerprint().c_str());
    } else {
      std::fprintf(stderr, "signature: signed by key %s (not checked: use --verify or --trusted-key)\n",
                   signature->signer.fingerprint().c_str());
    }
  } else if (verify) {
    std::fprintf(stderr, "signature: none (the file is not signed)\n");
  }
  if (!dequantize_out.empty()) {
    qmodel::Status st = write_dequantized(model, dequantize_out);
    if (!st.ok()) {
      std::fprintf(stderr, "qinspect: error: %s\n", st.to_string().c_str());
      return 1;
    }
    std::fprintf(stderr, "dequantized %zu tensors to %s (F32)\n", model.header().tensors.size(), dequantize_out.c_str());
  }
  return 0;
}
