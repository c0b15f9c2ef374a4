// qconvert: Hugging Face folder (safetensors F32/F16/BF16) -> one .qmodel file.
//   qconvert ./Llama-3.1-8B -o llama.nf4dq.qmodel --quant nf4 --double-quant
//   qconvert ./llama-bnb-4bit -o llama.qmodel          (bitsandbytes folder: imported, not requantized)
//   qconvert llama.qmodel --to bnb -o ./llama-bnb       (a folder transformers + bitsandbytes load)
//   qconvert ./Llama-3.1-8B --quant nf4 --double-quant --to bnb -o ./llama-bnb
//   qconvert ./Llama-3.1-8B -o llama.qmodel --sign publisher.key   (Ed25519, key from qkeygen)
// Exit codes: 0 success, 1 conversion failed (nothing written), 2 usage error, 130/143 interrupted
// by SIGINT/SIGTERM (nothing written).
#include <CLI/CLI.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "progress_bar.h"
#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/bnb_export.h"
#include "qmodel/converter/bnb_import.h"
#include "qmodel/converter/convert.h"
#include "qmodel/format/fault_guard.h"

namespace {

const std::map<std::string, qmodel::StorageType> kQuantNames = {
    {"nf4", qmodel::StorageType::kNF4},   {"fp4", qmodel::StorageType::kFP4}, {"int8", qmodel::StorageType::kINT8},
    {"bf16", qmodel::StorageType::kBF16}, {"f16", qmodel::StorageType::kF16}, {"f32", qmodel::StorageType::kF32}};
const std::map<std::string, qmodel::ComputeDType> kComputeNames = {
    {"bf16", qmodel::ComputeDType::kBF16}, {"f16", qmodel::ComputeDType::kF16}, {"f32", qmodel::ComputeDType::kF32}};

void print_summary(const qmodel::converter::ConvertOptions& o, const qmodel::converter::ConvertSummary& s) {
  const double fp16_bytes = 2.0 * static_cast<double>(s.n_params);
  std::printf("Converted %zu tensors (%zu quantized), %.3f M parameters\n", s.n_tensors, s.n_quantized,
              static_cast<double>(s.n_params) / 1e6);
  std::printf("  output        %s: %.3f MB (%llu bytes; %llu of them tensor data)\n", o.output.c_str(),
              static_cast<double>(s.output_bytes) / 1e6, static_cast<unsigned long long>(s.output_bytes),
              static_cast<unsigned long long>(s.data_bytes));
  std::printf("  bits/param    %.3f (tensor data, padding excluded; fp16 = 16)\n", s.bits_per_param);
  std::printf("  vs fp16       %.1f%% smaller (%.3f MB saved)\n",
              fp16_bytes > 0 ? 100.0 * (1.0 - static_cast<double>(s.data_bytes) / fp16_bytes) : 0.0,
              (fp16_bytes - static_cast<double>(s.data_bytes)) / 1e6);
  std::printf("  time          %.2f s, %.3f GB/s of input (%.3f GB read)\n", s.seconds,
              s.seconds > 0 ? static_cast<double>(s.input_bytes) / 1e9 / s.seconds : 0.0,
              static_cast<double>(s.input_bytes) / 1e9);
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A temporary .qmodel beside `output` (for --to bnb from a Hugging Face folder); removed on exit,
// and by the signal handlers below.
struct TempModel {
  std::string path;
  qmodel::format::RegisteredTempFile registration;
  ~TempModel() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

// SIGINT/SIGTERM: the first asks the conversion to stop between tensors (it then removes its
// temporary file and reports); a second one, or one outside the conversion, removes the registered
// temporary files and ends the process at once. The output is never published either way.
std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};
std::atomic<bool> g_cancellable{false};

void on_interrupt(int sig) {
  const bool second = g_signal.exchange(sig) != 0;
  if (g_cancellable.load() && !second) {
    g_cancel.store(true);
    return;
  }
  static const char kMessage[] = "\nqconvert: interrupted; nothing was written\n";
  (void)!::write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  qmodel::format::remove_registered_temp_files();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}

int export_to_bnb(const std::string& model, const std::string& output, bool overwrite) {
  qmodel::converter::BnbExportOptions e;
  e.input = model;
  e.output = output;
  e.overwrite = overwrite;
  auto result = qmodel::converter::export_bnb(e);
  if (!result.ok()) {
    std::fprintf(stderr, "qconvert: error: %s\n", result.status().to_string().c_str());
    return 1;
  }
  std::printf("Exported %zu tensors (%zu quantized modules) to %s: bitsandbytes folder, model.safetensors %.3f MB\n",
              result->n_tensors, result->n_quantized, output.c_str(), static_cast<double>(result->bytes) / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Quantize a Hugging Face checkpoint (safetensors) into one .qmodel file, bitsandbytes-exact."};
  app.footer("Supported architectures: " + qmodel::converter::supported_architectures() + ".");
  qmodel::converter::ConvertOptions o;
  std::string quant, compute, compress = "none", to = "qmodel", sign_key_file;
  bool quiet = false;
  app.add_option("input", o.input,
                 "Hugging Face model folder (config.json, *.safetensors, tokenizer.json), a bitsandbytes folder "
                 "(imported as quantized), or a .qmodel (with --to bnb)")->required();
  app.add_option("-o,--output", o.output, "output .qmodel file (a folder with --to bnb)")->required();
  app.add_option("--quant", quant, "storage of the block Linear weights (default nf4; a bitsandbytes folder keeps its own)")
      ->check(CLI::IsMember({"nf4", "fp4", "int8", "bf16", "f16", "f32"}));
  app.add_option("--to", to, "output kind: qmodel, or bnb (a Hugging Face folder transformers + bitsandbytes load)")
      ->check(CLI::IsMember({"qmodel", "bnb"}))->capture_default_str();
  app.add_option("--blocksize", o.block_size, "4-bit block size: 32, 64, ..., 4096")->capture_default_str();
  app.add_flag("--double-quant", o.double_quant, "quantize the absmax constants too (nf4/fp4; 4.127 bits/param at 64)");
  app.add_option("--compute-dtype", compute, "runtime compute dtype recorded in the file (default bf16; a bitsandbytes "
                 "folder: its bnb_4bit_compute_dtype)")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  app.add_option("--skip", o.skip_patterns, "keep tensors/modules matching PATTERN unquantized (substring or glob); repeatable");
  app.add_flag("--quantize-lm-head", o.quantize_lm_head, "quantize lm_head too (kept in 16/32-bit by default)");
  app.add_option("--compress", compress, "per-blob compression for transport")
      ->check(CLI::IsMember({"none", "zstd"}))->capture_default_str();
  app.add_option("--threads", o.n_threads, "worker threads (0 = all cores); output is identical for any count");
  app.add_option("--sign", sign_key_file, "sign the .qmodel with this Ed25519 secret key (from qkeygen)")
      ->check(CLI::ExistingFile);
  app.add_flag("-f,--force", o.overwrite, "overwrite OUTPUT if it exists");
  app.add_flag("-q,--quiet", quiet, "no progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "qconvert: %s\nRun with --help for usage.\n", e.what());
    return 2;
  }
  qmodel::format::install_fault_guard("qconvert");
  install_interrupt_handlers();
  if (!sign_key_file.empty()) {
    if (to == "bnb") {
      std::fprintf(stderr, "qconvert: --sign applies to .qmodel output, not to a bitsandbytes folder\n");
      return 2;
    }
    auto key = qmodel::format::load_secret_key(sign_key_file);
    if (!key.ok()) {
      std::fprintf(stderr, "qconvert: error: %s\n", key.status().to_string().c_str());
      return 2;
    }
    o.signing_key = key.value();
  }
  o.cancel = &g_cancel;
  o.quant = kQuantNames.at(quant.empty() ? "nf4" : quant);
  o.compute_dtype = kComputeNames.at(compute.empty() ? "bf16" : compute);
  o.compression = compress == "zstd" ? qmodel::format::Compression::kZstd : qmodel::format::Compression::kNone;
  const bool blocksize_given = app.get_option("--blocksize")->count() > 0;

  if (is_regular_file(o.input)) {  // a .qmodel: only --to bnb makes sense
    if (to != "bnb") {
      std::fprintf(stderr, "qconvert: %s is a file: give a model folder, or --to bnb to export a .qmodel\n", o.input.c_str());
      return 2;
    }
    if (!quant.empty() || blocksize_given || o.double_quant || !compute.empty() || !o.skip_patterns.empty() ||
        o.quantize_lm_head) {
      std::fprintf(stderr, "qconvert: quantization options do not apply to exporting a .qmodel (it is copied as stored)\n");
      return 2;
    }
    return export_to_bnb(o.input, o.output, o.overwrite);
  }
  const std::string final_output = o.output;
  const bool force = o.overwrite;
  TempModel temp;
  if (to == "bnb") {
    struct stat st {};
    if (::stat(final_output.c_str(), &st) == 0 && !force) {  // refuse before the conversion's work
      std::fprintf(stderr, "qconvert: error: %s exists (use -f to replace it)\n", final_output.c_str());
      return 1;
    }  // convert (or import) to a temporary .qmodel beside the output, then export
    std::string tmpl = final_output;
    while (tmpl.size() > 1 && tmpl.back() == '/') tmpl.pop_back();
    tmpl += ".qmodel.tmp-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
      std::fprintf(stderr, "qconvert: error: cannot create a temporary file %s\n", tmpl.c_str());
      return 1;
    }
    ::close(fd);
    temp.path = tmpl;
    temp.registration = qmodel::format::RegisteredTempFile(tmpl);
    o.output = tmpl;
    o.overwrite = true;
  }

  qmodel::tools::ProgressBar bar("qconvert");
  auto on_progress = [&](const qmodel::converter::ConvertProgress& p) {
    if (quiet) return;
    const bool final = p.tensors_done == p.tensors_total && p.current_tensor == nullptr;
    bar.update(p.input_bytes_done, p.input_bytes_total, p.current_tensor ? *p.current_tensor : std::string("done"), final);
  };
  g_cancellable.store(true);
  auto result = [&]() -> qmodel::Result<qmodel::converter::ConvertSummary> {
    if (!qmodel::converter::is_bnb_folder(o.input)) return qmodel::converter::convert(o, on_progress);
    qmodel::converter::BnbImportRequest request;
    if (!quant.empty()) request.quant = o.quant;
    if (blocksize_given) request.block_size = o.block_size;
    request.double_quant = o.double_quant;
    if (!compute.empty()) request.compute_dtype = o.compute_dtype;
    return qmodel::converter::import_bnb(o, request, on_progress);
  }();
  g_cancellable.store(false);
  if (!result.ok() && result.status().code() == qmodel::StatusCode::kCancelled) {
    std::fprintf(stderr, "\nqconvert: interrupted (%s); nothing was written\n", g_signal.load() == SIGTERM ? "SIGTERM" : "SIGINT");
    return 128 + g_signal.load();
  }
  if (!result.ok()) {
    std::fprintf(stderr, "qconvert: error: %s\n", result.status().to_string().c_str());
    return 1;
  }
  for (const std::string& w : result->warnings) std::fprintf(stderr, "qconvert: warning: %s\n", w.c_str());
  qmodel::converter::ConvertOptions shown = o;
  if (to == "bnb") shown.output = "intermediate .qmodel for " + final_output;
  print_summary(shown, result.value());
  if (to == "bnb") return export_to_bnb(o.output, final_output, force);
  return 0;
}
