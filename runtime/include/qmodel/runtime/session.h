// A Session runs one sequence on a Model: it owns the KV cache, the activation workspace and the
// worker threads. prefill() runs many tokens at once ([m, k] matmuls), decode_step() one token;
// generate() strings them together with a sampler and streams text through a StreamDecoder.
// Not thread-safe: one thread per Session. The Model must outlive its Sessions.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qmodel/format/span.h"
#include "qmodel/format/status.h"
#include "qmodel/runtime/model.h"
#include "qmodel/runtime/sampler.h"
#include "qmodel/runtime/stats.h"

namespace qmodel::runtime {

inline constexpr uint32_t kDefaultMaxContext = 4096;  // when neither options nor config say less

struct SessionOptions {
  // Tokens the KV cache holds (prompt + generated). 0 = min(max_position_embeddings, 4096).
  uint32_t max_context = 0;
  uint32_t prefill_chunk = 256;  // prompt tokens per forward pass (bounds the workspace)
  unsigned n_threads = 0;        // 0 = the model's option (0 there = hardware concurrency)
};

// Called for each generated token with the text it completes (may be empty while a multi-byte
// character is split, or when the model has no tokenizer). Return true to stop generation. A last
// call with id -1 may carry text the stream decoder held back (incomplete UTF-8 at the end).
using TokenCallback = std::function<bool(int32_t id, const std::string& piece)>;
// Called once with the logits of every prompt position, [n_prompt, vocab] row-major.
using PromptLogitsCallback = std::function<void(Span<const float> logits, size_t n_prompt, size_t vocab)>;

struct GenerateOptions {
  uint32_t max_new_tokens = 128;
  SamplingOptions sampling;        // temperature 0 = greedy
  bool use_default_stop_ids = true;  // add Model::default_stop_ids() (EOS) to stop_ids
  std::vector<int32_t> stop_ids;   // generation ends after emitting one of these
  TokenCallback on_token;          // optional
  PromptLogitsCallback on_prompt_logits;  // optional; set = prefill computes every position
};

enum class StopReason : uint8_t { kMaxTokens, kStopToken, kCallback, kContextFull };

struct GenerateResult {
  std::vector<int32_t> ids;  // generated ids (a final stop id included), prompt not included
  std::string text;          // decoded generated text (empty without a tokenizer)
  StopReason stop_reason = StopReason::kMaxTokens;
  double seconds = 0;        // prefill + decode wall time
};

class Session {
 public:
  // Errors: kInvalidArgument (max_context 0 after defaults, prefill_chunk 0), kOutOfMemory when
  // the KV cache or workspace cannot be allocated.
  static Result<std::unique_ptr<Session>> create(const Model& model, const SessionOptions& options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Appends `ids` to the sequence and returns the logits of the last position [vocab], or with
  // all_positions the logits of every id in `ids`, [ids.size(), vocab] row-major. The view stays
  // valid until the next call on this session. kInvalidArgument for an empty list, an id outside
  // the vocabulary or a sequence longer than max_context (the session is unchanged then).
  Result<Span<const float>> prefill(const std::vector<int32_t>& ids, bool all_positions = false);
  // One token: prefill({id}) on the single-token path.
  Result<Span<const float>> decode_step(int32_t id);
  // Forgets the sequence (the KV cache is reused, not freed).
  void reset();
  // Resets, runs the prompt, then samples up to max_new_tokens (see GenerateOptions).
  Result<GenerateResult> generate(const std::vector<int32_t>& prompt_ids, const GenerateOptions& options);

  size_t n_past() const;       // tokens in the KV cache
  size_t max_context() const;
  size_t vocab_size() const;
  unsigned n_threads() const;
  Stats stats() const;         // counters since create(), memory figures sampled now

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmodel::runtime
