// Model::open: verified mapping -> supported architecture -> bound weights -> embedded tokenizer.
#include "qmodel/runtime/model.h"

#include <algorithm>
#include <chrono>

#include "model_impl.h"

namespace qmodel::runtime {

const char* device_name(Device device) {
  switch (device) {
    case Device::kCpu: return "cpu";
    case Device::kCuda: return "cuda";
  }
  return "?";
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

Result<std::unique_ptr<Model>> Model::open(const std::string& path, const ModelOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  format::OpenOptions open_options;
  open_options.verify_checksums = options.verify_checksums;
  open_options.trusted_key = options.trusted_key;
  QMODEL_ASSIGN_OR_RETURN(impl->file, format::ModelFile::open(path, open_options));
  QMODEL_ASSIGN_OR_RETURN(impl->weights, bind_weights(*impl->file));
  if (options.device == Device::kCuda) {
    QMODEL_ASSIGN_OR_RETURN(impl->device, upload_model_to_cuda(*impl->file, impl->weights, options));
  }

  const format::ModelHeader& header = impl->file->header();
  if (const format::EmbeddedFile* tok = header.find_file("tokenizer.json")) {
    const format::EmbeddedFile* tok_config = header.find_file("tokenizer_config.json");
    auto tokenizer = Tokenizer::from_json(tok->contents, tok_config ? tok_config->contents : std::string(),
                                          path + ": embedded tokenizer.json");
    if (!tokenizer.ok()) return tokenizer.status();
    impl->tokenizer = std::move(tokenizer).value();
  }
  impl->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return std::unique_ptr<Model>(new Model(std::move(impl)));
}

const std::string& Model::path() const { return impl_->file->path(); }
const format::ModelConfig& Model::config() const { return impl_->file->header().config; }
const format::GenerationDefaults& Model::generation_defaults() const { return impl_->file->header().generation; }
const format::ModelHeader& Model::header() const { return impl_->file->header(); }
const ModelOptions& Model::options() const { return impl_->options; }
const Tokenizer* Model::tokenizer() const { return impl_->tokenizer.get(); }
double Model::load_seconds() const { return impl_->load_seconds; }
uint64_t Model::weight_bytes() const { return impl_->weights.n_bytes; }
const OffloadPlan* Model::offload_plan() const { return impl_->device ? &impl_->device->offload_plan() : nullptr; }
uint64_t Model::weight_bytes_per_token() const {
  const ModelWeights& w = impl_->weights;
  if (w.tied_lm_head) return w.n_bytes;
  return w.n_bytes - w.embed_bytes + w.embed_bytes / std::max<uint64_t>(1, config().vocab_size);
}

Result<std::vector<int32_t>> Model::encode(const std::string& text, bool add_special) const {
  if (impl_->tokenizer == nullptr) {
    return Status(StatusCode::kInvalidArgument,
                  path() + ": the model embeds no tokenizer.json, so text prompts cannot be encoded; pass token ids");
  }
  return impl_->tokenizer->encode(text, add_special);
}

std::vector<int32_t> Model::default_stop_ids() const {
  if (!generation_defaults().eos_token_ids.empty()) return generation_defaults().eos_token_ids;
  if (!config().eos_token_ids.empty()) return config().eos_token_ids;
  if (impl_->tokenizer && impl_->tokenizer->eos_id() >= 0) return {impl_->tokenizer->eos_id()};
  return {};
}

}  // namespace qmodel::runtime
