// qconvert: Hugging Face folder (safetensors F32/F16/BF16) -> one .qmodel file.
//   qconvert ./Llama-3.1-8B -o llama.nf4dq.qmodel --quant nf4 --double-quant
// Exit codes: 0 success, 1 conversion failed (nothing written), 2 usage error.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <map>

#include "progress_bar.h"
#include "qmodel/converter/arch_config.h"
#include "qmodel/converter/convert.h"

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Quantize a Hugging Face checkpoint (safetensors) into one .qmodel file, bitsandbytes-exact."};
  app.footer("Supported architectures: " + qmodel::converter::supported_architectures() + ".");
  qmodel::converter::ConvertOptions o;
  std::string quant = "nf4", compute = "bf16", compress = "none";
  bool quiet = false;
  app.add_option("input", o.input, "Hugging Face model folder (config.json, *.safetensors, tokenizer.json)")->required();
  app.add_option("-o,--output", o.output, "output .qmodel file")->required();
  app.add_option("--quant", quant, "storage of the block Linear weights")
      ->check(CLI::IsMember({"nf4", "fp4", "int8", "bf16", "f16", "f32"}))->capture_default_str();
  app.add_option("--blocksize", o.block_size, "4-bit block size: 32, 64, ..., 4096")->capture_default_str();
  app.add_flag("--double-quant", o.double_quant, "quantize the absmax constants too (nf4/fp4; 4.127 bits/param at 64)");
  app.add_option("--compute-dtype", compute, "runtime compute dtype recorded in the file")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}))->capture_default_str();
  app.add_option("--skip", o.skip_patterns, "keep tensors/modules matching PATTERN unquantized (substring or glob); repeatable");
  app.add_flag("--quantize-lm-head", o.quantize_lm_head, "quantize lm_head too (kept in 16/32-bit by default)");
  app.add_option("--compress", compress, "per-blob compression for transport")
      ->check(CLI::IsMember({"none", "zstd"}))->capture_default_str();
  app.add_option("--threads", o.n_threads, "worker threads (0 = all cores); output is identical for any count");
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
  o.quant = kQuantNames.at(quant);
  o.compute_dtype = kComputeNames.at(compute);
  o.compression = compress == "zstd" ? qmodel::format::Compression::kZstd : qmodel::format::Compression::kNone;

  qmodel::tools::ProgressBar bar("qconvert");
  auto on_progress = [&](const qmodel::converter::ConvertProgress& p) {
    if (quiet) return;
    const bool final = p.tensors_done == p.tensors_total && p.current_tensor == nullptr;
    bar.update(p.input_bytes_done, p.input_bytes_total, p.current_tensor ? *p.current_tensor : std::string("done"), final);
  };
  auto result = qmodel::converter::convert(o, on_progress);
  if (!result.ok()) {
    std::fprintf(stderr, "qconvert: error: %s\n", result.status().to_string().c_str());
    return 1;
  }
  for (const std::string& w : result->warnings) std::fprintf(stderr, "qconvert: warning: %s\n", w.c_str());
  print_summary(o, result.value());
  return 0;
}
