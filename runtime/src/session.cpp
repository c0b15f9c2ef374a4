// Session: KV cache + workspace + threads for one sequence; prefill / decode / generate.
#include "qmodel/runtime/session.h"

#include <algorithm>
#include <chrono>
#include <new>

#include "cuda_backend.h"
#include "forward.h"
#include "model_impl.h"
#include "qmodel/thread_pool.h"

namespace qmodel::runtime {

struct Session::Impl {
  Impl(const Model& m, unsigned n_threads) : model(m), pool(n_threads) {}
  const Model& model;
  ThreadPool pool;
  std::unique_ptr<ForwardBackend> forward;
  size_t n_past = 0;
  std::vector<float> logits;  // [rows, vocab] of the last call
  Stats counters;

  // want_logits false: the logits stay on the device (for sample_last), the span is empty.
  Result<Span<const float>> run(const std::vector<int32_t>& ids, bool all_positions, bool is_decode,
                                bool want_logits = true);
  // One decode step of `id` on a backend that samples on the device; the sampled id.
  Result<int32_t> decode_and_sample(int32_t id, const SamplingOptions& sampling, double uniform);
};

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::create(const Model& model, const SessionOptions& options) {
  const format::ModelConfig& config = model.config();
  size_t max_context = options.max_context;
  if (max_context == 0) {
    max_context = config.max_position_embeddings != 0 ? std::min<size_t>(config.max_position_embeddings, kDefaultMaxContext)
                                                      : kDefaultMaxContext;
  }
  // Learned absolute positions end where the table ends: the default context stops there.
  const format::ArchSpec& arch = model.header().arch;
  const kernels::WeightView& positions = model.impl().weights.pos_embed;
  if (options.max_context == 0 && arch.positions == format::PositionKind::kLearned && positions.rows > arch.learned_offset) {
    max_context = std::min<size_t>(max_context, positions.rows - arch.learned_offset);
  }
  if (options.prefill_chunk == 0) return Status(StatusCode::kInvalidArgument, "prefill_chunk must be > 0");
  const unsigned n_threads = options.n_threads != 0 ? options.n_threads : model.options().n_threads;
  std::unique_ptr<Impl> impl;
  try {
    impl = std::make_unique<Impl>(model, n_threads);
    impl->logits.reserve(config.vocab_size);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "cannot allocate the session");
  }
  if (model.options().device == Device::kCuda) {
    QMODEL_ASSIGN_OR_RETURN(impl->forward, create_cuda_forward(model, max_context, options.prefill_chunk));
  } else {
    QMODEL_ASSIGN_OR_RETURN(impl->forward, CpuForward::create(config, arch, model.impl().weights, impl->pool, max_context,
                                                              options.prefill_chunk));
  }
  return std::unique_ptr<Session>(new Session(std::move(impl)));
}

Result<Span<const float>> Session::Impl::run(const std::vector<int32_t>& ids, bool all_positions, bool is_decode,
                                             bool want_logits) {
  const size_t vocab = model.config().vocab_size, n = ids.size();
  if (n == 0) return Status(StatusCode::kInvalidArgument, "no tokens to run");
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || static_cast<size_t>(ids[i]) >= vocab) {
      return Status(StatusCode::kInvalidArgument, "token id " + std::to_string(ids[i]) + " at index " +
                                                      std::to_string(i) + " is outside the vocabulary [0, " +
                                                      std::to_string(vocab) + ")");
    }
  }
  if (n > forward->max_context() - n_past) {
    return Status(StatusCode::kInvalidArgument, "sequence of " + std::to_string(n_past + n) +
                                                    " tokens exceeds the session's max context of " +
                                                    std::to_string(forward->max_context()));
  }
  const size_t rows = all_positions ? n : 1;
  try {
    logits.resize(rows * vocab);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "cannot allocate logits for " + std::to_string(rows) + " positions");
  }
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t off = 0; off < n; off += forward->max_chunk()) {
    const size_t m = std::min(forward->max_chunk(), n - off);
    float* out = !want_logits ? nullptr : all_positions ? logits.data() + off * vocab : logits.data();
    const Status status = forward->run(ids.data() + off, m, n_past, all_positions, out);
    if (!status.ok()) {
      // The cache now holds a partial chunk: forget the sequence rather than leave it inconsistent.
      n_past = 0;
      return status;
    }
    n_past += m;
  }
  const double seconds = seconds_since(t0);
  (is_decode ? counters.decode_tokens : counters.prefill_tokens) += n;
  (is_decode ? counters.decode_seconds : counters.prefill_seconds) += seconds;
  if (!want_logits) return Span<const float>();
  return Span<const float>(logits.data(), rows * vocab);
}

Result<Span<const float>> Session::prefill(const std::vector<int32_t>& ids, bool all_positions) {
  return impl_->run(ids, all_positions, /*is_decode=*/false);
}

Result<Span<const float>> Session::decode_step(int32_t id) {
  return impl_->run(std::vector<int32_t>{id}, /*all_positions=*/false, /*is_decode=*/true);
}

void Session::reset() { impl_->n_past = 0; }

Result<GenerateResult> Session::generate(const std::vector<int32_t>& prompt_ids, const GenerateOptions& options) {
  QMODEL_ASSIGN_OR_RETURN(Sampler sampler, Sampler::create(options.sampling));
  std::vector<int32_t> stop_ids = options.stop_ids;
  if (options.use_default_stop_ids) {
    for (int32_t id : impl_->model.default_stop_ids()) stop_ids.push_back(id);
  }
  const size_t vocab = vocab_size();
  // A backend that samples on the device keeps the logits there (except the prompt's, when asked
  // for); the host supplies the same uniform draws Sampler::sample would make.
  ForwardBackend& forward = *impl_->forward;
  const bool on_device = forward.samples_on_device();
  auto draw = [&]() { return options.sampling.temperature == 0.0f ? 0.0 : sampler.next_uniform(); };
  const auto t0 = std::chrono::steady_clock::now();
  reset();
  const bool want_prompt_logits = static_cast<bool>(options.on_prompt_logits);
  QMODEL_ASSIGN_OR_RETURN(Span<const float> logits, impl_->run(prompt_ids, want_prompt_logits, /*is_decode=*/false,
                                                               /*want_logits=*/want_prompt_logits || !on_device));
  if (want_prompt_logits) {
    options.on_prompt_logits(logits, prompt_ids.size(), vocab);
    logits = logits.subspan((prompt_ids.size() - 1) * vocab, vocab);
  }
  Result<int32_t> next = on_device ? forward.sample_last(options.sampling, draw())
                                   : Result<int32_t>(sampler.sample(logits.data(), vocab));
  // The token after `id`: one decode step, then sampling.
  auto step = [&](int32_t id) -> Result<int32_t> {
    if (!on_device) {
      QMODEL_ASSIGN_OR_RETURN(Span<const float> step_logits, decode_step(id));
      return sampler.sample(step_logits.data(), vocab);
    }
    return impl_->decode_and_sample(id, options.sampling, draw());
  };

  GenerateResult result;
  const Tokenizer* tokenizer = impl_->model.tokenizer();
  std::unique_ptr<StreamDecoder> decoder;
  if (tokenizer != nullptr) decoder = std::make_unique<StreamDecoder>(*tokenizer);
  for (uint32_t i = 0; i < options.max_new_tokens; ++i) {
    if (!next.ok()) return next.status();
    const int32_t id = next.value();
    result.ids.push_back(id);
    if (std::find(stop_ids.begin(), stop_ids.end(), id) != stop_ids.end()) {
      result.stop_reason = StopReason::kStopToken;
      break;
    }
    const std::string piece = decoder ? decoder->push(id) : std::string();
    result.text += piece;
    if (options.on_token && options.on_token(id, piece)) {
      result.stop_reason = StopReason::kCallback;
      break;
    }
    if (i + 1 == options.max_new_tokens) break;  // no forward pass for a token nobody reads
    if (n_past() >= max_context()) {
      result.stop_reason = StopReason::kContextFull;
      break;
    }
    next = step(id);
  }
  if (decoder) {
    // Text held back for an incomplete UTF-8 sequence at the very end.
    const std::string rest = decoder->flush();
    if (!rest.empty()) {
      result.text += rest;
      if (options.on_token) options.on_token(-1, rest);
    }
  }
  result.seconds = seconds_since(t0);
  return result;
}

Result<int32_t> Session::Impl::decode_and_sample(int32_t id, const SamplingOptions& sampling, double uniform) {
  const auto t0 = std::chrono::steady_clock::now();
  Result<int32_t> next = forward->decode_and_sample(id, n_past, sampling, uniform);
  if (!next.ok()) {
    n_past = 0;  // as in run(): never leave a half-written cache behind
    return next.status();
  }
  ++n_past;
  counters.decode_tokens += 1;
  counters.decode_seconds += seconds_since(t0);
  return next;
}

size_t Session::n_past() const { return impl_->n_past; }
size_t Session::max_context() const { return impl_->forward->max_context(); }
size_t Session::vocab_size() const { return impl_->model.config().vocab_size; }
unsigned Session::n_threads() const { return impl_->pool.size(); }

Stats Session::stats() const {
  Stats s = impl_->counters;
  s.load_seconds = impl_->model.load_seconds();
  s.weight_bytes = impl_->model.weight_bytes();
  impl_->forward->fill_memory_stats(s);
  s.process_resident_bytes = process_resident_bytes();
  s.process_peak_resident_bytes = process_peak_resident_bytes();
  return s;
}

}  // namespace qmodel::runtime
