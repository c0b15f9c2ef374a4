// The BPE model: vocabulary, merges ranked by position, and the merge loop over one pre-token
// (lowest rank first, leftmost on ties: Hugging Face's order). Unknown characters fall back to
// "<0xXX>" byte tokens when byte_fallback is set, else to unk (fused when fuse_unk), else vanish.
// Immutable after build; encode_word is thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace qmodel::runtime::tok {

struct BpeOptions {
  int32_t unk_id = -1;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;  // a pre-token that is itself a vocab entry skips merging (Llama 3)
};

class BpeModel {
 public:
  // `vocab` maps token text to id; each merge is (left id, right id, merged id), rank = index.
  struct Merge { int32_t left, right, merged; };
  BpeModel(std::unordered_map<std::string, int32_t> vocab, const std::vector<Merge>& merges, BpeOptions options);

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  // Appends the ids of `word` (text as the vocabulary spells it) to `out`.
  void encode_word(const std::string& word, std::vector<int32_t>* out) const;

 private:
  struct MergeInfo { int32_t rank, merged; };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void initial_symbols(const std::string& word, std::vector<int32_t>* ids) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint32_t, int32_t> char_ids_;  // single-code-point tokens, the common lookup
  std::unordered_map<uint64_t, MergeInfo> merges_;
  int32_t byte_ids_[256];
  BpeOptions options_;
};

}  // namespace qmodel::runtime::tok
